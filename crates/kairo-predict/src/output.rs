//! The score file: the id columns as the input had them, then the model's outputs (a column
//! per output, or per element of a `[N, k]` output: `probabilities_0`, `probabilities_1`…).
//! Written beside its destination under a hidden temporary name, flushed, and renamed into
//! place only once complete: a crash or Ctrl-C never leaves a file that looks finished.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use kairo_runtime::{Data, Tensor};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::{PredictError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutFormat {
    Parquet,
    Csv,
}

impl OutFormat {
    /// CSV for a `.csv` destination, Parquet otherwise.
    pub fn of(path: &Path) -> OutFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => OutFormat::Csv,
            _ => OutFormat::Parquet,
        }
    }
}

/// A file being written aside, renamed into place by [`Staged::publish`] and removed if dropped
/// before that.
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Staged {
    pub fn new(dest: &Path) -> Result<(Staged, File)> {
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PredictError::Input(format!("{} is not a file name", dest.display())))?;
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(PredictError::io(dir))?;
        let tmp = dir.join(format!(".{name}.kairo-tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(PredictError::io(&tmp))?;
        Ok((Staged { tmp, dest: dest.to_path_buf(), done: false }, file))
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush `file` to disk and rename it over the destination.
    pub fn publish(mut self, file: File) -> Result<()> {
        file.sync_all().map_err(PredictError::io(&self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(PredictError::io(&self.dest))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One scored batch as output columns: the ids (already cut to the scored rows) and the
/// model's outputs.
pub struct Columns {
    pub ids: Vec<(String, ArrayRef)>,
    pub outputs: Vec<(String, ArrayRef)>,
}

/// The output columns of a model's output tensors for `rows` rows.
pub fn output_columns(names: &[String], tensors: Vec<Tensor>, rows: usize) -> Result<Vec<(String, ArrayRef)>> {
    let mut out = Vec::new();
    for (name, t) in names.iter().zip(tensors) {
        let width = match t.shape.as_slice() {
            [n] if *n == rows => 1,
            [n, k] if *n == rows => *k,
            shape => {
                return Err(PredictError::Model(format!(
                    "output '{name}' has shape {shape:?} for {rows} rows; predict writes outputs of one or k values per row"
                )))
            }
        };
        let column = |j: usize| -> ArrayRef {
            let pick = |i: usize| i * width + j;
            match &t.data {
                Data::F32(v) => Arc::new(Float32Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                Data::F64(v) => Arc::new(Float64Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                Data::I64(v) => Arc::new(Int64Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                Data::I32(v) => Arc::new(Int32Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                Data::U32(v) => Arc::new(UInt32Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                Data::Bool(v) => Arc::new(BooleanArray::from((0..rows).map(|i| v[pick(i)]).collect::<Vec<_>>())),
                Data::Bytes(v) => {
                    let mut b = StringBuilder::new();
                    for i in 0..rows {
                        b.append_value(&v[pick(i)]);
                    }
                    Arc::new(b.finish())
                }
                other => {
                    let as_f64: Vec<f64> = (0..rows).map(|i| other.f64_at(pick(i)).unwrap_or(f64::NAN)).collect();
                    Arc::new(Float64Array::from(as_f64))
                }
            }
        };
        if width == 1 {
            out.push((name.clone(), column(0)));
        } else {
            for j in 0..width {
                out.push((format!("{name}_{j}"), column(j)));
            }
        }
    }
    Ok(out)
}

/// Contribution columns from a `[rows, targets, names]` tensor: `contribution_<name>`, or
/// `contribution_<target>_<name>` for more than one target (a class, for a multiclass model).
pub fn contribution_columns(names: &[String], t: Tensor) -> Result<Vec<(String, ArrayRef)>> {
    let [rows, targets, width] = t.shape[..] else {
        return Err(PredictError::Model(format!("contributions have shape {:?}", t.shape)));
    };
    let Data::F32(v) = &t.data else {
        return Err(PredictError::Model("contributions are not FP32".into()));
    };
    let mut out = Vec::with_capacity(targets * width);
    for k in 0..targets {
        for (j, name) in names.iter().enumerate().take(width) {
            let column = Float32Array::from_iter_values((0..rows).map(|r| v[(r * targets + k) * width + j]));
            let label = if targets == 1 { format!("contribution_{name}") } else { format!("contribution_{k}_{name}") };
            out.push((label, Arc::new(column) as ArrayRef));
        }
    }
    Ok(out)
}

/// Rows for [`Writer::append`].
pub enum Appended<'a> {
    Batch(RecordBatch),
    /// CSV records without their header (re-read, so quoting stays consistent).
    Csv(&'a mut dyn std::io::Read),
}

/// The score file being written.
pub enum Writer {
    Parquet { staged: Staged, writer: ArrowWriter<File>, schema: Arc<Schema> },
    Csv { staged: Staged, writer: csv::Writer<BufWriter<File>>, names: Vec<String> },
}

impl Writer {
    /// Start the file with the columns of the first batch.
    pub fn create(dest: &Path, format: OutFormat, first: &Columns) -> Result<Writer> {
        let fields = first.ids.iter().chain(&first.outputs).map(|(n, a)| Field::new(n, a.data_type().clone(), true));
        Writer::with_fields(dest, format, fields.collect())
    }

    /// Start the file with these columns.
    pub fn with_fields(dest: &Path, format: OutFormat, fields: Vec<Field>) -> Result<Writer> {
        let (staged, file) = Staged::new(dest)?;
        match format {
            OutFormat::Parquet => {
                let schema = Arc::new(Schema::new(fields));
                let mut props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 exists")));
                // Scores and probabilities rarely repeat: a dictionary per page only costs time
                // (it was a fifth of scoring a logistic regression). Text (labels, ids) keeps one.
                for f in schema.fields().iter().filter(|f| f.data_type() != &DataType::Utf8) {
                    props = props.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
                }
                let props = props.build();
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .map_err(|e| PredictError::Output(format!("{}: {e}", dest.display())))?;
                Ok(Writer::Parquet { staged, writer, schema })
            }
            OutFormat::Csv => {
                let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
                let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
                writer.write_record(&names).map_err(|e| PredictError::Output(format!("{}: {e}", dest.display())))?;
                Ok(Writer::Csv { staged, writer, names })
            }
        }
    }

    pub fn write(&mut self, batch: Columns) -> Result<()> {
        match self {
            Writer::Parquet { staged, writer, schema } => {
                let arrays: Vec<ArrayRef> = batch.ids.into_iter().chain(batch.outputs).map(|(_, a)| a).collect();
                let fail = |e: String| PredictError::Output(format!("{}: {e}", staged.dest.display()));
                let batch = RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| fail(format!("a batch's columns differ from the first batch's: {e}")))?;
                writer.write(&batch).map_err(|e| fail(e.to_string()))?;
                // A row group per batch keeps memory bounded by the batch, not the file.
                writer.flush().map_err(|e| fail(e.to_string()))
            }
            Writer::Csv { staged, writer, names } => {
                let columns: Vec<ArrayRef> = batch.ids.into_iter().chain(batch.outputs).map(|(_, a)| a).collect();
                if columns.len() != names.len() {
                    return Err(PredictError::Output(format!(
                        "{}: a batch has {} columns, the first had {}",
                        staged.dest.display(),
                        columns.len(),
                        names.len()
                    )));
                }
                let rows = columns.first().map_or(0, |c| c.len());
                let mut record: Vec<String> = vec![String::new(); columns.len()];
                for i in 0..rows {
                    for (cell, col) in record.iter_mut().zip(&columns) {
                        *cell = text(col, i);
                    }
                    writer
                        .write_record(&record)
                        .map_err(|e| PredictError::Output(format!("{}: {e}", staged.dest.display())))?;
                }
                Ok(())
            }
        }
    }

    /// Add rows read elsewhere: a Parquet batch of this file's columns, or CSV records (the
    /// bytes after a header equal to this file's), copied as they are.
    pub fn append(&mut self, rows: Appended<'_>) -> Result<()> {
        match (self, rows) {
            (Writer::Parquet { staged, writer, schema }, Appended::Batch(batch)) => {
                let fail = |e: String| PredictError::Output(format!("{}: {e}", staged.dest.display()));
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| fail(format!("a part's columns differ from the first part's: {e}")))?;
                writer.write(&batch).map_err(|e| fail(e.to_string()))?;
                writer.flush().map_err(|e| fail(e.to_string()))
            }
            (Writer::Csv { staged, writer, .. }, Appended::Csv(records)) => {
                let fail = |e: csv::Error| PredictError::Output(format!("{}: {e}", staged.dest.display()));
                let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(records);
                let mut record = csv::ByteRecord::new();
                while reader.read_byte_record(&mut record).map_err(fail)? {
                    writer.write_byte_record(&record).map_err(fail)?;
                }
                Ok(())
            }
            (w, _) => {
                Err(PredictError::Output(format!("{}: a part is not in the output's format", w.dest().display())))
            }
        }
    }

    fn dest(&self) -> &Path {
        match self {
            Writer::Parquet { staged, .. } | Writer::Csv { staged, .. } => staged.dest(),
        }
    }

    /// Finish the file and move it into place.
    pub fn finish(self) -> Result<()> {
        match self {
            Writer::Parquet { staged, writer, .. } => {
                let file =
                    writer.into_inner().map_err(|e| PredictError::Output(format!("{}: {e}", staged.dest.display())))?;
                staged.publish(file)
            }
            Writer::Csv { staged, writer, .. } => {
                let buffered =
                    writer.into_inner().map_err(|e| PredictError::Output(format!("{}: {e}", staged.dest.display())))?;
                let file = buffered
                    .into_inner()
                    .map_err(|e| PredictError::Output(format!("{}: {}", staged.dest.display(), e.error())))?;
                staged.publish(file)
            }
        }
    }
}

/// A cell as CSV text: numbers in their shortest round-trip form, empty for null.
pub fn text(col: &ArrayRef, i: usize) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if col.is_null(i) {
        return String::new();
    }
    match col.data_type() {
        DataType::Float32 => col.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => col.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Boolean => col.as_boolean().value(i).to_string(),
        DataType::Utf8 => col.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i).to_string(),
        _ => String::new(),
    }
}
