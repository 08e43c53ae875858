//! The rows to score: one CSV or Parquet file, or a directory of them (read in name order),
//! as batches of at most `batch_rows` rows. Only the columns scoring needs are read: the
//! model's features and the id columns passed through.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use kairo_serve::invocations::{Cell, Numbers};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::{PredictError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// By extension, else by content (Parquet files begin with `PAR1`).
    fn of(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => return Ok(Format::Csv),
            Some("parquet" | "pq") => return Ok(Format::Parquet),
            _ => {}
        }
        let mut magic = [0u8; 4];
        let n = std::io::Read::read(&mut File::open(path).map_err(PredictError::io(path))?, &mut magic)
            .map_err(PredictError::io(path))?;
        Ok(if n == 4 && &magic == b"PAR1" { Format::Parquet } else { Format::Csv })
    }
}

/// The files of an input: the file itself, or a directory's CSV and Parquet files (all of one
/// format), recursively, in path order.
pub fn files(input: &Path) -> Result<(Vec<PathBuf>, Format)> {
    let meta = std::fs::metadata(input).map_err(PredictError::io(input))?;
    if meta.is_file() {
        return Ok((vec![input.to_path_buf()], Format::of(input)?));
    }
    let mut found = Vec::new();
    collect(input, &mut found)?;
    found.sort();
    let Some(first) = found.first() else {
        return Err(PredictError::Input(format!("{} holds no .csv or .parquet files to score", input.display())));
    };
    let format = Format::of(first)?;
    for f in &found {
        if Format::of(f)? != format {
            return Err(PredictError::Input(format!(
                "{} mixes CSV and Parquet files ({} and {}); score them separately",
                input.display(),
                first.display(),
                f.display()
            )));
        }
    }
    Ok((found, format))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(PredictError::io(dir))? {
        let entry = entry.map_err(PredictError::io(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(PredictError::io(&path))?;
        if kind.is_dir() {
            collect(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
            Some("csv" | "parquet" | "pq")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// The rows of one batch, as the file holds them.
pub enum Rows {
    Csv(Vec<csv::StringRecord>),
    /// The projected columns, in the order of [`Reader::columns`].
    Arrow(RecordBatch),
}

/// A batch of rows of one file.
pub struct Batch {
    /// Index into the input's files.
    pub file: usize,
    /// The 1-based number of the batch's first data row in its file.
    pub first_row: u64,
    pub rows: Rows,
    /// For CSV: where each wanted column is in a record (Parquet batches hold only those).
    pub positions: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Csv(r) => r.len(),
            Rows::Arrow(b) => b.num_rows(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` columns as numbers, when they are all float columns without nulls.
    pub fn numbers(&self, n: usize) -> Option<Vec<Numbers<'_>>> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float32Type, Float64Type};
        let Rows::Arrow(batch) = &self.rows else { return None };
        (0..n)
            .map(|c| {
                let col = batch.column(c);
                if col.null_count() > 0 {
                    return None;
                }
                match col.data_type() {
                    DataType::Float32 => Some(Numbers::F32(col.as_primitive::<Float32Type>().values())),
                    DataType::Float64 => Some(Numbers::F64(col.as_primitive::<Float64Type>().values())),
                    _ => None,
                }
            })
            .collect()
    }

    /// Cell `row` of the batch's column `col` (an index into the wanted columns).
    pub fn cell(&self, col: usize, row: usize) -> Cell<'_> {
        match &self.rows {
            Rows::Csv(records) => Cell::Text(records[row].get(self.positions[col]).unwrap_or("")),
            Rows::Arrow(batch) => arrow_cell(batch.column(col), row),
        }
    }
}

/// A value of a column whose type [`readable`] accepted, as a cell.
fn arrow_cell(col: &ArrayRef, i: usize) -> Cell<'_> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if col.is_null(i) {
        return Cell::Missing;
    }
    match col.data_type() {
        DataType::Boolean => Cell::Bool(col.as_boolean().value(i)),
        DataType::Int8 => Cell::Number(col.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => Cell::Number(col.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Cell::Number(col.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Cell::Number(col.as_primitive::<Int64Type>().value(i) as f64),
        DataType::UInt8 => Cell::Number(col.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Cell::Number(col.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Cell::Number(col.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => Cell::Number(col.as_primitive::<UInt64Type>().value(i) as f64),
        DataType::Float32 => Cell::Number(col.as_primitive::<Float32Type>().value(i).into()),
        DataType::Float64 => Cell::Number(col.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Cell::Text(col.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Cell::Text(col.as_string::<i64>().value(i)),
        _ => Cell::Missing,
    }
}

/// Column types a feature may have in a Parquet file.
fn readable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8
    )
}

/// What a file says of itself before its rows are read.
pub struct Header {
    pub names: Vec<String>,
    /// Parquet: each column's type (CSV has none).
    pub types: Option<Vec<DataType>>,
    /// Parquet: the row count.
    pub rows: Option<u64>,
}

/// A file's column names (its CSV header or Parquet schema), and for Parquet their types and
/// the row count.
pub fn header(path: &Path, format: Format) -> Result<Header> {
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
            let headers = reader.headers().map_err(|e| csv_error(path, e))?;
            Ok(Header { names: headers.iter().map(str::to_string).collect(), types: None, rows: None })
        }
        Format::Parquet => {
            let file = File::open(path).map_err(PredictError::io(path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
            let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
            let fields = builder.schema().fields();
            Ok(Header {
                names: fields.iter().map(|f| f.name().clone()).collect(),
                types: Some(fields.iter().map(|f| f.data_type().clone()).collect()),
                rows: Some(rows),
            })
        }
    }
}

fn csv_error(path: &Path, e: csv::Error) -> PredictError {
    PredictError::Input(format!("{}: not readable as CSV: {e}", path.display()))
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> PredictError {
    PredictError::Input(format!("{}: not readable as Parquet: {e}", path.display()))
}

/// Reads the wanted columns of every file, batch by batch.
pub struct Reader {
    files: Vec<PathBuf>,
    format: Format,
    /// The columns read: features first, then the id columns.
    columns: Vec<String>,
    batch_rows: usize,
    /// Only these row groups (of a single Parquet file): a shard of a larger input.
    row_groups: Option<std::ops::Range<usize>>,
    current: Option<Open>,
    next_file: usize,
}

/// A Parquet file's row groups: how many rows each holds.
pub fn row_groups(path: &Path) -> Result<Vec<u64>> {
    let file = File::open(path).map_err(PredictError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
    Ok(builder.metadata().row_groups().iter().map(|g| g.num_rows().max(0) as u64).collect())
}

enum Open {
    Csv { file: usize, reader: csv::Reader<File>, positions: Vec<usize>, next_row: u64 },
    Parquet { file: usize, reader: ParquetRecordBatchReader, next_row: u64 },
}

impl Reader {
    pub fn new(files: Vec<PathBuf>, format: Format, columns: Vec<String>, batch_rows: usize) -> Reader {
        Reader { files, format, columns, batch_rows: batch_rows.max(1), row_groups: None, current: None, next_file: 0 }
    }

    /// Read only row groups `groups` of the (one, Parquet) input; rows keep their numbers in
    /// the whole file.
    pub fn only_row_groups(&mut self, groups: std::ops::Range<usize>) -> Result<()> {
        let [path] = &self.files[..] else {
            return Err(PredictError::Input("row groups are chosen of one Parquet file, not a directory".into()));
        };
        let have = row_groups(path)?.len();
        if self.format != Format::Parquet || groups.start >= groups.end || groups.end > have {
            return Err(PredictError::Input(format!(
                "{}: row groups {}..{} do not exist (it has {have})",
                path.display(),
                groups.start,
                groups.end
            )));
        }
        self.row_groups = Some(groups);
        Ok(())
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Check that every file has every wanted column (and, for Parquet, of a readable type),
    /// before anything is scored. Returns the total rows when the format knows it.
    pub fn check(&self, ids: &[String]) -> Result<Option<u64>> {
        let mut total = Some(0u64);
        for path in &self.files {
            let Header { names, types, rows } = header(path, self.format)?;
            for c in &self.columns {
                let Some(at) = names.iter().position(|n| n == c) else {
                    let what = if ids.contains(c) { "id column" } else { "column" };
                    return Err(PredictError::Input(format!(
                        "{}: no {what} '{c}' (its columns: {})",
                        path.display(),
                        names.join(", ")
                    )));
                };
                if let Some(t) = types.as_ref().map(|t| &t[at]).filter(|t| !readable(t)) {
                    return Err(PredictError::Input(format!(
                        "{}: column '{c}' is {t}, which predict does not read (numbers, booleans and text are read)",
                        path.display()
                    )));
                }
            }
            let rows = match &self.row_groups {
                Some(g) => Some(row_groups(path)?[g.clone()].iter().sum()),
                None => rows,
            };
            total = match (total, rows) {
                (Some(t), Some(r)) => Some(t + r),
                _ => None,
            };
        }
        Ok(total)
    }

    fn open(&mut self, file: usize) -> Result<Open> {
        let path = &self.files[file];
        match self.format {
            Format::Csv => {
                let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
                let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
                let positions = self
                    .columns
                    .iter()
                    .map(|c| {
                        headers
                            .iter()
                            .position(|h| h == c)
                            .ok_or_else(|| PredictError::Input(format!("{}: no column '{c}'", path.display())))
                    })
                    .collect::<Result<_>>()?;
                Ok(Open::Csv { file, reader, positions, next_row: 1 })
            }
            Format::Parquet => {
                let handle = File::open(path).map_err(PredictError::io(path))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| parquet_error(path, e))?;
                let schema = builder.schema().clone();
                let mut roots = Vec::with_capacity(self.columns.len());
                for c in &self.columns {
                    roots.push(schema.index_of(c).map_err(|e| parquet_error(path, e.into()))?);
                }
                let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
                let mut next_row = 1;
                let mut builder = builder;
                if let Some(g) = &self.row_groups {
                    let before: i64 = builder.metadata().row_groups()[..g.start].iter().map(|r| r.num_rows()).sum();
                    next_row += before.max(0) as u64;
                    builder = builder.with_row_groups(g.clone().collect());
                }
                let reader = builder
                    .with_projection(mask)
                    .with_batch_size(self.batch_rows)
                    .build()
                    .map_err(|e| parquet_error(path, e))?;
                Ok(Open::Parquet { file, reader, next_row })
            }
        }
    }

    /// The next batch, None after the last file's last row.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        loop {
            if self.current.is_none() {
                if self.next_file == self.files.len() {
                    return Ok(None);
                }
                self.current = Some(self.open(self.next_file)?);
                self.next_file += 1;
            }
            let batch_rows = self.batch_rows;
            let columns = &self.columns;
            let files = &self.files;
            let got = match self.current.as_mut().expect("opened above") {
                Open::Csv { file, reader, positions, next_row } => {
                    let mut records = Vec::with_capacity(batch_rows.min(65_536));
                    let mut record = csv::StringRecord::new();
                    while records.len() < batch_rows {
                        match reader.read_record(&mut record) {
                            Ok(false) => break,
                            Ok(true) => records.push(std::mem::take(&mut record)),
                            Err(e) => {
                                return Err(PredictError::Input(format!(
                                    "{}: row {} is not valid CSV: {e}",
                                    files[*file].display(),
                                    *next_row + records.len() as u64
                                )))
                            }
                        }
                    }
                    (!records.is_empty()).then(|| {
                        let batch = Batch {
                            file: *file,
                            first_row: *next_row,
                            rows: Rows::Csv(records),
                            positions: positions.clone(),
                        };
                        *next_row += batch.len() as u64;
                        batch
                    })
                }
                Open::Parquet { file, reader, next_row } => match reader.next() {
                    None => None,
                    Some(Err(e)) => {
                        return Err(PredictError::Input(format!(
                            "{}: not readable as Parquet: {e}",
                            files[*file].display()
                        )))
                    }
                    Some(Ok(b)) => {
                        // The projection keeps the file's column order; put the batch in ours.
                        let ordered: Vec<ArrayRef> =
                            columns.iter().map(|c| b.column_by_name(c).cloned()).collect::<Option<_>>().ok_or_else(
                                || PredictError::Input(format!("{}: a column went missing", files[*file].display())),
                            )?;
                        let schema = std::sync::Arc::new(arrow_schema::Schema::new(
                            columns
                                .iter()
                                .zip(&ordered)
                                .map(|(c, a)| arrow_schema::Field::new(c, a.data_type().clone(), true))
                                .collect::<Vec<_>>(),
                        ));
                        let batch = RecordBatch::try_new(schema, ordered)
                            .map_err(|e| PredictError::Input(format!("{}: {e}", files[*file].display())))?;
                        let out = Batch {
                            file: *file,
                            first_row: *next_row,
                            rows: Rows::Arrow(batch),
                            positions: Vec::new(),
                        };
                        *next_row += out.len() as u64;
                        Some(out)
                    }
                },
            };
            match got {
                Some(b) => return Ok(Some(b)),
                None => self.current = None,
            }
        }
    }
}
