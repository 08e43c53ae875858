//! Kairo's monitoring. So far: the two-sample statistics drift detection rests on, each checked
//! against SciPy on committed golden vectors (`fixtures/stats`); columnar tables from CSV
//! (`frame`); and the column-by-column drift check with a dataset verdict (`drift`).
//!
//! Knows nothing of HTTP, the registry or where data comes from: slices in, numbers out.

pub mod drift;
pub mod frame;
pub mod kolmogorov;
pub mod report;
pub mod stats;
