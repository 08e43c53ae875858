//! MLflow's scoring protocol (`POST /invocations`): `dataframe_split`, `dataframe_records`,
//! `instances`, `inputs` (JSON) and CSV, mapped onto the model's inputs.
//!
//! Columns map to inputs by name (one `[N, 1]` input per column, as skl2onnx exports
//! pipelines); a model with one `[N, k]` input takes the k columns in order.

use std::collections::HashMap;

use kairo_runtime::{DType, Data, Signature, Tensor};
use serde_json::{Map, Value};

/// A table of cells as the request gave them.
struct Frame {
    columns: Option<Vec<String>>,
    rows: Vec<Vec<Value>>,
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

/// The records under `key`, keys in written order.
fn ordered_records(body: &[u8], key: &str) -> Result<Vec<OrderedRecord>, String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        dataframe_records: Option<Vec<OrderedRecord>>,
        #[serde(default)]
        instances: Option<Vec<OrderedRecord>>,
        #[serde(default)]
        inputs: Option<Vec<OrderedRecord>>,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| format!("`{key}` must be an array of objects: {e}"))?;
    match key {
        "dataframe_records" => b.dataframe_records,
        "instances" => b.instances,
        _ => b.inputs,
    }
    .ok_or_else(|| format!("`{key}` is missing"))
}

pub fn decode_json(body: &[u8], sig: &Signature) -> Result<HashMap<String, Tensor>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(
            "the body must be a JSON object with one of dataframe_split, dataframe_records, instances, inputs".into()
        );
    };
    let keys: Vec<&str> = ["dataframe_split", "dataframe_records", "instances", "inputs"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if keys.len() != 1 {
        return Err(format!(
            "the body must have exactly one of dataframe_split, dataframe_records, instances, inputs (found {})",
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        ));
    }
    let value = &obj[keys[0]];
    match keys[0] {
        "dataframe_split" => {
            let columns = value
                .get("columns")
                .and_then(Value::as_array)
                .map(|c| c.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect());
            let data = value.get("data").and_then(Value::as_array).ok_or("dataframe_split needs a `data` array")?;
            let rows = data
                .iter()
                .enumerate()
                .map(|(i, r)| r.as_array().cloned().ok_or_else(|| format!("dataframe_split row {i} is not an array")))
                .collect::<Result<_, _>>()?;
            frame_to_inputs(Frame { columns, rows }, sig)
        }
        "dataframe_records" => records(&ordered_records(body, "dataframe_records")?, sig, "dataframe_records"),
        _ => {
            // `instances`/`inputs`: a dict of named tensors, a list of records, or a list of rows.
            match value {
                Value::Object(named) => named_tensors(named, sig),
                Value::Array(items) if items.first().is_some_and(Value::is_object) => {
                    records(&ordered_records(body, keys[0])?, sig, keys[0])
                }
                Value::Array(items) => {
                    let rows = items
                        .iter()
                        .map(|r| match r {
                            Value::Array(a) => a.clone(),
                            scalar => vec![scalar.clone()],
                        })
                        .collect();
                    frame_to_inputs(Frame { columns: None, rows }, sig)
                }
                _ => Err(format!("`{}` must be an array or an object", keys[0])),
            }
        }
    }
}

fn records(items: &[OrderedRecord], sig: &Signature, what: &str) -> Result<HashMap<String, Tensor>, String> {
    let first = items.first().ok_or_else(|| format!("`{what}` is empty"))?;
    let columns: Vec<String> = first.0.iter().map(|(k, _)| k.clone()).collect();
    let rows = items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            columns
                .iter()
                .map(|c| {
                    r.0.iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("`{what}` item {i} has no column '{c}'"))
                })
                .collect()
        })
        .collect::<Result<_, String>>()?;
    frame_to_inputs(Frame { columns: Some(columns), rows }, sig)
}

fn named_tensors(named: &Map<String, Value>, sig: &Signature) -> Result<HashMap<String, Tensor>, String> {
    let mut out = HashMap::new();
    for (name, value) in named {
        let spec = sig.input(name).ok_or_else(|| unknown(name, sig))?;
        let mut flat = Vec::new();
        let mut shape = Vec::new();
        shape_of(value, &mut shape);
        flatten(value, &mut flat);
        if shape.len() < spec.shape.len() {
            shape.resize(spec.shape.len(), 1);
        }
        let data = cells(name, spec.dtype, &flat)?;
        out.insert(name.clone(), Tensor::new(shape, data).map_err(|e| format!("input '{name}': {e}"))?);
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

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

fn unknown(name: &str, sig: &Signature) -> String {
    let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
    format!("unknown input '{name}'; the model's inputs are {}", names.join(", "))
}

fn frame_to_inputs(frame: Frame, sig: &Signature) -> Result<HashMap<String, Tensor>, String> {
    let n = frame.rows.len();
    if n == 0 {
        return Err("no rows to score".into());
    }
    let width = frame.rows[0].len();
    if let Some((i, r)) = frame.rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(format!("row {i} has {} values, row 0 has {width}", r.len()));
    }
    let by_name = frame.columns.as_ref().is_some_and(|cols| sig.inputs.iter().all(|s| cols.contains(&s.name)));
    let mut out = HashMap::new();
    if by_name {
        let cols = frame.columns.as_deref().unwrap_or(&[]);
        if let Some(extra) = cols.iter().find(|c| sig.input(c).is_none()) {
            return Err(unknown(extra, sig));
        }
        for spec in &sig.inputs {
            let c = cols.iter().position(|x| *x == spec.name).unwrap_or(0);
            let column: Vec<Value> = frame.rows.iter().map(|r| r[c].clone()).collect();
            let shape = if spec.shape.len() == 2 { vec![n, 1] } else { vec![n] };
            let data = cells(&spec.name, spec.dtype, &column)?;
            out.insert(spec.name.clone(), Tensor::new(shape, data)?);
        }
        return Ok(out);
    }
    if sig.inputs.len() != 1 {
        let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("the model has inputs {}; name the columns after them", names.join(", ")));
    }
    let spec = &sig.inputs[0];
    let flat: Vec<Value> = frame.rows.into_iter().flatten().collect();
    let data = cells(&spec.name, spec.dtype, &flat)?;
    let shape = if spec.shape.len() <= 1 { vec![n * width] } else { vec![n, width] };
    out.insert(spec.name.clone(), Tensor::new(shape, data)?);
    Ok(out)
}

/// Convert cells to the input's element type; numbers as text are accepted (CSV).
fn cells(name: &str, dtype: DType, values: &[Value]) -> Result<Data, String> {
    let num = |i: usize, v: &Value| -> Result<f64, String> {
        match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("input '{name}': value {i} is not a number")),
            Value::String(s) => {
                s.trim().parse().map_err(|_| format!("input '{name}': value {i} (`{s}`) is not a number"))
            }
            Value::Null => Ok(f64::NAN),
            other => Err(format!("input '{name}': value {i} ({other}) is not a number")),
        }
    };
    Ok(match dtype {
        DType::F32 => {
            Data::F32(values.iter().enumerate().map(|(i, v)| num(i, v).map(|x| x as f32)).collect::<Result<_, _>>()?)
        }
        DType::F64 => Data::F64(values.iter().enumerate().map(|(i, v)| num(i, v)).collect::<Result<_, _>>()?),
        DType::I64 | DType::I32 => {
            let ints: Vec<i64> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = num(i, v)?;
                    if x.fract() != 0.0 || !x.is_finite() {
                        return Err(format!("input '{name}': value {i} is not an integer"));
                    }
                    Ok(x as i64)
                })
                .collect::<Result<_, _>>()?;
            if dtype == DType::I64 {
                Data::I64(ints)
            } else {
                Data::I32(ints.into_iter().map(|x| x as i32).collect())
            }
        }
        DType::Bytes => Data::Bytes(
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        DType::Bool => Data::Bool(values.iter().map(|v| v.as_bool().unwrap_or(false)).collect()),
        other => return Err(format!("input '{name}' has type {other}, which /invocations does not fill")),
    })
}

pub fn decode_csv(body: &[u8], sig: &Signature) -> Result<HashMap<String, Tensor>, String> {
    let mut reader = csv::Reader::from_reader(body);
    let columns: Vec<String> =
        reader.headers().map_err(|e| format!("malformed CSV: {e}"))?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("malformed CSV row {}: {e}", i + 2))?;
        rows.push(rec.iter().map(|c| if c.is_empty() { Value::Null } else { Value::String(c.to_string()) }).collect());
    }
    frame_to_inputs(Frame { columns: Some(columns), rows }, sig)
}

/// `{"predictions": ...}`: a list for one output; records of all outputs otherwise. Written
/// directly as bytes (floats in their own width's shortest form).
pub fn encode(sig: &Signature, outputs: &[Tensor]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + outputs.iter().map(|t| t.data.len() * 12).sum::<usize>());
    let rows = outputs.first().map(|t| t.rows()).unwrap_or(0);
    let cell = |buf: &mut Vec<u8>, t: &Tensor, r: usize| {
        let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        if t.shape.len() <= 1 || width == 1 {
            crate::oip::write_scalar(buf, &t.data, r);
        } else {
            crate::oip::write_data(buf, &t.data, r * width, (r + 1) * width);
        }
    };
    buf.extend_from_slice(b"{\"predictions\":[");
    for r in 0..rows {
        if r > 0 {
            buf.push(b',');
        }
        if outputs.len() == 1 {
            cell(&mut buf, &outputs[0], r);
            continue;
        }
        buf.push(b'{');
        for (i, (spec, t)) in sig.outputs.iter().zip(outputs).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let _ = serde_json::to_writer(&mut buf, &spec.name);
            buf.push(b':');
            cell(&mut buf, t, r);
        }
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
    buf
}
