//! Kairo's monitoring. So far: the two-sample statistics drift detection rests on, each checked
//! against SciPy on committed golden vectors (`fixtures/stats`); columnar tables from CSV
//! (`frame`); and the column-by-column drift check with a dataset verdict (`drift`).
//!
//! Reads data files only in `frame`; knows nothing of HTTP, the registry or the store.

pub mod drift;
pub mod frame;
pub mod kolmogorov;
pub mod report;
pub mod stats;
