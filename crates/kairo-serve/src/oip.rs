//! Open Inference Protocol v2 bodies: JSON tensors and Triton's binary tensor extension
//! (`Inference-Header-Content-Length`, `binary_data_size`), both ways.

use std::collections::HashMap;

use kairo_runtime::{DType, Data, Tensor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::limits::{Limits, Refusal};

#[derive(Deserialize)]
struct RequestHeader<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    inputs: Vec<InputHeader<'a>>,
    #[serde(default)]
    outputs: Option<Vec<OutputHeader>>,
}

#[derive(Deserialize)]
struct InputHeader<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// Kept as the request's own text until the shape has been checked, then decoded
    /// straight into typed elements (never a `Value` per element).
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
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

/// Most dimensions a tensor may declare.
const MAX_RANK: usize = 32;

/// Decode a body. `json_len` is the `Inference-Header-Content-Length` header, if present.
/// Every declared size is checked against the body and `limits` before it is used.
pub fn decode(body: &[u8], json_len: Option<usize>, limits: &Limits) -> Result<Request, Refusal> {
    let (head, mut binary) = match json_len {
        Some(n) if n > body.len() => {
            return Err(Refusal::Bad(format!(
                "Inference-Header-Content-Length {n} exceeds the body ({} bytes)",
                body.len()
            )))
        }
        Some(n) => body.split_at(n),
        None => (body, &body[body.len()..]),
    };
    let header: RequestHeader =
        serde_json::from_slice(head).map_err(|e| format!("malformed inference request: {e}"))?;
    let mut inputs = HashMap::with_capacity(header.inputs.len());
    let mut elements = 0usize;
    for input in header.inputs {
        let name = input.name.clone();
        if inputs.contains_key(&name) {
            return Err(Refusal::Bad(format!("input '{name}' is given twice")));
        }
        let tensor = decode_input(input, &mut binary, limits, &mut elements)?;
        inputs.insert(name, tensor);
    }
    if !binary.is_empty() {
        return Err(Refusal::Bad(format!(
            "{} bytes of binary data follow the inputs that no input declared",
            binary.len()
        )));
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

fn decode_input(
    input: InputHeader,
    binary: &mut &[u8],
    limits: &Limits,
    elements: &mut usize,
) -> Result<Tensor, Refusal> {
    let name = &input.name;
    let dtype = DType::from_oip(&input.datatype)
        .ok_or_else(|| format!("input '{name}': datatype '{}' is not supported", input.datatype))?;
    if input.shape.len() > MAX_RANK {
        return Err(Refusal::Bad(format!(
            "input '{name}': shape has {} dimensions, at most {MAX_RANK} are accepted",
            input.shape.len()
        )));
    }
    let shape: Vec<usize> = input
        .shape
        .iter()
        .map(|d| usize::try_from(*d))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("input '{name}': shape {:?} has a negative dimension", input.shape))?;
    // Formatted only for a refusal: this runs for every input of every request.
    let what = InputShape(name, &shape);
    if let Some(rows) = shape.first() {
        limits.check_rows(what, *rows)?;
    }
    let (count, total) = limits.add_shape(what, &shape, *elements)?;
    *elements = total;
    let binary_size = input.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
    let data = match (binary_size, input.data) {
        (Some(size), _) => {
            let size = size
                .as_u64()
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| format!("input '{name}': binary_data_size {size} is not a byte count"))?;
            if size > binary.len() {
                return Err(Refusal::Bad(format!(
                    "input '{name}': binary_data_size {size} exceeds the remaining body ({} bytes)",
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            decode_binary(name, dtype, mine, count)?
        }
        (None, Some(raw)) => decode_json(name, dtype, raw, count)?,
        (None, None) => return Err(Refusal::Bad(format!("input '{name}' has no data"))),
    };
    Ok(Tensor::new(shape, data).map_err(|e| format!("input '{name}': {e}"))?)
}

/// "input 'NAME' (shape [..])", for refusals.
#[derive(Clone, Copy)]
struct InputShape<'a>(&'a str, &'a [usize]);

impl std::fmt::Display for InputShape<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input '{}' (shape {:?})", self.0, self.1)
    }
}

/// One JSON scalar as the decoder met it.
#[derive(Clone, Copy)]
enum Scalar<'s> {
    I(i64),
    U(u64),
    F(f64),
    B(bool),
    S(&'s str),
    Null,
}

impl std::fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::I(v) => write!(f, "{v}"),
            Scalar::U(v) => write!(f, "{v}"),
            Scalar::F(v) => write!(f, "{v}"),
            Scalar::B(v) => write!(f, "{v}"),
            Scalar::S(v) => write!(f, "{v:?}"),
            Scalar::Null => f.write_str("null"),
        }
    }
}

/// Why one JSON element does not fit the input's datatype.
#[derive(Debug, thiserror::Error)]
enum BadElement {
    #[error("element {index} ({shown}) is not {expected}")]
    Kind { index: usize, shown: String, expected: &'static str },
    #[error("element {index} is out of range for {dtype}")]
    Range { index: usize, dtype: DType },
}

impl BadElement {
    fn kind(index: usize, s: Scalar, expected: &'static str) -> BadElement {
        BadElement::Kind { index, shown: s.to_string(), expected }
    }
}

/// Flattens nested JSON arrays into typed elements, refusing the element after `max`: the
/// output never grows beyond what the shape declared, whatever the data holds.
struct Flat<'o, T, F> {
    out: &'o mut Vec<T>,
    max: usize,
    convert: F,
}

impl<T, F: FnMut(usize, Scalar) -> Result<T, BadElement>> Flat<'_, T, F> {
    fn push<E: serde::de::Error>(&mut self, s: Scalar) -> Result<(), E> {
        let i = self.out.len();
        if i >= self.max {
            return Err(E::custom(format!("the shape needs {} elements, the data has more", self.max)));
        }
        let v = (self.convert)(i, s).map_err(E::custom)?;
        self.out.push(v);
        Ok(())
    }
}

impl<'de, T, F: FnMut(usize, Scalar) -> Result<T, BadElement>> serde::de::DeserializeSeed<'de> for &mut Flat<'_, T, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F: FnMut(usize, Scalar) -> Result<T, BadElement>> serde::de::Visitor<'de> for &mut Flat<'_, T, F> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("tensor elements (scalars or nested arrays of them)")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.push(Scalar::I(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.push(Scalar::U(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.push(Scalar::F(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Scalar::B(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.push(Scalar::S(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.push(Scalar::Null)
    }
}

/// Decode `raw` (the request's JSON text of one input's `data`) into `count` elements.
fn collect<T>(
    name: &str,
    raw: &RawValue,
    count: usize,
    convert: impl FnMut(usize, Scalar) -> Result<T, BadElement>,
) -> Result<Vec<T>, Refusal> {
    // Every element takes at least two bytes of JSON (`0,`): the text bounds the allocation.
    let mut out = Vec::with_capacity(count.min(raw.get().len() / 2 + 1));
    let mut flat = Flat { out: &mut out, max: count, convert };
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde::de::DeserializeSeed::deserialize(&mut flat, &mut de).map_err(|e| format!("input '{name}': {e}"))?;
    if out.len() != count {
        return Err(Refusal::Bad(format!("input '{name}': shape needs {count} elements, data has {}", out.len())));
    }
    Ok(out)
}

fn decode_json(name: &str, dtype: DType, raw: &RawValue, count: usize) -> Result<Data, Refusal> {
    let float = |i: usize, s: Scalar| match s {
        Scalar::I(v) => Ok(v as f64),
        Scalar::U(v) => Ok(v as f64),
        Scalar::F(v) => Ok(v),
        other => Err(BadElement::kind(i, other, "a number")),
    };
    let int = |i: usize, s: Scalar| match s {
        Scalar::I(v) => Ok(v),
        Scalar::U(v) => i64::try_from(v).map_err(|_| BadElement::Range { index: i, dtype }),
        other => Err(BadElement::kind(i, other, "an integer")),
    };
    let uint = |i: usize, s: Scalar| match s {
        Scalar::U(v) => Ok(v),
        other => Err(BadElement::kind(i, other, "a non-negative integer")),
    };
    macro_rules! narrow {
        ($variant:ident, $t:ty, $f:expr) => {
            Data::$variant(collect(name, raw, count, |i, s| {
                $f(i, s).and_then(|x| <$t>::try_from(x).map_err(|_| BadElement::Range { index: i, dtype }))
            })?)
        };
    }
    Ok(match dtype {
        DType::F32 => Data::F32(collect(name, raw, count, |i, s| float(i, s).map(|x| x as f32))?),
        DType::F64 => Data::F64(collect(name, raw, count, float)?),
        DType::I64 => Data::I64(collect(name, raw, count, int)?),
        DType::I32 => narrow!(I32, i32, int),
        DType::I16 => narrow!(I16, i16, int),
        DType::I8 => narrow!(I8, i8, int),
        DType::U64 => Data::U64(collect(name, raw, count, uint)?),
        DType::U32 => narrow!(U32, u32, uint),
        DType::U16 => narrow!(U16, u16, uint),
        DType::U8 => narrow!(U8, u8, uint),
        DType::Bool => Data::Bool(collect(name, raw, count, |i, s| match s {
            Scalar::B(v) => Ok(v),
            other => Err(BadElement::kind(i, other, "a boolean")),
        })?),
        DType::Bytes => Data::Bytes(collect(name, raw, count, |i, s| match s {
            Scalar::S(v) => Ok(v.to_string()),
            other => Err(BadElement::kind(i, other, "a string")),
        })?),
    })
}

/// BYTES elements in the binary encoding: each a 4-byte little-endian length, then the bytes.
fn decode_binary_strings(name: &str, bytes: &[u8], count: usize) -> Result<Data, Refusal> {
    // Every element takes at least its 4-byte length: the bytes bound the allocation.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() >= count {
            return Err(Refusal::Bad(format!("input '{name}': shape needs {count} elements, data has more")));
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(Refusal::Bad(format!("input '{name}': truncated BYTES element")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(Refusal::Bad(format!("input '{name}': truncated BYTES element")));
        }
        let (text, tail) = tail.split_at(len);
        let s = std::str::from_utf8(text).map_err(|_| format!("input '{name}': BYTES element is not UTF-8"))?;
        out.push(s.to_string());
        rest = tail;
    }
    if out.len() != count {
        return Err(Refusal::Bad(format!("input '{name}': shape needs {count} elements, data has {}", out.len())));
    }
    Ok(Data::Bytes(out))
}

fn decode_binary(name: &str, dtype: DType, bytes: &[u8], count: usize) -> Result<Data, Refusal> {
    let Some(size) = dtype.size() else {
        return decode_binary_strings(name, bytes, count);
    };
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(Refusal::Bad(format!(
            "input '{name}': shape needs {count} {dtype} elements of {size} bytes, binary data has {} bytes",
            bytes.len()
        )));
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

/// Like [`write_data`], but gives up (returns `false`) as soon as `buf` grows past `max`
/// bytes, so a response never has to be built in full to learn that it is too large.
pub fn write_data_bounded(buf: &mut Vec<u8>, data: &Data, start: usize, end: usize, max: usize) -> bool {
    const CHUNK: usize = 4096;
    if end.saturating_sub(start) <= CHUNK {
        write_data(buf, data, start, end);
        return buf.len() <= max;
    }
    macro_rules! bounded {
        ($v:expr) => {{
            buf.push(b'[');
            for (k, x) in $v[start..end].iter().enumerate() {
                if k > 0 {
                    buf.push(b',');
                }
                let _ = serde_json::to_writer(&mut *buf, x);
                if k % CHUNK == 0 && buf.len() > max {
                    return false;
                }
            }
            buf.push(b']');
        }};
    }
    match data {
        Data::Bool(v) => bounded!(v),
        Data::U8(v) => bounded!(v),
        Data::U16(v) => bounded!(v),
        Data::U32(v) => bounded!(v),
        Data::U64(v) => bounded!(v),
        Data::I8(v) => bounded!(v),
        Data::I16(v) => bounded!(v),
        Data::I32(v) => bounded!(v),
        Data::I64(v) => bounded!(v),
        Data::F32(v) => bounded!(v),
        Data::F64(v) => bounded!(v),
        Data::Bytes(v) => bounded!(v),
    }
    buf.len() <= max
}

/// Bytes of a tensor's binary encoding (`None` if that overflows).
fn binary_len(data: &Data) -> Option<usize> {
    match data {
        Data::Bytes(v) => v.iter().try_fold(0usize, |acc, s| acc.checked_add(s.len())?.checked_add(4)),
        other => other.len().checked_mul(other.dtype().size().unwrap_or(1)),
    }
}

fn write_json(buf: &mut Vec<u8>, v: &impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *buf, v);
}

/// Encode a response of at most `limits.max_response` bytes (refused with a 413-worthy `Refusal` beyond).
/// Returns the body and, when any output is binary, the JSON length for
/// `Inference-Header-Content-Length`.
pub fn encode(
    model: &str,
    version: i64,
    id: &str,
    outputs: &[(String, Tensor, bool)],
    parameters: Value,
    limits: &Limits,
) -> Result<(Vec<u8>, Option<usize>), Refusal> {
    let max = limits.max_response;
    let mut binary_total = 0usize;
    for (_, t, binary) in outputs {
        if *binary {
            binary_total = binary_len(&t.data)
                .and_then(|n| binary_total.checked_add(n))
                .filter(|n| *n <= max)
                .ok_or_else(|| limits.response_too_large())?;
        }
    }
    let json_max = max - binary_total;
    let estimate =
        256 + outputs.iter().map(|(_, t, b)| if *b { 64 } else { t.data.len().saturating_mul(12) }).sum::<usize>();
    let mut out = Vec::with_capacity(estimate.min(json_max).saturating_add(binary_total));
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
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            write_json(&mut out, &binary_len(&t.data).unwrap_or(0));
            out.push(b'}');
        } else {
            out.extend_from_slice(b",\"data\":");
            if !write_data_bounded(&mut out, &t.data, 0, t.data.len(), json_max) {
                return Err(limits.response_too_large());
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    if out.len() > json_max {
        return Err(limits.response_too_large());
    }
    if binary_total == 0 && !outputs.iter().any(|(_, _, b)| *b) {
        return Ok((out, None));
    }
    let json_len = out.len();
    for (_, t, binary) in outputs {
        if *binary {
            append_binary(&mut out, &t.data);
        }
    }
    Ok((out, Some(json_len)))
}

/// Append a tensor's binary encoding (little-endian elements; BYTES as length + bytes).
fn append_binary(out: &mut Vec<u8>, data: &Data) {
    macro_rules! le {
        ($v:expr) => {
            $v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
    }
    match data {
        Data::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        Data::U8(v) => out.extend_from_slice(v),
        Data::U16(v) => le!(v),
        Data::U32(v) => le!(v),
        Data::U64(v) => le!(v),
        Data::I8(v) => le!(v),
        Data::I16(v) => le!(v),
        Data::I32(v) => le!(v),
        Data::I64(v) => le!(v),
        Data::F32(v) => le!(v),
        Data::F64(v) => le!(v),
        Data::Bytes(v) => v.iter().for_each(|s| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_inputs_decode() {
        let body = br#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]}]}"#;
        let r = decode(body, None, &Limits::default()).unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(r.inputs["x"].data, Data::F32(vec![1.0, 2.0, 3.0, 4.5]));

        let head = br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&(-2f32).to_le_bytes());
        let r = decode(&body, Some(head.len()), &Limits::default()).unwrap();
        assert_eq!(r.inputs["x"].data, Data::F32(vec![1.5, -2.0]));
        assert!(r.binary_default);
    }

    #[test]
    fn fp64_written_by_the_shortest_round_trip_reads_back_bit_for_bit() {
        // Found by kairo-fuzz (oip::structured_requests): without serde_json's
        // `float_roundtrip` this decoded one ULP off.
        let v = -1.1319990806012453e17_f64;
        let body = format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP64","data":[{v:?}]}}]}}"#);
        let r = decode(body.as_bytes(), None, &Limits::default()).unwrap();
        assert_eq!(r.inputs["x"].data, Data::F64(vec![v]));
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = |b: &str| decode(b.as_bytes(), None, &Limits::default()).err().unwrap().message().to_string();
        assert!(e(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#)
            .contains("input 'x': shape needs 3"));
        assert!(e(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]}"#).contains("not a number"));
        assert!(e(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP8","data":[1]}]}"#)
            .contains("'FP8' is not supported"));
        assert!(e("{").contains("malformed"));
    }

    #[test]
    fn declared_sizes_are_checked_before_allocation() {
        let limits = Limits { max_body: 1 << 20, max_rows: 1000, max_elements: 10_000, max_response: 1 << 20 };
        let e = |b: &[u8], json_len: Option<usize>| decode(b, json_len, &limits).err().unwrap();
        // A billion rows declared, three values given: refused by the row limit.
        let r = e(br#"{"inputs":[{"name":"input","shape":[1000000000,20],"datatype":"FP32","data":[1,2,3]}]}"#, None);
        assert!(matches!(r, Refusal::TooLarge(ref m) if m.contains("--max-rows")), "{r:?}");
        // Within the row limit but over the element limit.
        let r = e(br#"{"inputs":[{"name":"x","shape":[1000,1000],"datatype":"FP32","data":[1]}]}"#, None);
        assert!(matches!(r, Refusal::TooLarge(ref m) if m.contains("--max-elements")), "{r:?}");
        // A product that overflows 64 bits.
        let r = e(br#"{"inputs":[{"name":"x","shape":[1,4294967296,4294967296],"datatype":"FP32","data":[1]}]}"#, None);
        assert!(matches!(r, Refusal::TooLarge(_)), "{r:?}");
        // Zero elements but 2^31 rows: still refused by rows.
        let r = e(br#"{"inputs":[{"name":"x","shape":[2147483648,0],"datatype":"FP32","data":[]}]}"#, None);
        assert!(matches!(r, Refusal::TooLarge(_)), "{r:?}");
        // More data than the shape: refused at the first extra element.
        let r = e(br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2,3,4]}]}"#, None);
        assert!(matches!(r, Refusal::Bad(ref m) if m.contains("data has more")), "{r:?}");
        // Binary BYTES with a declared count far above the bytes.
        let head =
            br#"{"inputs":[{"name":"x","shape":[100,4],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&[1, 0, 0, 0, b'a', 0, 0, 0]);
        assert!(e(&body, Some(head.len())).message().contains("truncated"));
        let head =
            br#"{"inputs":[{"name":"x","shape":[100,4],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&[1, 0, 0, 0, b'a']);
        let r = e(&body, Some(head.len()));
        assert!(matches!(r, Refusal::Bad(ref m) if m.contains("shape needs 400")), "{r:?}");
        // A BYTES length beyond the data, and a binary size beyond the body.
        let mut body = head.to_vec();
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert!(e(&body, Some(head.len())).message().contains("truncated"));
        let head = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":18446744073709551615}}]}"#;
        assert!(e(head, Some(head.len())).message().contains("exceeds the remaining body"));
        assert!(e(head, Some(usize::MAX)).message().contains("exceeds the body"));
        // Binary fixed-size data whose byte count would overflow.
        let head = br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP64","parameters":{"binary_data_size":4}}]}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&[0; 4]);
        assert!(e(&body, Some(head.len())).message().contains("binary data has 4 bytes"));
        // Negative and too many dimensions.
        assert!(e(br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#, None)
            .message()
            .contains("negative"));
        let deep =
            format!(r#"{{"inputs":[{{"name":"x","shape":[{}],"datatype":"FP32","data":[1]}}]}}"#, ["1"; 40].join(","));
        assert!(e(deep.as_bytes(), None).message().contains("dimensions"));
    }

    #[test]
    fn responses_are_bounded() {
        let limits = Limits { max_response: 1000, ..Limits::default() };
        let t = Tensor::new(vec![1000], Data::F32(vec![0.5; 1000])).unwrap();
        let r = encode("m", 1, "id", &[("y".into(), t.clone(), false)], Value::Null, &limits);
        assert!(matches!(r, Err(Refusal::TooLarge(ref m)) if m.contains("--max-response-mb")));
        let r = encode("m", 1, "id", &[("y".into(), t, true)], Value::Null, &limits);
        assert!(matches!(r, Err(Refusal::TooLarge(_))));
        let small = Tensor::new(vec![2], Data::F32(vec![0.5, 1.0])).unwrap();
        let (body, json_len) = encode("m", 1, "id", &[("y".into(), small, true)], Value::Null, &limits).unwrap();
        let n = json_len.unwrap();
        assert_eq!(body.len(), n + 8);
        assert!(std::str::from_utf8(&body[..n]).unwrap().contains("\"binary_data_size\":8"));
    }
}
