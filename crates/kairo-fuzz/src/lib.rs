//! Property-based fuzzing of the decoders that take bytes from outside: OIP v2 request
//! bodies (JSON and the binary tensor extension), `/invocations` JSON and CSV, MLflow request
//! bodies and the search filter grammar, `kairo.yaml` and pointer files. The targets live in
//! `tests/fuzz/`; this crate holds what they share: the memory limit the test binary runs
//! under ([`memory`]), the committed seed corpus and its mutations ([`corpus`]), and hostile
//! JSON values ([`values`]).
//!
//! Why proptest and not cargo-fuzz: libFuzzer needs a nightly toolchain; this runs on stable,
//! in `cargo test`, so every CI run fuzzes a little. Each target asserts that the decoder
//! returns (`Ok` or an error that maps to a 4xx) without panicking; an allocation beyond the
//! memory limit aborts the test binary, which fails the run.
//!
//! Knows nothing of HTTP or servers: it calls the decoders as functions.

pub mod corpus;
pub mod memory;
pub mod values;

/// Cases per property: `PROPTEST_CASES` when set (long runs), else `default` (the short pass
/// `cargo test` runs).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
