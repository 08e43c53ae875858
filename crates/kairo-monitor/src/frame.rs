//! Columnar tables read from CSV for monitoring: numeric columns as `f64` (empty, `NA`,
//! `nan`, `null` → NaN), other columns as dictionary codes. One pass over the file; a column
//! keeps a dictionary while it has few distinct values, so a column that turns out not to be
//! numeric rarely needs a second pass.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{MonitorError, Result};

/// The code of a missing categorical value (4 bytes per row instead of an `Option`'s 8).
pub const MISSING: u32 = u32::MAX;

/// A column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<f64>),
    /// Codes into `dictionary`; [`MISSING`] marks a missing value (4 bytes a row, not 8).
    Categorical {
        codes: Vec<u32>,
        dictionary: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Numeric(v) => v.len(),
            Values::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub columns: Vec<Column>,
    pub rows: usize,
}

impl Frame {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

pub(crate) fn is_missing(cell: &str) -> bool {
    matches!(cell, "" | "NA" | "N/A" | "nan" | "NaN" | "null" | "NULL" | "None")
}

fn number(cell: &str) -> Option<f64> {
    match cell {
        "inf" | "Inf" | "+inf" | "infinity" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Inf" | "-infinity" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => cell.parse().ok(),
    }
}

/// Distinct values a column keeps a dictionary for while it still looks numeric.
const DICTIONARY_LIMIT: usize = 1024;

/// Categorical codes being built: value → code, the values in code order, one code per row.
#[derive(Default)]
struct Dictionary {
    index: HashMap<String, u32>,
    names: Vec<String>,
    codes: Vec<u32>,
}

impl Dictionary {
    /// Add a cell; false (and nothing added) when it is new and the dictionary is full.
    fn push(&mut self, cell: &str, limit: usize) -> bool {
        if is_missing(cell) {
            self.codes.push(MISSING);
        } else if let Some(code) = self.index.get(cell) {
            self.codes.push(*code);
        } else if self.names.len() >= limit {
            return false;
        } else {
            let code = self.names.len() as u32;
            self.index.insert(cell.to_string(), code);
            self.names.push(cell.to_string());
            self.codes.push(code);
        }
        true
    }
}

struct Builder {
    numeric: Option<Vec<f64>>,
    dictionary: Option<Dictionary>,
}

impl Builder {
    fn push(&mut self, cell: &str) {
        let cell = cell.trim();
        let missing = is_missing(cell);
        if let Some(values) = self.numeric.as_mut() {
            match (missing, number(cell)) {
                (true, _) => values.push(f64::NAN),
                (false, Some(v)) => values.push(v),
                (false, None) => self.numeric = None,
            }
        }
        let limit = if self.numeric.is_some() { DICTIONARY_LIMIT } else { usize::MAX };
        if let Some(dictionary) = self.dictionary.as_mut() {
            if !dictionary.push(cell, limit) {
                self.dictionary = None;
            }
        }
    }
}

impl Frame {
    /// Read a CSV file, or a Parquet file when the name ends in `.parquet` or `.pq`.
    pub fn read(path: &Path) -> Result<Frame> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet" | "pq") => Self::read_parquet(path),
            _ => Self::read_csv(path),
        }
    }

    /// Read a Parquet file (uncompressed or snappy): numeric and boolean-free columns as
    /// numbers, strings (plain or dictionary-encoded) and booleans as categories.
    pub fn read_parquet(path: &Path) -> Result<Frame> {
        Self::read_parquet_fields(path, None)
    }

    /// [`Frame::read_parquet`], of every column or of the one at `only`.
    fn read_parquet_fields(path: &Path, only: Option<usize>) -> Result<Frame> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::*;
        use arrow_schema::DataType;
        let label = path.display().to_string();
        let parquet = |source| MonitorError::Parquet { label: label.clone(), source };
        let file = std::fs::File::open(path).map_err(|source| MonitorError::Io { label: label.clone(), source })?;
        let mut builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
        if let Some(i) = only {
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [i]);
            builder = builder.with_projection(mask);
        }
        let schema = match only {
            Some(i) => std::sync::Arc::new(
                builder
                    .schema()
                    .project(&[i])
                    .map_err(|source| MonitorError::Arrow { label: label.clone(), source })?,
            ),
            None => builder.schema().clone(),
        };
        let reader = builder.with_batch_size(65_536).build().map_err(parquet)?;
        enum Out {
            Num(Vec<f64>),
            Cat(Dictionary),
        }
        let mut outs: Vec<Out> = Vec::new();
        for f in schema.fields() {
            let numeric = matches!(
                f.data_type(),
                DataType::Float64
                    | DataType::Float32
                    | DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
                    | DataType::UInt64
            );
            let text = matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Boolean)
                || matches!(f.data_type(), DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8));
            if numeric {
                outs.push(Out::Num(Vec::new()));
            } else if text {
                outs.push(Out::Cat(Dictionary::default()));
            } else {
                return Err(MonitorError::ColumnType {
                    label,
                    column: f.name().clone(),
                    datatype: f.data_type().to_string(),
                });
            }
        }
        let mut rows = 0;
        for batch in reader {
            let batch = batch.map_err(|source| MonitorError::Arrow { label: label.clone(), source })?;
            rows += batch.num_rows();
            for (out, col) in outs.iter_mut().zip(batch.columns()) {
                macro_rules! nums {
                    ($t:ty, $v:expr) => {
                        $v.extend(col.as_primitive::<$t>().iter().map(|x| x.map(|x| x as f64).unwrap_or(f64::NAN)))
                    };
                }
                match (out, col.data_type()) {
                    (Out::Num(v), DataType::Float64) => {
                        v.extend(col.as_primitive::<Float64Type>().iter().map(|x| x.unwrap_or(f64::NAN)))
                    }
                    (Out::Num(v), DataType::Float32) => nums!(Float32Type, v),
                    (Out::Num(v), DataType::Int8) => nums!(Int8Type, v),
                    (Out::Num(v), DataType::Int16) => nums!(Int16Type, v),
                    (Out::Num(v), DataType::Int32) => nums!(Int32Type, v),
                    (Out::Num(v), DataType::Int64) => nums!(Int64Type, v),
                    (Out::Num(v), DataType::UInt8) => nums!(UInt8Type, v),
                    (Out::Num(v), DataType::UInt16) => nums!(UInt16Type, v),
                    (Out::Num(v), DataType::UInt32) => nums!(UInt32Type, v),
                    (Out::Num(v), DataType::UInt64) => nums!(UInt64Type, v),
                    (Out::Cat(d), DataType::Utf8) => col.as_string::<i32>().iter().for_each(|x| {
                        d.push(x.unwrap_or(""), usize::MAX);
                    }),
                    (Out::Cat(d), DataType::LargeUtf8) => col.as_string::<i64>().iter().for_each(|x| {
                        d.push(x.unwrap_or(""), usize::MAX);
                    }),
                    (Out::Cat(d), DataType::Boolean) => col.as_boolean().iter().for_each(|x| {
                        d.push(x.map(|b| if b { "true" } else { "false" }).unwrap_or(""), usize::MAX);
                    }),
                    (Out::Cat(d), DataType::Dictionary(_, _)) => {
                        // Each dictionary entry is looked up once per batch, not once per row.
                        let dict = col.as_any_dictionary();
                        let normalized = dict.normalized_keys();
                        let values = dict.values();
                        let text = |i: usize| -> &str {
                            match values.data_type() {
                                DataType::LargeUtf8 => values.as_string::<i64>().value(i),
                                _ => values.as_string::<i32>().value(i),
                            }
                        };
                        let mut code_of: Vec<Option<u32>> = vec![None; values.len()];
                        for (i, &k) in normalized.iter().enumerate() {
                            if dict.keys().is_null(i) {
                                d.push("", usize::MAX);
                                continue;
                            }
                            match code_of.get(k).copied().flatten() {
                                Some(code) => d.codes.push(code),
                                None => {
                                    d.push(text(k), usize::MAX);
                                    if let (Some(slot), Some(code)) = (code_of.get_mut(k), d.codes.last()) {
                                        *slot = Some(*code);
                                    }
                                }
                            }
                        }
                    }
                    (_, other) => return Err(MonitorError::BatchType { label, datatype: other.to_string() }),
                }
            }
        }
        let columns = schema
            .fields()
            .iter()
            .zip(outs)
            .map(|(f, out)| Column {
                name: f.name().clone(),
                values: match out {
                    Out::Num(v) => Values::Numeric(v),
                    Out::Cat(d) => Values::Categorical { codes: d.codes, dictionary: d.names },
                },
            })
            .collect();
        Ok(Frame { columns, rows })
    }

    pub fn read_csv(path: &Path) -> Result<Frame> {
        let label = path.display().to_string();
        Self::from_csv(
            || csv::Reader::from_path(path).map_err(|source| MonitorError::Csv { label: label.clone(), source }),
            &label,
        )
    }

    /// A CSV held in memory (`label` names it in errors).
    pub fn parse_csv(bytes: &[u8], label: &str) -> Result<Frame> {
        Self::from_csv(|| Ok(csv::Reader::from_reader(bytes)), label)
    }

    /// `open` may be called twice: a column that is neither numeric nor small enough to keep
    /// its dictionary is read again.
    fn from_csv<R: std::io::Read>(open: impl Fn() -> Result<csv::Reader<R>>, label: &str) -> Result<Frame> {
        let csv = |source| MonitorError::Csv { label: label.to_string(), source };
        let mut reader = open()?;
        let names: Vec<String> = reader.headers().map_err(csv)?.iter().map(|h| h.trim().to_string()).collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(MonitorError::DuplicateColumn { label: label.to_string(), column: dup.clone() });
        }
        let mut builders: Vec<Builder> = names
            .iter()
            .map(|_| Builder { numeric: Some(Vec::new()), dictionary: Some(Dictionary::default()) })
            .collect();
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        while reader.read_record(&mut record).map_err(|source| MonitorError::CsvRow {
            label: label.to_string(),
            row: rows + 2,
            source,
        })? {
            if record.len() != names.len() {
                return Err(MonitorError::RowWidth {
                    label: label.to_string(),
                    row: rows + 2,
                    fields: record.len(),
                    header: names.len(),
                });
            }
            for (b, cell) in builders.iter_mut().zip(record.iter()) {
                b.push(cell);
            }
            rows += 1;
        }
        // Columns that are neither numeric nor small enough to have kept their dictionary.
        let redo: Vec<usize> = builders
            .iter()
            .enumerate()
            .filter(|(_, b)| b.numeric.is_none() && b.dictionary.is_none())
            .map(|(i, _)| i)
            .collect();
        if !redo.is_empty() {
            let mut dictionaries: Vec<Dictionary> = redo.iter().map(|_| Dictionary::default()).collect();
            let mut reader = open()?;
            while reader.read_record(&mut record).map_err(csv)? {
                for (d, &i) in dictionaries.iter_mut().zip(&redo) {
                    d.push(record.get(i).unwrap_or("").trim(), usize::MAX);
                }
            }
            for (d, &i) in dictionaries.into_iter().zip(&redo) {
                builders[i].dictionary = Some(d);
            }
        }
        let columns = names
            .into_iter()
            .zip(builders)
            .map(|(name, b)| {
                let values = match (b.numeric, b.dictionary) {
                    (Some(mut v), _) => {
                        v.shrink_to_fit();
                        Values::Numeric(v)
                    }
                    (None, Some(d)) => Values::Categorical { codes: d.codes, dictionary: d.names },
                    (None, None) => Values::Categorical { codes: Vec::new(), dictionary: Vec::new() },
                };
                Column { name, values }
            })
            .collect();
        Ok(Frame { columns, rows })
    }
}

/// A Parquet file read one column at a time: a drift check then holds two columns in memory,
/// not two files. The schema is read (and every column's type checked) when it is opened.
#[derive(Debug, Clone)]
pub struct ParquetColumns {
    path: std::path::PathBuf,
    pub names: Vec<String>,
    pub rows: usize,
}

impl ParquetColumns {
    pub fn open(path: &Path) -> Result<ParquetColumns> {
        use arrow_schema::DataType;
        let label = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| MonitorError::Io { label: label.clone(), source })?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| MonitorError::Parquet { label: label.clone(), source })?;
        for f in builder.schema().fields() {
            let readable = f.data_type().is_numeric()
                && !matches!(f.data_type(), DataType::Float16 | DataType::Decimal128(..) | DataType::Decimal256(..))
                || matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Boolean)
                || matches!(f.data_type(), DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8));
            if !readable {
                return Err(MonitorError::ColumnType {
                    label,
                    column: f.name().clone(),
                    datatype: f.data_type().to_string(),
                });
            }
        }
        let names = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        Ok(ParquetColumns { path: path.to_path_buf(), names, rows })
    }

    /// The column at `index`, read from the file.
    pub fn column(&self, index: usize) -> Result<Column> {
        let mut f = Frame::read_parquet_fields(&self.path, Some(index))?;
        f.columns.pop().ok_or_else(|| MonitorError::BatchType {
            label: self.path.display().to_string(),
            datatype: "no column".into(),
        })
    }
}
