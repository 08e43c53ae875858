//! The prediction-log segment format. Since issue 22 a segment is a Parquet file (zstd) with
//! typed columns, readable by pandas, Polars and DuckDB without Kairo: the request's fields
//! (`request_id`, `row`, `time_ms`, `model`, `version`, `arm`, `latency_us`, `status`), then
//! one column per logged input and output element — `inputs.age` for a value per row,
//! `inputs.x[0]`, `inputs.x[1]`, … and `inputs.x[]` (the row's length) for an array. Each
//! element column is the narrowest type that holds every row's value (BOOLEAN, INT64, FLOAT
//! when every value is an exact f32, DOUBLE, STRING); a name whose values do not fit one type, or that some rows lack, is one column of
//! JSON text. Field metadata (`kairo.side`, `kairo.name`, `kairo.index`, `kairo.encoding`) says
//! what each column holds, so names are only for people.
//!
//! Segments written before are Arrow IPC files with the inputs and outputs as JSON text; [`read`]
//! reads both. Everything that reads a segment comes through [`read`], which finds each column by
//! name and checks its type, so a segment with an unexpected schema is an error naming the
//! column, never a panic. The inference server and erasure write through [`write`].

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, StringBuilder, UInt32Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt16Type, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

/// One logged row: a request's row `row`, what went in and what came out.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub request_id: String,
    pub row: u32,
    pub time_ms: i64,
    pub model: String,
    pub version: i64,
    /// `stable`, `canary` or `shadow`.
    pub arm: String,
    pub latency_us: i64,
    pub status: u16,
    /// The row's inputs by tensor name (a scalar for one value per row, else an array).
    pub inputs: Value,
    pub outputs: Value,
}

impl LogRow {
    /// `inputs` or `outputs`, as a profile's column source names the side.
    pub fn side(&self, side: &str) -> Option<&Value> {
        match side {
            "inputs" => Some(&self.inputs),
            "outputs" => Some(&self.outputs),
            _ => None,
        }
    }

    /// The row as JSON (`kairo models predictions --json`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "request_id": self.request_id, "row": self.row, "time_ms": self.time_ms,
            "model": self.model, "version": self.version, "arm": self.arm,
            "latency_us": self.latency_us, "status": self.status,
            "inputs": self.inputs, "outputs": self.outputs,
        })
    }
}

/// A segment that cannot be read back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    #[error("not an Arrow IPC file: {0}")]
    Format(String),
    #[error("column '{column}' is missing")]
    Missing { column: &'static str },
    #[error("column '{column}' is {found}, expected {expected}")]
    Type { column: &'static str, found: String, expected: String },
    #[error("column '{column}' has a null at row {row}")]
    Null { column: &'static str, row: usize },
}

/// The request's fields, first in every segment (both formats).
fn fixed_fields() -> Vec<Field> {
    vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::UInt32, false),
        Field::new("time_ms", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("latency_us", DataType::Int64, false),
        Field::new("status", DataType::UInt16, false),
    ]
}

fn column<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
    expected: &DataType,
) -> Result<&'a Arc<dyn Array>, SegmentError> {
    let c = batch.column_by_name(name).ok_or(SegmentError::Missing { column: name })?;
    if c.data_type() != expected {
        return Err(SegmentError::Type {
            column: name,
            found: c.data_type().to_string(),
            expected: expected.to_string(),
        });
    }
    if c.null_count() > 0 {
        let row = (0..c.len()).find(|i| c.is_null(*i)).unwrap_or(0);
        return Err(SegmentError::Null { column: name, row });
    }
    Ok(c)
}

/// Read a segment back (Parquet, or the Arrow IPC of older segments), row by row, oldest
/// first. JSON text that does not parse reads as `null` (the row still counts).
pub fn read(bytes: &[u8]) -> Result<Vec<LogRow>, SegmentError> {
    if bytes.starts_with(PARQUET_MAGIC) {
        read_parquet(bytes)
    } else {
        read_ipc(bytes)
    }
}

const PARQUET_MAGIC: &[u8] = b"PAR1";

/// Rows of one batch with their request fields read; `inputs` and `outputs` still `null`.
fn fixed_rows(batch: &RecordBatch, out: &mut Vec<LogRow>) -> Result<(), SegmentError> {
    let text = |name| column(batch, name, &DataType::Utf8).map(|c| c.as_string::<i32>());
    let (ids, models, arms) = (text("request_id")?, text("model")?, text("arm")?);
    let rows = column(batch, "row", &DataType::UInt32)?.as_primitive::<UInt32Type>();
    let int64 = |name| column(batch, name, &DataType::Int64).map(|c| c.as_primitive::<Int64Type>());
    let (times, versions, latency) = (int64("time_ms")?, int64("version")?, int64("latency_us")?);
    let status = column(batch, "status", &DataType::UInt16)?.as_primitive::<UInt16Type>();
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        out.push(LogRow {
            request_id: ids.value(i).to_string(),
            row: rows.value(i),
            time_ms: times.value(i),
            model: models.value(i).to_string(),
            version: versions.value(i),
            arm: arms.value(i).to_string(),
            latency_us: latency.value(i),
            status: status.value(i),
            inputs: Value::Null,
            outputs: Value::Null,
        });
    }
    Ok(())
}

fn read_ipc(bytes: &[u8]) -> Result<Vec<LogRow>, SegmentError> {
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| SegmentError::Format(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| SegmentError::Format(e.to_string()))?;
        let text = |name| column(&batch, name, &DataType::Utf8).map(|c| c.as_string::<i32>());
        let (ins, outs) = (text("inputs")?, text("outputs")?);
        let first = out.len();
        fixed_rows(&batch, &mut out)?;
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        for (i, row) in out[first..].iter_mut().enumerate() {
            row.inputs = json(ins.value(i));
            row.outputs = json(outs.value(i));
        }
    }
    Ok(out)
}

// Field metadata of the element columns.
const SIDE: &str = "kairo.side";
const NAME: &str = "kairo.name";
const INDEX: &str = "kairo.index";
const ENCODING: &str = "kairo.encoding";
/// `kairo.index` of an array's length column.
const LENGTH: &str = "length";

/// Arrays longer than this are logged as one JSON column (a column per element would make a
/// wide image tensor thousands of columns).
const MAX_ARRAY_COLUMNS: usize = 256;
/// Element columns per segment side at most; names past it are JSON columns.
const MAX_SIDE_COLUMNS: usize = 4096;

/// One value per row for an element column; `None` where the row has nothing there.
type Cells<'a> = Vec<Option<&'a Value>>;

/// Columns being assembled for a segment, with unique names.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
    taken: std::collections::HashSet<String>,
}

impl Columns {
    fn push(&mut self, name: String, array: ArrayRef, meta: HashMap<String, String>) {
        let mut unique = name.clone();
        let mut n = 2;
        while !self.taken.insert(unique.clone()) {
            unique = format!("{name}#{n}");
            n += 1;
        }
        self.fields.push(Field::new(unique, array.data_type().clone(), true).with_metadata(meta));
        self.arrays.push(array);
    }

    /// The column for one element (`index`: its place in an array), typed when every value fits
    /// one type, else JSON text (with `null` cells where the row has nothing).
    fn element(&mut self, side: &str, name: &str, index: Option<usize>, cells: &Cells<'_>) {
        let label = match index {
            Some(i) => format!("{side}.{name}[{i}]"),
            None => format!("{side}.{name}"),
        };
        let mut meta = HashMap::from([(SIDE.to_string(), side.to_string()), (NAME.to_string(), name.to_string())]);
        if let Some(i) = index {
            meta.insert(INDEX.to_string(), i.to_string());
        }
        let present: Vec<&Value> = cells.iter().flatten().copied().filter(|v| !v.is_null()).collect();
        let array: ArrayRef = if present.iter().all(|v| v.is_boolean()) && !present.is_empty() {
            let mut b = BooleanBuilder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(c.and_then(Value::as_bool)));
            Arc::new(b.finish())
        } else if present.iter().all(|v| v.as_number().is_some_and(|n| n.is_i64())) && !present.is_empty() {
            let mut b = Int64Builder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(c.and_then(Value::as_i64)));
            Arc::new(b.finish())
        } else if present.iter().all(|v| v.as_number().is_some_and(|n| n.is_f64())) && !present.is_empty() {
            let floats = || cells.iter().map(|c| c.and_then(Value::as_f64));
            // Values that are all f32s (a FP32 tensor's: exactly, or as the shortest decimal
            // they print as) are stored as FLOAT.
            if floats().flatten().all(|v| f64::from(v as f32) == v || shortest_f32(v as f32) == Some(v)) {
                let mut b = Float32Builder::with_capacity(cells.len());
                floats().for_each(|v| b.append_option(v.map(|v| v as f32)));
                Arc::new(b.finish())
            } else {
                let mut b = Float64Builder::with_capacity(cells.len());
                floats().for_each(|v| b.append_option(v));
                Arc::new(b.finish())
            }
        } else if present.iter().all(|v| v.is_string()) {
            let mut b = StringBuilder::with_capacity(cells.len(), 16 * cells.len());
            cells.iter().for_each(|c| b.append_option(c.and_then(Value::as_str)));
            Arc::new(b.finish())
        } else {
            return self.json(label, meta, cells);
        };
        self.push(label, array, meta);
    }

    /// A column of JSON text: `null` cells where the row has nothing.
    fn json(&mut self, label: String, mut meta: HashMap<String, String>, cells: &Cells<'_>) {
        meta.insert(ENCODING.to_string(), "json".to_string());
        let mut b = StringBuilder::with_capacity(cells.len(), 32 * cells.len());
        cells.iter().for_each(|c| b.append_option(c.map(Value::to_string)));
        self.push(label, Arc::new(b.finish()), meta);
    }

    /// The columns of one side (`inputs` or `outputs`) of `rows`.
    fn side(&mut self, side: &str, values: &[&Value]) {
        let scalar = |v: &Value| !v.is_array() && !v.is_object();
        let objects: Option<Vec<&Map<String, Value>>> = values.iter().map(|v| v.as_object()).collect();
        let Some(objects) = objects else {
            // Not an object in every row: the side as one JSON column.
            let meta = HashMap::from([(SIDE.to_string(), side.to_string())]);
            let cells: Cells<'_> = values.iter().map(|v| Some(*v)).collect();
            return self.json(side.to_string(), meta, &cells);
        };
        let mut names: BTreeMap<&str, ()> = BTreeMap::new();
        for o in &objects {
            names.extend(o.keys().map(|k| (k.as_str(), ())));
        }
        let mut used = 0usize;
        for name in names.keys() {
            let cells: Cells<'_> = objects.iter().map(|o| o.get(*name)).collect();
            let everywhere = cells.iter().all(Option::is_some);
            let arrays: Option<Vec<&Vec<Value>>> = cells.iter().map(|c| c.and_then(Value::as_array)).collect();
            let longest = arrays.as_ref().map_or(0, |a| a.iter().map(|v| v.len()).max().unwrap_or(0));
            let room = used < MAX_SIDE_COLUMNS;
            if room && everywhere && cells.iter().flatten().all(|v| scalar(v)) {
                used += 1;
                self.element(side, name, None, &cells);
            } else if let Some(arrays) =
                arrays.filter(|a| room && longest <= MAX_ARRAY_COLUMNS && a.iter().all(|v| v.iter().all(scalar)))
            {
                used += longest + 1;
                let mut lengths = UInt32Builder::with_capacity(arrays.len());
                arrays.iter().for_each(|a| lengths.append_value(a.len() as u32));
                let meta = HashMap::from([
                    (SIDE.to_string(), side.to_string()),
                    (NAME.to_string(), name.to_string()),
                    (INDEX.to_string(), LENGTH.to_string()),
                ]);
                self.push(format!("{side}.{name}[]"), Arc::new(lengths.finish()), meta);
                for i in 0..longest {
                    let cells: Cells<'_> = arrays.iter().map(|a| a.get(i)).collect();
                    self.element(side, name, Some(i), &cells);
                }
            } else {
                let meta = HashMap::from([(SIDE.to_string(), side.to_string()), (NAME.to_string(), name.to_string())]);
                self.json(format!("{side}.{name}"), meta, &cells);
            }
        }
    }
}

/// Write rows as a Parquet segment (zstd): the server's prediction log, and what an erasure
/// leaves of a segment.
pub fn write(rows: &[LogRow]) -> Result<Vec<u8>, SegmentError> {
    use arrow_array::{Int64Array, StringArray, UInt16Array, UInt32Array};
    let fail = |e: parquet::errors::ParquetError| SegmentError::Format(e.to_string());
    let text =
        |f: &dyn Fn(&LogRow) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let int64 = |f: &dyn Fn(&LogRow) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) };
    let mut c = Columns {
        fields: fixed_fields(),
        arrays: vec![
            text(&|r| &r.request_id),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.row))),
            int64(&|r| r.time_ms),
            text(&|r| &r.model),
            int64(&|r| r.version),
            text(&|r| &r.arm),
            int64(&|r| r.latency_us),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.status))),
        ],
        taken: fixed_fields().iter().map(|f| f.name().clone()).collect(),
    };
    for side in ["inputs", "outputs"] {
        let values: Vec<&Value> = rows.iter().map(|r| if side == "inputs" { &r.inputs } else { &r.outputs }).collect();
        c.side(side, &values);
    }
    let schema = Arc::new(Schema::new(c.fields));
    let batch = RecordBatch::try_new(schema.clone(), c.arrays).map_err(|e| SegmentError::Format(e.to_string()))?;
    let zstd = parquet::basic::ZstdLevel::try_new(3).map_err(fail)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(zstd))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.into_inner().map_err(fail)
}

/// How a side is laid out in a Parquet segment.
enum Layout {
    /// One JSON column for the whole side.
    Whole(usize),
    Names(Vec<(String, Element)>),
}

enum Element {
    /// A value per row: its column, and whether it holds JSON text (absent where null).
    Scalar(usize, bool),
    /// An array: its length column and its element columns by index.
    Array(usize, Vec<Option<(usize, bool)>>),
}

fn layouts(schema: &Schema) -> Result<[Layout; 2], SegmentError> {
    let mut sides = [Layout::Names(Vec::new()), Layout::Names(Vec::new())];
    for (ix, field) in schema.fields().iter().enumerate() {
        let meta = field.metadata();
        let side = match meta.get(SIDE).map(String::as_str) {
            Some("inputs") => 0,
            Some("outputs") => 1,
            _ => continue,
        };
        let json = meta.get(ENCODING).is_some_and(|e| e == "json");
        let wrong = |expected: &str| SegmentError::Type {
            column: if side == 0 { "inputs" } else { "outputs" },
            found: format!("{} ({})", field.data_type(), field.name()),
            expected: expected.to_string(),
        };
        if json && field.data_type() != &DataType::Utf8 {
            return Err(wrong("Utf8"));
        }
        let Some(name) = meta.get(NAME) else {
            sides[side] = Layout::Whole(ix);
            continue;
        };
        let Layout::Names(names) = &mut sides[side] else { continue };
        let position = match names.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                names.push((name.clone(), Element::Array(usize::MAX, Vec::new())));
                names.len() - 1
            }
        };
        let element = &mut names[position].1;
        match meta.get(INDEX).map(String::as_str) {
            None => *element = Element::Scalar(ix, json),
            Some(LENGTH) => {
                if field.data_type() != &DataType::UInt32 {
                    return Err(wrong("UInt32"));
                }
                if let Element::Array(len, _) = element {
                    *len = ix;
                }
            }
            Some(i) => {
                let i: usize = i.parse().map_err(|_| wrong("an element index"))?;
                if i >= MAX_ARRAY_COLUMNS {
                    return Err(wrong("an element index below 256"));
                }
                if let Element::Array(_, elements) = element {
                    if elements.len() <= i {
                        elements.resize(i + 1, None);
                    }
                    elements[i] = Some((ix, json));
                }
            }
        }
    }
    for layout in &sides {
        if let Layout::Names(names) = layout {
            if names.iter().any(|(_, e)| matches!(e, Element::Array(usize::MAX, _))) {
                return Err(SegmentError::Format("an array column has no length column".into()));
            }
        }
    }
    Ok(sides)
}

/// The shortest decimal of `x`, read as an f64: the number a FP32 value prints as.
fn shortest_f32(x: f32) -> Option<f64> {
    x.is_finite().then(|| zmij::Buffer::new().format_finite(x).parse::<f64>().ok()).flatten()
}

/// Cell `i` of `col` as JSON; None where null.
fn cell(col: &ArrayRef, json: bool, i: usize) -> Option<Value> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => {
            serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(i)).map_or(Value::Null, Value::Number)
        }
        // The number a FP32 value always printed as: its shortest decimal, read as an f64.
        DataType::Float32 => {
            let x = col.as_primitive::<Float32Type>().value(i);
            shortest_f32(x).and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        DataType::Utf8 if json => serde_json::from_str(col.as_string::<i32>().value(i)).unwrap_or(Value::Null),
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(i).to_string()),
        _ => Value::Null,
    })
}

fn read_parquet(bytes: &[u8]) -> Result<Vec<LogRow>, SegmentError> {
    let format = |e: parquet::errors::ParquetError| SegmentError::Format(e.to_string());
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
            .map_err(format)?;
    let reader = builder.with_batch_size(65_536).build().map_err(format)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| SegmentError::Format(e.to_string()))?;
        let sides = layouts(&batch.schema())?;
        for (ix, _) in batch.schema().fields().iter().enumerate() {
            let t = batch.column(ix).data_type();
            if !matches!(
                t,
                DataType::Boolean
                    | DataType::Int64
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Utf8
                    | DataType::UInt32
                    | DataType::UInt16
            ) {
                return Err(SegmentError::Format(format!("column {ix} has the unexpected type {t}")));
            }
        }
        let first = out.len();
        fixed_rows(&batch, &mut out)?;
        for (i, row) in out[first..].iter_mut().enumerate() {
            for (side, layout) in sides.iter().enumerate() {
                let value = match layout {
                    Layout::Whole(c) => cell(batch.column(*c), true, i).unwrap_or(Value::Null),
                    Layout::Names(names) => {
                        let mut map = Map::new();
                        for (name, element) in names {
                            match element {
                                Element::Scalar(c, json) => match cell(batch.column(*c), *json, i) {
                                    Some(v) => {
                                        map.insert(name.clone(), v);
                                    }
                                    None if !*json => {
                                        map.insert(name.clone(), Value::Null);
                                    }
                                    None => {}
                                },
                                Element::Array(len, elements) => {
                                    let lengths = batch.column(*len).as_primitive::<UInt32Type>();
                                    if lengths.is_null(i) {
                                        continue;
                                    }
                                    // The writer makes a column for every index below the longest row.
                                    let n = (lengths.value(i) as usize).min(elements.len());
                                    let items = (0..n)
                                        .map(|k| {
                                            elements
                                                .get(k)
                                                .copied()
                                                .flatten()
                                                .and_then(|(c, json)| cell(batch.column(c), json, i))
                                                .unwrap_or(Value::Null)
                                        })
                                        .collect();
                                    map.insert(name.clone(), Value::Array(items));
                                }
                            }
                        }
                        Value::Object(map)
                    }
                };
                if side == 0 {
                    row.inputs = value;
                } else {
                    row.outputs = value;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int32Array, Int64Array, StringArray, UInt16Array, UInt32Array};

    /// The Arrow IPC segments written before issue 22.
    fn schema() -> Schema {
        let mut fields = fixed_fields();
        fields.push(Field::new("inputs", DataType::Utf8, false));
        fields.push(Field::new("outputs", DataType::Utf8, false));
        Schema::new(fields)
    }

    fn write_ipc(schema: Schema, columns: Vec<ArrayRef>) -> Vec<u8> {
        let schema = Arc::new(schema);
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    fn good_columns() -> Vec<ArrayRef> {
        let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        vec![
            s("r-1"),
            Arc::new(UInt32Array::from(vec![0])),
            Arc::new(Int64Array::from(vec![5])),
            s("clf"),
            Arc::new(Int64Array::from(vec![2])),
            s("stable"),
            Arc::new(Int64Array::from(vec![70])),
            Arc::new(UInt16Array::from(vec![200])),
            s(r#"{"x":[1,2]}"#),
            s("not json"),
        ]
    }

    #[test]
    fn rows_are_read_by_column_name() {
        // The same columns in another order read the same.
        let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = good_columns();
        fields.reverse();
        columns.reverse();
        let rows = read(&write_ipc(Schema::new(fields), columns)).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.request_id.as_str(), r.row, r.time_ms, r.version, r.status), ("r-1", 0, 5, 2, 200));
        assert_eq!(r.inputs, serde_json::json!({"x": [1, 2]}));
        assert_eq!(r.outputs, Value::Null);
    }

    #[test]
    fn an_unexpected_schema_is_an_error_naming_the_column() {
        let mut columns = good_columns();
        let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[4] = Field::new("version", DataType::Int32, false);
        columns[4] = Arc::new(Int32Array::from(vec![2]));
        let err = read(&write_ipc(Schema::new(fields.clone()), columns.clone())).unwrap_err();
        assert_eq!(err.to_string(), "column 'version' is Int32, expected Int64");
        fields.remove(4);
        columns.remove(4);
        let err = read(&write_ipc(Schema::new(fields), columns)).unwrap_err();
        assert_eq!(err, SegmentError::Missing { column: "version" });
        assert!(matches!(read(b"garbage"), Err(SegmentError::Format(_))));
    }

    fn row(i: u32, inputs: Value, outputs: Value) -> LogRow {
        LogRow {
            request_id: format!("r-{i}"),
            row: i,
            time_ms: 1000 + i64::from(i),
            model: "m".into(),
            version: 3,
            arm: "stable".into(),
            latency_us: 70,
            status: 200,
            inputs,
            outputs,
        }
    }

    #[test]
    fn parquet_segments_read_back_exactly_with_typed_columns() {
        use serde_json::json;
        let rows = vec![
            row(
                0,
                json!({"age": 41, "x": [0.5, 1.25], "plan": "pro", "ok": true, "odd": 1}),
                json!({"label": 1, "probabilities": [0.25, 0.75]}),
            ),
            row(
                1,
                json!({"age": 7, "x": [2.0], "plan": null, "ok": false, "odd": "one"}),
                json!({"label": 0, "probabilities": [0.5, 0.5]}),
            ),
            row(
                2,
                json!({"age": null, "x": [], "plan": "free", "ok": true, "odd": [1, {"a": 2}], "extra": 9}),
                json!({"label": 1, "probabilities": [0.1, 0.123456789012345]}),
            ),
        ];
        let bytes = write(&rows).unwrap();
        assert!(bytes.starts_with(b"PAR1"));
        assert_eq!(read(&bytes).unwrap(), rows);

        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let schema = reader.schema().clone();
        let kind = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(kind("inputs.age"), DataType::Int64);
        assert_eq!(kind("inputs.x[]"), DataType::UInt32);
        // Exact f32 values (a FP32 tensor's) are FLOAT; others DOUBLE.
        assert_eq!(kind("inputs.x[1]"), DataType::Float32);
        assert_eq!(kind("inputs.plan"), DataType::Utf8);
        assert_eq!(kind("inputs.ok"), DataType::Boolean);
        assert_eq!(kind("outputs.probabilities[0]"), DataType::Float32, "0.1 prints the same as an f32");
        assert_eq!(kind("outputs.probabilities[1]"), DataType::Float64);
        // Mixed types, and a name some rows lack, are JSON text.
        let encoding = |name: &str| schema.field_with_name(name).unwrap().metadata().get(ENCODING).cloned();
        assert_eq!(encoding("inputs.odd").as_deref(), Some("json"));
        assert_eq!(encoding("inputs.extra").as_deref(), Some("json"));
        assert_eq!(encoding("inputs.age"), None);
    }

    #[test]
    fn sides_that_are_not_objects_and_wide_arrays_read_back() {
        use serde_json::json;
        let wide: Vec<f64> = (0..300).map(f64::from).collect();
        let rows = vec![row(0, Value::Null, json!({"y": wide})), row(1, json!({"a": 1}), json!({"y": [1.5]}))];
        assert_eq!(read(&write(&rows).unwrap()).unwrap(), rows);
        assert_eq!(read(&write(&[]).unwrap()).unwrap(), vec![]);
        assert!(matches!(read(b"PAR1 but not parquet"), Err(SegmentError::Format(_))));
    }
}
