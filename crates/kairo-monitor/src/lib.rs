//! Kairo's monitoring. So far: the two-sample statistics drift detection rests on, each checked
//! against SciPy on committed golden vectors (`fixtures/stats`).
//!
//! Knows nothing of HTTP, the registry or where data comes from: slices in, numbers out.

pub mod kolmogorov;
pub mod stats;
