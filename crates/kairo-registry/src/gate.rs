//! Gate results; the conditions themselves live in `kairo_core::condition`.

pub use kairo_core::condition::{Condition, Op};

/// One row of a promotion's pass/fail table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateResult {
    pub gate: String,
    pub passed: bool,
    /// The measured value and where it came from, or why the gate could not be judged.
    pub detail: String,
}
