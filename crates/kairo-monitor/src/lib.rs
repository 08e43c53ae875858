//! Kairo's monitoring: the two-sample statistics drift detection rests on, each checked
//! against SciPy on committed golden vectors (`fixtures/stats`); columnar tables from CSV and
//! Parquet (`frame`); the column-by-column drift check of two tables (`drift`); reference
//! profiles (`profile`) and the mergeable window sketches counted against them (`sketch`);
//! model quality once labels arrive (`performance`); challenger against champion on the same
//! rows, with paired tests checked against statsmodels and SciPy (`compare`); alert rules over
//! windows (`alerts`); the HTML report (`report`).
//!
//! Reads data files only in `frame`; knows nothing of HTTP, the registry or the store. Errors
//! are [`MonitorError`].

pub mod alerts;
pub mod cbpe;
pub mod compare;
pub mod drift;
pub mod error;
pub mod fairness;
pub mod frame;
pub mod kolmogorov;
pub mod performance;
pub mod profile;
pub mod report;
pub mod sketch;
pub mod stats;

pub use error::MonitorError;
