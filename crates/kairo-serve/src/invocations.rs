//! MLflow's scoring protocol (`POST /invocations`): `dataframe_split`, `dataframe_records`,
//! `instances`, `inputs` (JSON) and CSV, mapped onto the model's inputs.
//!
//! Columns map to inputs by name (one `[N, 1]` input per column, as skl2onnx exports
//! pipelines); a model with one `[N, k]` input takes the k columns in order.
//!
//! Cells go straight into typed columns (CSV is never held as text cells, JSON never copied),
//! and row and element counts are checked against [`Limits`] as they grow.

use std::collections::HashMap;

use kairo_runtime::{DType, Data, Signature, Tensor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::limits::{Limits, Refusal};

/// One input's cells, converted as they arrive.
enum Column {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Bytes(Vec<String>),
}

/// A cell as the request or file gave it: text as in CSV (empty = missing), a JSON value, or
/// a typed value from a columnar file (each means what the same JSON value would).
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
    /// A number, as a JSON number would be read.
    Number(f64),
    Bool(bool),
    /// No value (JSON `null`, a null in a columnar file).
    Missing,
}

/// A column of numbers from a columnar file, each read as [`Cell::Number`] of it.
#[derive(Clone, Copy, Debug)]
pub enum Numbers<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Numbers<'_> {
    fn len(&self) -> usize {
        match self {
            Numbers::F32(v) => v.len(),
            Numbers::F64(v) => v.len(),
        }
    }

    /// Value `r` as the f64 a [`Cell::Number`] would carry.
    #[inline]
    fn get(&self, r: usize) -> f64 {
        match self {
            Numbers::F32(v) => f64::from(v[r]),
            Numbers::F64(v) => v[r],
        }
    }
}

/// A cell that does not fit its input: which table column, and why (names the value).
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    /// The cell's column in the table (0-based).
    pub column: usize,
    /// The model input it was going to.
    pub input: String,
    pub message: String,
}

impl Column {
    fn new(name: &str, dtype: DType) -> Result<Column, Refusal> {
        Ok(match dtype {
            DType::F32 => Column::F32(Vec::new()),
            DType::F64 => Column::F64(Vec::new()),
            DType::I64 => Column::I64(Vec::new()),
            DType::I32 => Column::I32(Vec::new()),
            DType::Bool => Column::Bool(Vec::new()),
            DType::Bytes => Column::Bytes(Vec::new()),
            other => {
                return Err(Refusal::Bad(format!("input '{name}' has type {other}, which /invocations does not fill")))
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Column::F32(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Bytes(v) => v.len(),
        }
    }

    /// Append one cell; numbers as text are accepted (CSV), a missing cell is NaN. The error
    /// says what is wrong with the value; the caller says where it was.
    fn push(&mut self, cell: Cell) -> Result<(), String> {
        let num = || -> Result<f64, String> {
            match cell {
                Cell::Text("") | Cell::Json(Value::Null) | Cell::Missing => Ok(f64::NAN),
                Cell::Number(x) => Ok(x),
                Cell::Text(s) => s.trim().parse().map_err(|_| format!("`{s}` is not a number")),
                Cell::Json(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
                Cell::Json(Value::String(s)) => s.trim().parse().map_err(|_| format!("`{s}` is not a number")),
                Cell::Json(other) => Err(format!("{other} is not a number")),
                Cell::Bool(b) => Err(format!("{b} is not a number")),
            }
        };
        let int = || -> Result<i64, String> {
            let x = num()?;
            if x.fract() != 0.0 || !x.is_finite() || x < i64::MIN as f64 || x > i64::MAX as f64 {
                return Err(format!("{x} is not an integer"));
            }
            Ok(x as i64)
        };
        match self {
            Column::F32(v) => v.push(num()? as f32),
            Column::F64(v) => v.push(num()?),
            Column::I64(v) => v.push(int()?),
            Column::I32(v) => {
                let x = int()?;
                v.push(i32::try_from(x).map_err(|_| format!("{x} is out of range for INT32"))?)
            }
            Column::Bool(v) => v.push(match cell {
                Cell::Json(Value::Bool(b)) => *b,
                Cell::Bool(b) => b,
                Cell::Text(s) => matches!(s.trim(), "true" | "True" | "TRUE" | "1"),
                Cell::Json(_) | Cell::Number(_) | Cell::Missing => false,
            }),
            Column::Bytes(v) => v.push(match cell {
                Cell::Text("") | Cell::Missing => "null".to_string(),
                Cell::Text(s) => s.to_string(),
                Cell::Json(Value::String(s)) => s.clone(),
                Cell::Json(other) => other.to_string(),
                Cell::Number(x) => Value::from(x).to_string(),
                Cell::Bool(b) => b.to_string(),
            }),
        }
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Column::F32(v) => v.truncate(len),
            Column::F64(v) => v.truncate(len),
            Column::I64(v) => v.truncate(len),
            Column::I32(v) => v.truncate(len),
            Column::Bool(v) => v.truncate(len),
            Column::Bytes(v) => v.truncate(len),
        }
    }

    fn into_data(self) -> Data {
        match self {
            Column::F32(v) => Data::F32(v),
            Column::F64(v) => Data::F64(v),
            Column::I64(v) => Data::I64(v),
            Column::I32(v) => Data::I32(v),
            Column::Bool(v) => Data::Bool(v),
            Column::Bytes(v) => Data::Bytes(v),
        }
    }
}

/// Where a table's columns go: one input per named column, or every column into one
/// `[N, k]` input.
struct Layout {
    /// For each table column, the index of the builder it feeds.
    target: Vec<usize>,
    builders: Vec<(String, Column)>,
    /// One input taking all columns (row-major), rather than one input per column.
    single: bool,
}

impl Layout {
    fn new(columns: Option<&[String]>, width: usize, sig: &Signature) -> Result<Layout, Refusal> {
        let by_name = columns.is_some_and(|cols| sig.inputs.iter().all(|s| cols.contains(&s.name)));
        if let (true, Some(cols)) = (by_name, columns) {
            let mut target = Vec::with_capacity(cols.len());
            for (j, c) in cols.iter().enumerate() {
                if cols[..j].contains(c) {
                    return Err(Refusal::Bad(format!("column '{c}' is given twice")));
                }
                target.push(sig.inputs.iter().position(|s| s.name == *c).ok_or_else(|| unknown(c, sig))?);
            }
            let builders = sig
                .inputs
                .iter()
                .map(|s| Ok((s.name.clone(), Column::new(&s.name, s.dtype)?)))
                .collect::<Result<_, Refusal>>()?;
            return Ok(Layout { target, builders, single: false });
        }
        if sig.inputs.len() != 1 {
            let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(Refusal::Bad(format!(
                "the model has inputs {}; name the columns after them",
                names.join(", ")
            )));
        }
        let spec = &sig.inputs[0];
        Ok(Layout {
            target: vec![0; width],
            builders: vec![(spec.name.clone(), Column::new(&spec.name, spec.dtype)?)],
            single: true,
        })
    }

    /// Append one row of `width` cells: all of them, or (on an error) none.
    fn push_row<'c>(&mut self, cells: impl Iterator<Item = Cell<'c>>) -> Result<(), CellError> {
        let before: Vec<usize> = self.builders.iter().map(|(_, c)| c.len()).collect();
        for (j, cell) in cells.enumerate() {
            let failed = match self.target.get(j).and_then(|t| self.builders.get_mut(*t)) {
                None => Some(CellError {
                    column: j,
                    input: String::new(),
                    message: format!("a row has more than the {} named columns", self.target.len()),
                }),
                Some((name, column)) => {
                    column.push(cell).err().map(|message| CellError { column: j, input: name.clone(), message })
                }
            };
            if let Some(e) = failed {
                for ((_, c), len) in self.builders.iter_mut().zip(before) {
                    c.truncate(len);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish(self, rows: usize, width: usize, sig: &Signature) -> Result<HashMap<String, Tensor>, Refusal> {
        if rows == 0 {
            return Err(Refusal::Bad("no rows to score".into()));
        }
        let mut out = HashMap::with_capacity(self.builders.len());
        for (name, column) in self.builders {
            let rank = sig.input(&name).map_or(1, |s| s.shape.len());
            let shape = match (self.single, rank) {
                (true, 0 | 1) => vec![rows * width],
                (true, _) => vec![rows, width],
                (false, 2) => vec![rows, 1],
                (false, _) => vec![rows],
            };
            let tensor = Tensor::new(shape, column.into_data()).map_err(|e| format!("input '{name}': {e}"))?;
            out.insert(name, tensor);
        }
        Ok(out)
    }
}

/// A table decoded row by row into the model's inputs, exactly as `/invocations` decodes one:
/// columns map to inputs by name (one `[N, 1]` or `[N]` input each), or all of them, in order,
/// to a model's single `[N, k]` input. Batch scoring (`kairo predict`) feeds files through it,
/// so a file's rows score as the same rows sent to the server do.
pub struct TableDecoder {
    layout: Layout,
    width: usize,
    rows: usize,
}

impl TableDecoder {
    /// `columns` are the table's feature columns (ids and other passthrough columns left out).
    pub fn new(columns: &[String], sig: &Signature) -> Result<TableDecoder, Refusal> {
        Ok(TableDecoder { layout: Layout::new(Some(columns), columns.len(), sig)?, width: columns.len(), rows: 0 })
    }

    /// Append a row of `width` cells, or nothing when a cell does not fit.
    pub fn push_row<'c>(&mut self, cells: impl Iterator<Item = Cell<'c>>) -> Result<(), CellError> {
        self.layout.push_row(cells)?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append `rows` rows given a column at a time, every value a number (no missing ones):
    /// each goes through the conversion [`Cell::Number`] gets in [`Self::push_row`], so the
    /// tensors are the same as pushing the rows one by one, without a dispatch per cell.
    /// Returns false, having appended nothing, when an input is not FP32 or FP64 (integer and
    /// text inputs check each value: push those rows one by one).
    pub fn push_numeric_columns(&mut self, columns: &[Numbers<'_>], rows: usize) -> bool {
        let layout = &mut self.layout;
        let numeric = layout.builders.iter().all(|(_, c)| matches!(c, Column::F32(_) | Column::F64(_)));
        if !numeric || columns.len() != self.width || columns.iter().any(|c| c.len() != rows) {
            return false;
        }
        if layout.single {
            let (_, column) = &mut layout.builders[0];
            match column {
                Column::F32(v) => {
                    v.reserve(rows * self.width);
                    for r in 0..rows {
                        v.extend(columns.iter().map(|c| c.get(r) as f32));
                    }
                }
                Column::F64(v) => {
                    v.reserve(rows * self.width);
                    for r in 0..rows {
                        v.extend(columns.iter().map(|c| c.get(r)));
                    }
                }
                _ => unreachable!("checked numeric above"),
            }
        } else {
            for (j, values) in columns.iter().enumerate() {
                match &mut layout.builders[layout.target[j]].1 {
                    Column::F32(v) => v.extend((0..rows).map(|r| values.get(r) as f32)),
                    Column::F64(v) => v.extend((0..rows).map(|r| values.get(r))),
                    _ => unreachable!("checked numeric above"),
                }
            }
        }
        self.rows += rows;
        true
    }

    /// The model's named inputs for the rows pushed (at least one).
    pub fn finish(self, sig: &Signature) -> Result<HashMap<String, Tensor>, Refusal> {
        self.layout.finish(self.rows, self.width, sig)
    }
}

/// Check a table of `rows` × `width` cells against the limits.
fn check_table(what: &str, rows: usize, width: usize, limits: &Limits) -> Result<(), Refusal> {
    limits.check_rows(what, rows)?;
    limits.add_shape(what, &[rows, width], 0)?;
    Ok(())
}

/// The body's one scoring key, kept as text until it is known which it is.
#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    dataframe_split: Option<&'a RawValue>,
    #[serde(borrow, default)]
    dataframe_records: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instances: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
}

const KEYS: &str = "dataframe_split, dataframe_records, instances, inputs";

pub fn decode_json(body: &[u8], sig: &Signature, limits: &Limits) -> Result<HashMap<String, Tensor>, Refusal> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("the body must be a JSON object with one of {KEYS}: {e}"),
        _ => format!("malformed JSON: {e}"),
    })?;
    let present: Vec<(&str, &RawValue)> = [
        ("dataframe_split", parsed.dataframe_split),
        ("dataframe_records", parsed.dataframe_records),
        ("instances", parsed.instances),
        ("inputs", parsed.inputs),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let [(key, raw)] = present[..] else {
        let found: Vec<&str> = present.iter().map(|(k, _)| *k).collect();
        return Err(Refusal::Bad(format!(
            "the body must have exactly one of {KEYS} (found {})",
            if found.is_empty() { "none".to_string() } else { found.join(", ") }
        )));
    };
    let parse = |what: &str| -> Result<Value, Refusal> {
        serde_json::from_str(raw.get()).map_err(|e| Refusal::Bad(format!("`{key}` must be {what}: {e}")))
    };
    match key {
        "dataframe_split" => {
            #[derive(serde::Deserialize)]
            struct Split {
                #[serde(default)]
                columns: Option<Vec<Value>>,
                data: Option<Vec<Value>>,
            }
            let split: Split = serde_json::from_str(raw.get())
                .map_err(|e| Refusal::Bad(format!("dataframe_split needs `columns` and a `data` array: {e}")))?;
            let columns: Option<Vec<String>> = split
                .columns
                .map(|c| c.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect());
            let data = split.data.ok_or("dataframe_split needs a `data` array")?;
            let rows: Vec<&[Value]> = data
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.as_array().map(Vec::as_slice).ok_or_else(|| format!("dataframe_split row {i} is not an array"))
                })
                .collect::<Result<_, _>>()?;
            table(columns.as_deref(), &rows, sig, limits)
        }
        "dataframe_records" => records(raw, key, sig, limits),
        _ => {
            // `instances`/`inputs`: a dict of named tensors, a list of records, or a list of rows.
            let first = raw.get().trim_start().strip_prefix('[').map(str::trim_start);
            if first.is_some_and(|rest| rest.starts_with('{')) {
                return records(raw, key, sig, limits);
            }
            match parse("an array or an object")? {
                Value::Object(named) => named_tensors(&named, sig, limits),
                Value::Array(items) => {
                    let rows: Vec<&[Value]> = items
                        .iter()
                        .map(|r| match r {
                            Value::Array(a) => a.as_slice(),
                            scalar => std::slice::from_ref(scalar),
                        })
                        .collect();
                    table(None, &rows, sig, limits)
                }
                _ => Err(Refusal::Bad(format!("`{key}` must be an array or an object"))),
            }
        }
    }
}

/// A JSON object with its keys in the order the client wrote them (pandas keeps that order
/// for `dataframe_records`; a plain map would sort the columns).
struct OrderedRecord(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OrderedRecord;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column → value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedRecord, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(OrderedRecord(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn records(raw: &RawValue, key: &str, sig: &Signature, limits: &Limits) -> Result<HashMap<String, Tensor>, Refusal> {
    let items: Vec<OrderedRecord> = serde_json::from_str(raw.get())
        .map_err(|e| Refusal::Bad(format!("`{key}` must be an array of objects: {e}")))?;
    let first = items.first().ok_or_else(|| format!("`{key}` is empty"))?;
    let columns: Vec<String> = first.0.iter().map(|(k, _)| k.clone()).collect();
    check_table(&format!("`{key}`"), items.len(), columns.len(), limits)?;
    let mut layout = Layout::new(Some(&columns), columns.len(), sig)?;
    for (i, r) in items.iter().enumerate() {
        let cells = columns
            .iter()
            .map(|c| {
                r.0.iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| Cell::Json(v))
                    .ok_or_else(|| Refusal::Bad(format!("`{key}` item {i} has no column '{c}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        layout.push_row(cells.into_iter()).map_err(|e| refuse(e, i))?;
    }
    layout.finish(items.len(), columns.len(), sig)
}

fn table(
    columns: Option<&[String]>,
    rows: &[&[Value]],
    sig: &Signature,
    limits: &Limits,
) -> Result<HashMap<String, Tensor>, Refusal> {
    let width = rows.first().map_or(0, |r| r.len());
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(Refusal::Bad(format!("row {i} has {} values, row 0 has {width}", r.len())));
    }
    if let Some(cols) = columns {
        if cols.len() != width && !rows.is_empty() {
            return Err(Refusal::Bad(format!("{} columns are named, but rows have {width} values", cols.len())));
        }
    }
    check_table("the request", rows.len(), width, limits)?;
    let mut layout = Layout::new(columns, width, sig)?;
    for (i, r) in rows.iter().enumerate() {
        layout.push_row(r.iter().map(Cell::Json)).map_err(|e| refuse(e, i))?;
    }
    layout.finish(rows.len(), width, sig)
}

fn named_tensors(
    named: &Map<String, Value>,
    sig: &Signature,
    limits: &Limits,
) -> Result<HashMap<String, Tensor>, Refusal> {
    let mut out = HashMap::new();
    let mut total = 0usize;
    for (name, value) in named {
        let spec = sig.input(name).ok_or_else(|| unknown(name, sig))?;
        let mut shape = Vec::new();
        shape_of(value, &mut shape);
        if shape.len() < spec.shape.len() {
            shape.resize(spec.shape.len(), 1);
        }
        let what = format!("input '{name}'");
        if let Some(rows) = shape.first() {
            limits.check_rows(&what, *rows)?;
        }
        total = limits.add_shape(&what, &shape, total)?.1;
        let mut column = Column::new(name, spec.dtype)?;
        let mut cells = Vec::new();
        flatten(value, &mut cells);
        for (i, cell) in cells.into_iter().enumerate() {
            column.push(Cell::Json(cell)).map_err(|e| Refusal::Bad(format!("input '{name}': value {i}: {e}")))?;
        }
        out.insert(name.clone(), Tensor::new(shape, column.into_data()).map_err(|e| format!("input '{name}': {e}"))?);
    }
    Ok(out)
}

fn shape_of(v: &Value, shape: &mut Vec<usize>) {
    if let Value::Array(items) = v {
        shape.push(items.len());
        if let Some(first) = items.first() {
            shape_of(first, shape);
        }
    }
}

fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// A request's cell that does not fit, as the answer says it: the input and the row.
fn refuse(e: CellError, row: usize) -> Refusal {
    if e.input.is_empty() {
        Refusal::Bad(e.message)
    } else {
        Refusal::Bad(format!("input '{}', row {row}: {}", e.input, e.message))
    }
}

fn unknown(name: &str, sig: &Signature) -> Refusal {
    let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
    Refusal::Bad(format!("unknown input '{name}'; the model's inputs are {}", names.join(", ")))
}

/// A CSV body with a header row, read record by record into typed columns.
pub fn decode_csv(body: &[u8], sig: &Signature, limits: &Limits) -> Result<HashMap<String, Tensor>, Refusal> {
    let mut reader = csv::Reader::from_reader(body);
    let columns: Vec<String> =
        reader.headers().map_err(|e| format!("malformed CSV: {e}"))?.iter().map(str::to_string).collect();
    let width = columns.len();
    let mut layout = Layout::new(Some(&columns), width, sig)?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(Refusal::Bad(format!("malformed CSV row {}: {e}", rows + 2))),
        }
        rows += 1;
        check_table("the CSV body", rows, width, limits)?;
        layout.push_row(record.iter().map(Cell::Text)).map_err(|e| refuse(e, rows - 1))?;
    }
    layout.finish(rows, width, sig)
}

/// `{"predictions": ...}`: a list for one output; records of all outputs otherwise. Written
/// directly as bytes (floats in their own width's shortest form), and given up as soon as it
/// would exceed `limits.max_response`.
pub fn encode(sig: &Signature, outputs: &[Tensor], limits: &Limits) -> Result<Vec<u8>, Refusal> {
    let max = limits.max_response;
    let estimate = 64 + outputs.iter().map(|t| t.data.len().saturating_mul(12)).sum::<usize>();
    let mut buf = Vec::with_capacity(estimate.min(max));
    let rows = outputs.first().map(|t| t.rows()).unwrap_or(0);
    let cell = |buf: &mut Vec<u8>, t: &Tensor, r: usize| -> bool {
        let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        let (start, end) = (r * width, (r + 1) * width);
        if end > t.data.len() {
            buf.extend_from_slice(b"null");
            return buf.len() <= max;
        }
        if t.shape.len() <= 1 || width == 1 {
            crate::oip::write_scalar(buf, &t.data, r);
            buf.len() <= max
        } else {
            crate::oip::write_data_bounded(buf, &t.data, start, end, max)
        }
    };
    buf.extend_from_slice(b"{\"predictions\":[");
    for r in 0..rows {
        if r > 0 {
            buf.push(b',');
        }
        if outputs.len() == 1 {
            if !cell(&mut buf, &outputs[0], r) {
                return Err(limits.response_too_large());
            }
            continue;
        }
        buf.push(b'{');
        for (i, (spec, t)) in sig.outputs.iter().zip(outputs).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let _ = serde_json::to_writer(&mut buf, &spec.name);
            buf.push(b':');
            if !cell(&mut buf, t, r) {
                return Err(limits.response_too_large());
            }
        }
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
    if buf.len() > max {
        return Err(limits.response_too_large());
    }
    Ok(buf)
}
