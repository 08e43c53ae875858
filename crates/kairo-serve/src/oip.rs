//! Open Inference Protocol v2 bodies: JSON tensors and Triton's binary tensor extension
//! (`Inference-Header-Content-Length`, `binary_data_size`), both ways.

use std::collections::HashMap;

use kairo_runtime::{DType, Data, Tensor};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct RequestHeader {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<InputHeader>,
    #[serde(default)]
    outputs: Option<Vec<OutputHeader>>,
}

#[derive(Deserialize)]
struct InputHeader {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct OutputHeader {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// A decoded inference request.
pub struct Request {
    pub id: Option<String>,
    pub inputs: HashMap<String, Tensor>,
    /// Requested outputs with "send binary" flags; `None` means all outputs.
    pub outputs: Option<Vec<(String, bool)>>,
    /// Binary for outputs not listed (`binary_data_output`).
    pub binary_default: bool,
    /// Sticky canary key from `parameters.routing_key`.
    pub routing_key: Option<String>,
    /// `parameters.contributions`: add per-feature contributions to the outputs.
    pub contributions: bool,
}

/// Decode a body. `json_len` is the `Inference-Header-Content-Length` header, if present.
pub fn decode(body: &[u8], json_len: Option<usize>) -> Result<Request, String> {
    let (head, mut binary) = match json_len {
        Some(n) if n > body.len() => {
            return Err(format!("Inference-Header-Content-Length {n} exceeds the body ({} bytes)", body.len()))
        }
        Some(n) => (&body[..n], &body[n..]),
        None => (body, &body[body.len()..]),
    };
    let header: RequestHeader =
        serde_json::from_slice(head).map_err(|e| format!("malformed inference request: {e}"))?;
    let mut inputs = HashMap::with_capacity(header.inputs.len());
    for input in header.inputs {
        let name = input.name.clone();
        if inputs.contains_key(&name) {
            return Err(format!("input '{name}' is given twice"));
        }
        let tensor = decode_input(input, &mut binary)?;
        inputs.insert(name, tensor);
    }
    if !binary.is_empty() {
        return Err(format!("{} bytes of binary data follow the inputs that no input declared", binary.len()));
    }
    let params = header.parameters.unwrap_or_default();
    let binary_default = params.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    let routing_key =
        params.get("routing_key").and_then(|v| v.as_str().map(str::to_string).or_else(|| Some(v.to_string())));
    let outputs = header.outputs.map(|outs| {
        outs.into_iter()
            .map(|o| {
                let bin = o
                    .parameters
                    .as_ref()
                    .and_then(|p| p.get("binary_data"))
                    .and_then(Value::as_bool)
                    .unwrap_or(binary_default);
                (o.name, bin)
            })
            .collect()
    });
    let contributions = params.get("contributions").and_then(Value::as_bool).unwrap_or(false);
    Ok(Request { id: header.id, inputs, outputs, binary_default, routing_key, contributions })
}

fn decode_input(input: InputHeader, binary: &mut &[u8]) -> Result<Tensor, String> {
    let name = &input.name;
    let dtype = DType::from_oip(&input.datatype)
        .ok_or_else(|| format!("input '{name}': datatype '{}' is not supported", input.datatype))?;
    if input.shape.iter().any(|d| *d < 0) {
        return Err(format!("input '{name}': shape {:?} has a negative dimension", input.shape));
    }
    let shape: Vec<usize> = input.shape.iter().map(|d| *d as usize).collect();
    let count = shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| format!("input '{name}': shape is too large"))?;
    let binary_size = input.parameters.as_ref().and_then(|p| p.get("binary_data_size")).and_then(Value::as_u64);
    let data = match (binary_size, input.data) {
        (Some(size), _) => {
            let size = size as usize;
            if size > binary.len() {
                return Err(format!(
                    "input '{name}': binary_data_size {size} exceeds the remaining body ({} bytes)",
                    binary.len()
                ));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            decode_binary(name, dtype, mine, count)?
        }
        (None, Some(value)) => decode_json(name, dtype, &value, count)?,
        (None, None) => return Err(format!("input '{name}' has no data")),
    };
    Tensor::new(shape, data).map_err(|e| format!("input '{name}': {e}"))
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn decode_json(name: &str, dtype: DType, value: &Value, count: usize) -> Result<Data, String> {
    let mut flat = Vec::with_capacity(count);
    flatten(value, &mut flat);
    if flat.len() != count {
        return Err(format!("input '{name}': shape needs {count} elements, data has {}", flat.len()));
    }
    let num =
        |i: usize, v: &Value| v.as_f64().ok_or_else(|| format!("input '{name}': element {i} ({v}) is not a number"));
    let int =
        |i: usize, v: &Value| v.as_i64().ok_or_else(|| format!("input '{name}': element {i} ({v}) is not an integer"));
    let uint = |i: usize, v: &Value| {
        v.as_u64().ok_or_else(|| format!("input '{name}': element {i} ({v}) is not a non-negative integer"))
    };
    macro_rules! ints {
        ($variant:ident, $t:ty, $f:expr) => {
            Data::$variant(
                flat.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        $f(i, v).and_then(|x| {
                            <$t>::try_from(x)
                                .map_err(|_| format!("input '{name}': element {i} is out of range for {}", dtype))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    Ok(match dtype {
        DType::F32 => {
            Data::F32(flat.iter().enumerate().map(|(i, v)| num(i, v).map(|x| x as f32)).collect::<Result<_, _>>()?)
        }
        DType::F64 => Data::F64(flat.iter().enumerate().map(|(i, v)| num(i, v)).collect::<Result<_, _>>()?),
        DType::I64 => Data::I64(flat.iter().enumerate().map(|(i, v)| int(i, v)).collect::<Result<_, _>>()?),
        DType::I32 => ints!(I32, i32, int),
        DType::I16 => ints!(I16, i16, int),
        DType::I8 => ints!(I8, i8, int),
        DType::U64 => Data::U64(flat.iter().enumerate().map(|(i, v)| uint(i, v)).collect::<Result<_, _>>()?),
        DType::U32 => ints!(U32, u32, uint),
        DType::U16 => ints!(U16, u16, uint),
        DType::U8 => ints!(U8, u8, uint),
        DType::Bool => Data::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_bool().ok_or_else(|| format!("input '{name}': element {i} ({v}) is not a boolean")))
                .collect::<Result<_, _>>()?,
        ),
        DType::Bytes => Data::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("input '{name}': element {i} ({other}) is not a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// BYTES elements in the binary encoding: each a 4-byte little-endian length, then the bytes.
fn decode_binary_strings(name: &str, bytes: &[u8], count: usize) -> Result<Data, String> {
    let mut out = Vec::with_capacity(count);
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!("input '{name}': truncated BYTES element"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            return Err(format!("input '{name}': truncated BYTES element"));
        }
        let s = std::str::from_utf8(&rest[4..4 + len])
            .map_err(|_| format!("input '{name}': BYTES element is not UTF-8"))?;
        out.push(s.to_string());
        rest = &rest[4 + len..];
    }
    if out.len() != count {
        return Err(format!("input '{name}': shape needs {count} elements, data has {}", out.len()));
    }
    Ok(Data::Bytes(out))
}

fn decode_binary(name: &str, dtype: DType, bytes: &[u8], count: usize) -> Result<Data, String> {
    if dtype == DType::Bytes {
        return decode_binary_strings(name, bytes, count);
    }
    let size = dtype.size().unwrap_or(1);
    if bytes.len() != count * size {
        return Err(format!(
            "input '{name}': shape needs {count} {dtype} elements ({} bytes), binary data has {} bytes",
            count * size,
            bytes.len()
        ));
    }
    macro_rules! le {
        ($variant:ident, $t:ty) => {
            Data::$variant(
                bytes.chunks_exact(size).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
            )
        };
    }
    Ok(match dtype {
        DType::F32 => le!(F32, f32),
        DType::F64 => le!(F64, f64),
        DType::I64 => le!(I64, i64),
        DType::I32 => le!(I32, i32),
        DType::I16 => le!(I16, i16),
        DType::I8 => le!(I8, i8),
        DType::U64 => le!(U64, u64),
        DType::U32 => le!(U32, u32),
        DType::U16 => le!(U16, u16),
        DType::U8 => Data::U8(bytes.to_vec()),
        DType::Bool => Data::Bool(bytes.iter().map(|b| *b != 0).collect()),
        DType::Bytes => decode_binary_strings(name, bytes, count)?,
    })
}

fn binary_bytes(data: &Data) -> Vec<u8> {
    macro_rules! le {
        ($v:expr) => {
            $v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    match data {
        Data::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
        Data::U8(v) => v.clone(),
        Data::U16(v) => le!(v),
        Data::U32(v) => le!(v),
        Data::U64(v) => le!(v),
        Data::I8(v) => le!(v),
        Data::I16(v) => le!(v),
        Data::I32(v) => le!(v),
        Data::I64(v) => le!(v),
        Data::F32(v) => le!(v),
        Data::F64(v) => le!(v),
        Data::Bytes(v) => v
            .iter()
            .flat_map(|s| {
                let mut b = (s.len() as u32).to_le_bytes().to_vec();
                b.extend_from_slice(s.as_bytes());
                b
            })
            .collect(),
    }
}

/// Append a tensor's elements `start..end` as a JSON array. Floats are written by serde's
/// shortest round-trip formatting of their own width (`0.1f32` as `0.1`), without building a
/// `Value` per element; NaN and infinities become `null`.
pub fn write_data(buf: &mut Vec<u8>, data: &Data, start: usize, end: usize) {
    macro_rules! slice {
        ($v:expr) => {
            serde_json::to_writer(&mut *buf, &$v[start..end])
        };
    }
    let _ = match data {
        Data::Bool(v) => slice!(v),
        Data::U8(v) => slice!(v),
        Data::U16(v) => slice!(v),
        Data::U32(v) => slice!(v),
        Data::U64(v) => slice!(v),
        Data::I8(v) => slice!(v),
        Data::I16(v) => slice!(v),
        Data::I32(v) => slice!(v),
        Data::I64(v) => slice!(v),
        Data::F32(v) => slice!(v),
        Data::F64(v) => slice!(v),
        Data::Bytes(v) => slice!(v),
    };
}

/// Append element `i` alone, as a JSON scalar.
pub fn write_scalar(buf: &mut Vec<u8>, data: &Data, i: usize) {
    macro_rules! one {
        ($v:expr) => {
            serde_json::to_writer(&mut *buf, &$v[i])
        };
    }
    let _ = match data {
        Data::Bool(v) => one!(v),
        Data::U8(v) => one!(v),
        Data::U16(v) => one!(v),
        Data::U32(v) => one!(v),
        Data::U64(v) => one!(v),
        Data::I8(v) => one!(v),
        Data::I16(v) => one!(v),
        Data::I32(v) => one!(v),
        Data::I64(v) => one!(v),
        Data::F32(v) => one!(v),
        Data::F64(v) => one!(v),
        Data::Bytes(v) => one!(v),
    };
}

fn write_json(buf: &mut Vec<u8>, v: &impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *buf, v);
}

/// Encode a response. Returns the body and, when any output is binary, the JSON length for
/// `Inference-Header-Content-Length`.
pub fn encode(
    model: &str,
    version: i64,
    id: &str,
    outputs: &[(String, Tensor, bool)],
    parameters: Value,
) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::with_capacity(256 + outputs.iter().map(|(_, t, _)| t.data.len() * 12).sum::<usize>());
    let mut blobs = Vec::new();
    out.extend_from_slice(b"{\"model_name\":");
    write_json(&mut out, &model);
    out.extend_from_slice(b",\"model_version\":");
    write_json(&mut out, &version.to_string());
    out.extend_from_slice(b",\"id\":");
    write_json(&mut out, &id);
    out.extend_from_slice(b",\"parameters\":");
    write_json(&mut out, &parameters);
    out.extend_from_slice(b",\"outputs\":[");
    for (i, (name, t, binary)) in outputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_json(&mut out, name);
        out.extend_from_slice(b",\"datatype\":");
        write_json(&mut out, &t.dtype().oip_name());
        out.extend_from_slice(b",\"shape\":");
        write_json(&mut out, &t.shape);
        if *binary {
            let b = binary_bytes(&t.data);
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            write_json(&mut out, &b.len());
            out.push(b'}');
            blobs.push(b);
        } else {
            out.extend_from_slice(b",\"data\":");
            write_data(&mut out, &t.data, 0, t.data.len());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    if blobs.is_empty() {
        return (out, None);
    }
    let json_len = out.len();
    for b in blobs {
        out.extend_from_slice(&b);
    }
    (out, Some(json_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_inputs_decode() {
        let body = br#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]}]}"#;
        let r = decode(body, None).unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(r.inputs["x"].data, Data::F32(vec![1.0, 2.0, 3.0, 4.5]));

        let head = br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&(-2f32).to_le_bytes());
        let r = decode(&body, Some(head.len())).unwrap();
        assert_eq!(r.inputs["x"].data, Data::F32(vec![1.5, -2.0]));
        assert!(r.binary_default);
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = |b: &str| decode(b.as_bytes(), None).err().unwrap();
        assert!(e(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#)
            .contains("input 'x': shape needs 3"));
        assert!(e(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]}"#).contains("not a number"));
        assert!(e(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP8","data":[1]}]}"#)
            .contains("'FP8' is not supported"));
        assert!(e("{").contains("malformed"));
    }
}
