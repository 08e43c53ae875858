//! Why training failed: the data file, an option, the data itself, a learner, or the export.
//! Messages name the column, option or value and, where there is one, the fix.

use std::path::PathBuf;

/// Why `kairo train` could not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The data file could not be read as a table.
    #[error(transparent)]
    Read(#[from] kairo_monitor::MonitorError),
    #[error("{}: the file is empty", .0.display())]
    EmptyFile(PathBuf),
    /// `--drop` named the target column.
    #[error("--drop {0}: that is the --target column")]
    DropTarget(String),

    // Options.
    #[error("--param {key}: `{algo}` takes {}", if .known.is_empty() { "no parameters".to_string() } else { .known.join(", ") })]
    UnknownParam { key: String, algo: &'static str, known: Vec<&'static str> },
    #[error("--param {key}={value}: `{value}` is not a number")]
    ParamNotANumber { key: String, value: String },
    #[error("--param {key}={value}: must be a non-negative number")]
    ParamNegative { key: String, value: String },
    #[error(
        "--algo {algo} is for classification; the target is numeric (use linear or gbdt, or --task classification)"
    )]
    ClassifierForRegression { algo: &'static str },
    #[error("--algo linear is for regression (use logistic for classification)")]
    RegressorForClassification,
    #[error("--test-fraction {0}: must be at least 0 and below 1")]
    TestFraction(f64),
    #[error("{rows} rows are too few to hold out {:.0}% for testing", .fraction * 100.0)]
    TooFewRowsToSplit { rows: usize, fraction: f64 },

    // The data.
    #[error("the data has no rows")]
    NoRows,
    #[error("no target column '{target}' (columns: {})", .columns.join(", "))]
    NoTarget { target: String, columns: Vec<String> },
    #[error("the data has no columns besides the target '{0}'")]
    NoFeatures(String),
    /// A column read as text whose values are nearly all numbers.
    #[error("column '{column}' is numeric but row {row} has `{value}`, which is not a number")]
    NotANumber { column: String, row: usize, value: String },
    #[error("target '{target}' has {missing} missing values; drop those rows first")]
    TargetMissing { target: String, missing: usize },
    #[error("target '{0}' is not numeric, so it cannot be a regression target")]
    TargetNotNumeric(String),
    #[error("target '{target}' is constant ({value}): there is nothing to learn")]
    ConstantTarget { target: String, value: String },
    #[error("target '{target}' has {classes} classes for {rows} rows: every class needs several rows")]
    TooManyClasses { target: String, classes: usize, rows: usize },
    #[error("the training rows hold only one class; use more data or a smaller --test-fraction")]
    OneClass,
    /// The test data (`--test-data`) is unusable; the cause says why.
    #[error("--test-data: {0}")]
    TestData(Box<MlError>),
    #[error("--test-data has no column '{0}'")]
    TestDataColumn(String),

    // Fitting and export.
    /// A learner refused the data (linfa, forust-ml, ndarray).
    #[error("{learner}: {message}")]
    Fit { learner: &'static str, message: String },
    /// The exported model does not load or run in Kairo's runtime: a bug in the export.
    #[error("{what}: {message}")]
    Export { what: &'static str, message: String },
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
