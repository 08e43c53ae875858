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

    /// The finished column of one element (`index`: its place in an array).
    fn element(&mut self, side: &str, name: &str, index: Option<usize>, cells: Cells) {
        let label = match index {
            Some(i) => format!("{side}.{name}[{i}]"),
            None => format!("{side}.{name}"),
        };
        let mut m = meta(side, Some(name), index.map(|i| i.to_string()));
        let (array, json) = cells.finish();
        if json {
            m.insert(ENCODING.to_string(), "json".to_string());
        }
        self.push(label, array, m);
    }
}

/// What a segment is written from: its rows' request fields, and each row's inputs and outputs
/// produced one row at a time, so that writing never holds every row's JSON at once (the
/// server's prediction log builds them from its tensors on demand).
pub trait Source {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn head(&self, i: usize) -> Head<'_>;
    /// Row `i`'s inputs (`side` 0) or outputs (1).
    fn side(&self, i: usize, side: usize) -> std::borrow::Cow<'_, Value>;
}

/// The request fields of one logged row.
pub struct Head<'a> {
    pub request_id: &'a str,
    pub row: u32,
    pub time_ms: i64,
    pub model: &'a str,
    pub version: i64,
    pub arm: &'a str,
    pub latency_us: i64,
    pub status: u16,
}

impl Source for [LogRow] {
    fn len(&self) -> usize {
        <[LogRow]>::len(self)
    }

    fn head(&self, i: usize) -> Head<'_> {
        let r = &self[i];
        Head {
            request_id: &r.request_id,
            row: r.row,
            time_ms: r.time_ms,
            model: &r.model,
            version: r.version,
            arm: &r.arm,
            latency_us: r.latency_us,
            status: r.status,
        }
    }

    fn side(&self, i: usize, side: usize) -> std::borrow::Cow<'_, Value> {
        std::borrow::Cow::Borrowed(if side == 0 { &self[i].inputs } else { &self[i].outputs })
    }
}

const SIDES: [&str; 2] = ["inputs", "outputs"];

/// The shortest decimal of `x`, read as an f64: the number a FP32 value prints as.
fn shortest_f32(x: f32) -> Option<f64> {
    x.is_finite().then(|| zmij::Buffer::new().format_finite(x).parse::<f64>().ok()).flatten()
}

/// What one element column's values were seen to be (first pass).
#[derive(Clone)]
struct Seen {
    boolean: bool,
    int: bool,
    float: bool,
    /// Every float is an f32: exactly, or as the shortest decimal it prints as.
    f32: bool,
    string: bool,
    other: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen { boolean: false, int: false, float: false, f32: true, string: false, other: false }
    }
}

impl Seen {
    fn observe(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::Bool(_) => self.boolean = true,
            Value::Number(n) if n.is_i64() => self.int = true,
            Value::Number(n) if n.is_f64() => {
                self.float = true;
                let x = n.as_f64().unwrap_or(f64::NAN);
                self.f32 &= f64::from(x as f32) == x || shortest_f32(x as f32) == Some(x);
            }
            Value::String(_) => self.string = true,
            _ => self.other = true,
        }
    }

    /// The column for these values: one type, else JSON text.
    fn builder(&self, rows: usize) -> Cells {
        let kinds = [self.boolean, self.int, self.float, self.string].iter().filter(|k| **k).count();
        match (self.other, kinds) {
            (false, 0) => Cells::Text(StringBuilder::with_capacity(rows, 0)),
            (false, 1) if self.boolean => Cells::Bool(BooleanBuilder::with_capacity(rows)),
            (false, 1) if self.int => Cells::Int(Int64Builder::with_capacity(rows)),
            (false, 1) if self.float && self.f32 => Cells::F32(Float32Builder::with_capacity(rows)),
            (false, 1) if self.float => Cells::F64(Float64Builder::with_capacity(rows)),
            (false, 1) => Cells::Text(StringBuilder::with_capacity(rows, 16 * rows)),
            _ => Cells::Json(StringBuilder::with_capacity(rows, 32 * rows)),
        }
    }
}

/// An element column being built (second pass).
enum Cells {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    /// JSON text; null where the row has nothing there.
    Json(StringBuilder),
}

impl Cells {
    fn append(&mut self, v: Option<&Value>) {
        match self {
            Cells::Bool(b) => b.append_option(v.and_then(Value::as_bool)),
            Cells::Int(b) => b.append_option(v.and_then(Value::as_i64)),
            Cells::F32(b) => b.append_option(v.and_then(Value::as_f64).map(|x| x as f32)),
            Cells::F64(b) => b.append_option(v.and_then(Value::as_f64)),
            Cells::Text(b) => b.append_option(v.and_then(Value::as_str)),
            Cells::Json(b) => b.append_option(v.map(Value::to_string)),
        }
    }

    fn finish(self) -> (ArrayRef, bool) {
        match self {
            Cells::Bool(mut b) => (Arc::new(b.finish()), false),
            Cells::Int(mut b) => (Arc::new(b.finish()), false),
            Cells::F32(mut b) => (Arc::new(b.finish()), false),
            Cells::F64(mut b) => (Arc::new(b.finish()), false),
            Cells::Text(mut b) => (Arc::new(b.finish()), false),
            Cells::Json(mut b) => (Arc::new(b.finish()), true),
        }
    }
}

/// What the first pass saw of one name of a side.
#[derive(Default)]
struct NameSeen {
    present: usize,
    scalars: usize,
    /// Rows where it is an array of scalars, and the longest.
    arrays: usize,
    longest: usize,
    value: Seen,
    elements: Vec<Seen>,
}

/// How a name is written (second pass).
enum Plan {
    Scalar(Cells),
    Array(UInt32Builder, Vec<Cells>),
    Json(StringBuilder),
}

/// The first pass over one side: what every name holds; None when a row's side is not an object.
fn survey<S: Source + ?Sized>(src: &S, side: usize) -> Option<BTreeMap<String, NameSeen>> {
    let mut names: BTreeMap<String, NameSeen> = BTreeMap::new();
    let scalar = |v: &Value| !v.is_array() && !v.is_object();
    for i in 0..src.len() {
        let value = src.side(i, side);
        let object = value.as_object()?;
        for (name, v) in object {
            if !names.contains_key(name) {
                names.insert(name.clone(), NameSeen::default());
            }
            let Some(seen) = names.get_mut(name) else { continue };
            seen.present += 1;
            match v {
                Value::Array(items) if items.iter().all(scalar) => {
                    seen.arrays += 1;
                    seen.longest = seen.longest.max(items.len());
                    if items.len() <= MAX_ARRAY_COLUMNS {
                        if seen.elements.len() < items.len() {
                            seen.elements.resize(items.len(), Seen::default());
                        }
                        for (e, item) in seen.elements.iter_mut().zip(items) {
                            e.observe(item);
                        }
                    }
                }
                v if scalar(v) => {
                    seen.scalars += 1;
                    seen.value.observe(v);
                }
                _ => {}
            }
        }
    }
    Some(names)
}

fn meta(side: &str, name: Option<&str>, index: Option<String>) -> HashMap<String, String> {
    let mut m = HashMap::from([(SIDE.to_string(), side.to_string())]);
    if let Some(n) = name {
        m.insert(NAME.to_string(), n.to_string());
    }
    if let Some(i) = index {
        m.insert(INDEX.to_string(), i);
    }
    m
}

/// Write a segment from `src` as Parquet (zstd): two passes over its rows, the first to choose
/// each column's type, the second to fill the columns.
pub fn write_from<S: Source + ?Sized>(src: &S) -> Result<Vec<u8>, SegmentError> {
    let mut c = fixed_columns(src);
    for (s, side) in SIDES.iter().enumerate() {
        json_side(src, s, side, &mut c);
    }
    finish(c)
}

/// The request's fields of every row.
fn fixed_columns<S: Source + ?Sized>(src: &S) -> Columns {
    use arrow_array::builder::UInt16Builder;
    let n = src.len();
    let mut c = Columns::default();
    {
        let (mut ids, mut rows, mut times) =
            (StringBuilder::with_capacity(n, 40 * n), UInt32Builder::with_capacity(n), Int64Builder::with_capacity(n));
        let (mut models, mut versions, mut arms) = (
            StringBuilder::with_capacity(n, 8 * n),
            Int64Builder::with_capacity(n),
            StringBuilder::with_capacity(n, 8 * n),
        );
        let (mut latency, mut status) = (Int64Builder::with_capacity(n), UInt16Builder::with_capacity(n));
        for i in 0..n {
            let h = src.head(i);
            ids.append_value(h.request_id);
            rows.append_value(h.row);
            times.append_value(h.time_ms);
            models.append_value(h.model);
            versions.append_value(h.version);
            arms.append_value(h.arm);
            latency.append_value(h.latency_us);
            status.append_value(h.status);
        }
        c.fields = fixed_fields();
        c.taken = c.fields.iter().map(|f| f.name().clone()).collect();
        c.arrays = vec![
            Arc::new(ids.finish()),
            Arc::new(rows.finish()),
            Arc::new(times.finish()),
            Arc::new(models.finish()),
            Arc::new(versions.finish()),
            Arc::new(arms.finish()),
            Arc::new(latency.finish()),
            Arc::new(status.finish()),
        ];
    }
    c
}

/// One side's columns from each row's JSON: a first pass chooses each column's type, a second
/// fills the columns.
fn json_side<S: Source + ?Sized>(src: &S, s: usize, side: &str, c: &mut Columns) {
    let n = src.len();
    {
        let Some(names) = survey(src, s) else {
            // Not an object in every row: the side as one JSON column.
            let mut b = StringBuilder::with_capacity(n, 64 * n);
            for i in 0..n {
                b.append_value(src.side(i, s).to_string());
            }
            let mut m = meta(side, None, None);
            m.insert(ENCODING.to_string(), "json".to_string());
            c.push(side.to_string(), Arc::new(b.finish()), m);
            return;
        };
        let mut used = 0usize;
        let plans: Vec<(&String, Plan)> = names
            .iter()
            .map(|(name, seen)| {
                let room = used < MAX_SIDE_COLUMNS;
                let plan = if room && seen.scalars == n {
                    used += 1;
                    Plan::Scalar(seen.value.builder(n))
                } else if room && seen.arrays == n && seen.longest <= MAX_ARRAY_COLUMNS {
                    used += seen.longest + 1;
                    Plan::Array(UInt32Builder::with_capacity(n), seen.elements.iter().map(|e| e.builder(n)).collect())
                } else {
                    Plan::Json(StringBuilder::with_capacity(n, 32 * n))
                };
                (name, plan)
            })
            .collect();
        let mut plans = plans;
        for i in 0..n {
            let value = src.side(i, s);
            let object = value.as_object();
            for (name, plan) in plans.iter_mut() {
                let v = object.and_then(|o| o.get(name.as_str()));
                match plan {
                    Plan::Scalar(cells) => cells.append(v),
                    Plan::Array(lengths, cells) => {
                        let items = v.and_then(Value::as_array);
                        lengths.append_option(items.map(|a| a.len() as u32));
                        for (j, cell) in cells.iter_mut().enumerate() {
                            cell.append(items.and_then(|a| a.get(j)));
                        }
                    }
                    Plan::Json(b) => b.append_option(v.map(Value::to_string)),
                }
            }
        }
        for (name, plan) in plans {
            match plan {
                Plan::Scalar(cells) => c.element(side, name, None, cells),
                Plan::Array(mut lengths, cells) => {
                    c.push(
                        format!("{side}.{name}[]"),
                        Arc::new(lengths.finish()),
                        meta(side, Some(name), Some(LENGTH.to_string())),
                    );
                    for (j, cell) in cells.into_iter().enumerate() {
                        c.element(side, name, Some(j), cell);
                    }
                }
                Plan::Json(mut b) => {
                    let mut m = meta(side, Some(name), None);
                    m.insert(ENCODING.to_string(), "json".to_string());
                    c.push(format!("{side}.{name}"), Arc::new(b.finish()), m);
                }
            }
        }
    }
}

/// The values of one logged name, typed, for [`write_typed`]: every row's `width` values, in
/// one or more chunks laid end to end (several requests' tensors).
pub enum Chunk<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    Bool(&'a [bool]),
    Text(&'a [String]),
}

impl Chunk<'_> {
    fn len(&self) -> usize {
        match self {
            Chunk::F32(v) => v.len(),
            Chunk::I64(v) => v.len(),
            Chunk::I32(v) => v.len(),
            Chunk::Bool(v) => v.len(),
            Chunk::Text(v) => v.len(),
        }
    }

    fn same_kind(&self, other: &Chunk<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// One logged name of a side: its values, `width` per row.
pub struct TypedColumn<'a> {
    pub name: String,
    pub width: usize,
    pub chunks: Vec<Chunk<'a>>,
}

/// Element `j` of every row (`width` values per row) as the column [`write_from`] would make
/// of the same values as JSON: FP32 → FLOAT with a null for a value that is not finite (JSON
/// has no NaN; every value null: a STRING column of nulls), integers → INT64, booleans,
/// strings.
fn typed_element(chunks: &[Chunk<'_>], width: usize, j: usize, rows: usize) -> ArrayRef {
    let first = chunks.first();
    match first {
        Some(Chunk::F32(_)) => {
            let mut b = Float32Builder::with_capacity(rows);
            let mut any = false;
            for c in chunks {
                if let Chunk::F32(v) = c {
                    for x in v.iter().skip(j).step_by(width) {
                        if x.is_finite() {
                            any = true;
                            b.append_value(*x);
                        } else {
                            b.append_null();
                        }
                    }
                }
            }
            if any {
                Arc::new(b.finish())
            } else {
                Arc::new(arrow_array::StringArray::new_null(rows))
            }
        }
        Some(Chunk::I64(_)) | Some(Chunk::I32(_)) => {
            let mut b = Int64Builder::with_capacity(rows);
            for c in chunks {
                match c {
                    Chunk::I64(v) => v.iter().skip(j).step_by(width).for_each(|x| b.append_value(*x)),
                    Chunk::I32(v) => v.iter().skip(j).step_by(width).for_each(|x| b.append_value(i64::from(*x))),
                    _ => {}
                }
            }
            Arc::new(b.finish())
        }
        Some(Chunk::Bool(_)) => {
            let mut b = BooleanBuilder::with_capacity(rows);
            for c in chunks {
                if let Chunk::Bool(v) = c {
                    v.iter().skip(j).step_by(width).for_each(|x| b.append_value(*x));
                }
            }
            Arc::new(b.finish())
        }
        Some(Chunk::Text(_)) => {
            let mut b = StringBuilder::with_capacity(rows, 16 * rows);
            for c in chunks {
                if let Chunk::Text(v) = c {
                    v.iter().skip(j).step_by(width).for_each(|x| b.append_value(x));
                }
            }
            Arc::new(b.finish())
        }
        None => Arc::new(arrow_array::StringArray::new_null(rows)),
    }
}

/// Write a segment straight from typed values, the same file [`write_from`] writes when every
/// row's inputs and outputs are these values as JSON, without making any JSON. `src` gives the
/// request fields (its `side` is not read); `sides` the inputs' and the outputs' names. None
/// when a name's values do not fit the fast path (a kind that differs between chunks, a count
/// that is not `rows × width`, arrays wider than a column per element, too many columns):
/// then [`write_from`] writes it.
pub fn write_typed<S: Source + ?Sized>(
    src: &S,
    sides: [&mut Vec<TypedColumn<'_>>; 2],
) -> Option<Result<Vec<u8>, SegmentError>> {
    let n = src.len();
    for columns in sides.iter() {
        let mut used = 0usize;
        for col in columns.iter() {
            let kind = col.chunks.first()?;
            let total: usize = col.chunks.iter().map(Chunk::len).sum();
            if col.width == 0
                || total != n * col.width
                || col.chunks.iter().any(|c| !c.same_kind(kind))
                || col.width > MAX_ARRAY_COLUMNS
            {
                return None;
            }
            used += if col.width == 1 { 1 } else { col.width + 1 };
        }
        if used > MAX_SIDE_COLUMNS {
            return None;
        }
    }
    let mut c = fixed_columns(src);
    for (side, columns) in SIDES.iter().zip(sides) {
        // The JSON path's order: by name.
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        if columns.windows(2).any(|w| w[0].name == w[1].name) {
            return None;
        }
        for col in columns.iter() {
            if col.width == 1 {
                let array = typed_element(&col.chunks, 1, 0, n);
                c.push(format!("{side}.{}", col.name), array, meta(side, Some(&col.name), None));
                continue;
            }
            let lengths = arrow_array::UInt32Array::from(vec![col.width as u32; n]);
            c.push(
                format!("{side}.{}[]", col.name),
                Arc::new(lengths),
                meta(side, Some(&col.name), Some(LENGTH.to_string())),
            );
            for j in 0..col.width {
                let array = typed_element(&col.chunks, col.width, j, n);
                c.push(format!("{side}.{}[{j}]", col.name), array, meta(side, Some(&col.name), Some(j.to_string())));
            }
        }
    }
    Some(finish(c))
}

/// The columns as a Parquet file (zstd level 3). Dictionary pages only for text columns that
/// repeat (model, arm, a categorical input): building a dictionary of distinct numbers and
/// request ids was a quarter of the time spent logging a scored batch, for nothing.
fn finish(c: Columns) -> Result<Vec<u8>, SegmentError> {
    let schema = Arc::new(Schema::new(c.fields));
    let batch = RecordBatch::try_new(schema.clone(), c.arrays).map_err(|e| SegmentError::Format(e.to_string()))?;
    let fail = |e: parquet::errors::ParquetError| SegmentError::Format(e.to_string());
    let zstd = parquet::basic::ZstdLevel::try_new(3).map_err(fail)?;
    let mut props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(zstd))
        .set_dictionary_enabled(false);
    for f in schema.fields().iter().filter(|f| f.data_type() == &DataType::Utf8 && f.name() != "request_id") {
        props = props.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(f.name().as_str()), true);
    }
    let props = props.build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.into_inner().map_err(fail)
}

/// Write rows as a Parquet segment: what an erasure leaves of a segment.
pub fn write(rows: &[LogRow]) -> Result<Vec<u8>, SegmentError> {
    write_from(rows)
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
