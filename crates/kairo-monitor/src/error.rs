//! What can go wrong in monitoring: a data file that cannot be read as a table, or an alert
//! rule that does not parse. Messages name the file (and row or column) or the rule.

/// Why a data file or a rule could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{label}: {source}")]
    Io { label: String, source: std::io::Error },
    /// The CSV could not be opened or its header read.
    #[error("{label}: {source}")]
    Csv { label: String, source: csv::Error },
    /// A CSV record could not be read (`row` counts the header as row 1).
    #[error("{label}: row {row}: {source}")]
    CsvRow { label: String, row: usize, source: csv::Error },
    #[error("{label}: row {row} has {fields} fields, the header has {header}")]
    RowWidth { label: String, row: usize, fields: usize, header: usize },
    #[error("{label}: column '{column}' appears twice")]
    DuplicateColumn { label: String, column: String },
    #[error("{label}: {source}")]
    Parquet { label: String, source: parquet::errors::ParquetError },
    #[error("{label}: {source}")]
    Arrow { label: String, source: arrow_schema::ArrowError },
    /// A Parquet column of a type monitoring does not read (lists, structs, dates, ...).
    #[error("{label}: column '{column}' has type {datatype}, which monitoring does not read")]
    ColumnType { label: String, column: String, datatype: String },
    /// A batch whose column type differs from the file's schema.
    #[error("{label}: unexpected column type {datatype}")]
    BatchType { label: String, datatype: String },
    /// An alert rule's `when:` is not `METRIC OP NUMBER`.
    #[error("{0}")]
    Condition(String),
    /// Data that cannot be estimated on: a missing column, a score that is not a probability,
    /// labels that are not two classes. Names the file, the column and the fix.
    #[error("{0}")]
    Estimate(String),
}

pub type Result<T, E = MonitorError> = std::result::Result<T, E>;
