//! OIP v2 request bodies (`kairo_serve::oip::decode`): JSON tensors and the binary tensor
//! extension, then `oip::encode` of whatever was accepted.

use kairo_fuzz::corpus::{self, Input};
use kairo_fuzz::{cases, memory, values};
use kairo_runtime::DType;
use kairo_serve::limits::{Limits, Refusal};
use kairo_serve::oip;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

const DATATYPES: &[&str] =
    &["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64", "BYTES"];
const BAD_DATATYPES: &[&str] = &["FP16", "BF16", "fp32", "INT128", "", "STRING", "FP32 ", "BYTES\u{0}"];
const NAMES: &[&str] = &["x", "input", "age", "city", "", "x"];

/// One dimension as a client may write it: small, at a boundary, negative, or not a number.
fn dim() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0u64..5).prop_map(Value::from),
        3 => prop::sample::select(vec![0u64, 1, 1 << 31, 1 << 32, (1 << 63) - 1, 1_000_000_000, u64::MAX])
            .prop_map(Value::from),
        1 => prop::sample::select(vec![-1i64, i64::MIN]).prop_map(Value::from),
        1 => values::scalar(),
    ]
}

fn shape() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        10 => prop::collection::vec(dim(), 0..4),
        1 => prop::collection::vec(dim(), 30..40),
    ]
}

/// A scalar of the kind a datatype wants, or occasionally any scalar.
fn element(dtype: DType) -> BoxedStrategy<Value> {
    let fitting = match dtype {
        DType::F32 | DType::F64 => values::number().boxed(),
        DType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        DType::Bytes => values::string().prop_map(Value::String).boxed(),
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => (0u64..300).prop_map(Value::from).boxed(),
        _ => (-200i64..200).prop_map(Value::from).boxed(),
    };
    prop_oneof![12 => fitting, 1 => values::number(), 1 => values::scalar()].boxed()
}

/// Nest a flat list of elements into arrays following `dims` (row-major).
fn nest(flat: &[Value], dims: &[usize]) -> Value {
    match dims {
        [] | [_] => Value::Array(flat.to_vec()),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            if inner == 0 {
                return Value::Array(Vec::new());
            }
            Value::Array(flat.chunks(inner).map(|c| nest(c, rest)).collect())
        }
    }
}

/// How an input's data travels and how it is disturbed.
#[derive(Debug, Clone)]
enum Carry {
    /// JSON `data`, nested as the shape or flat.
    Json { nested: bool },
    /// Binary, with `binary_data_size` off by `delta` bytes (usually 0).
    Binary { delta: i64 },
}

fn carry() -> impl Strategy<Value = Carry> {
    prop_oneof![
        3 => any::<bool>().prop_map(|nested| Carry::Json { nested }),
        2 => prop_oneof![6 => Just(0i64), 1 => -9i64..9].prop_map(|delta| Carry::Binary { delta }),
    ]
}

/// An input whose shape, datatype and data agree (mostly): reaches the typed conversion and
/// the encoder. Returns the input's header object and its binary bytes.
fn consistent_input() -> impl Strategy<Value = (Value, Vec<u8>)> {
    (prop::sample::select(NAMES), prop::sample::select(DATATYPES), prop::collection::vec(0usize..4, 0..4), carry())
        .prop_flat_map(|(name, datatype, dims, carry)| {
            let dtype = DType::from_oip(datatype).unwrap_or(DType::F32);
            let count: usize = dims.iter().product();
            let elements = prop::collection::vec(element(dtype), count..=count + usize::from(count < 3));
            let strings = prop::collection::vec(values::string(), count);
            let raw = prop::collection::vec(any::<u8>(), count * dtype.size().unwrap_or(1));
            (Just((name, datatype, dims, carry)), elements, strings, raw, any::<Index>())
        })
        .prop_map(|((name, datatype, dims, carry), mut elements, strings, raw, cut)| {
            let mut header = json!({"name": name, "shape": dims, "datatype": datatype});
            let mut binary = Vec::new();
            match carry {
                Carry::Json { nested } => {
                    // One element too many now and then (when the generator made one).
                    let count: usize = dims.iter().product();
                    if elements.len() > count && cut.index(4) != 0 {
                        elements.truncate(count);
                    }
                    let data = if nested && elements.len() == count { nest(&elements, &dims) } else { elements.into() };
                    header["data"] = data;
                }
                Carry::Binary { delta } => {
                    if datatype == "BYTES" {
                        for s in &strings {
                            binary.extend_from_slice(&(s.len() as u32).to_le_bytes());
                            binary.extend_from_slice(s.as_bytes());
                        }
                    } else {
                        binary = raw;
                    }
                    let size = (binary.len() as i64).saturating_add(delta).max(0);
                    header["parameters"] = json!({"binary_data_size": size});
                    // A negative delta declares less than is sent: the rest is left over.
                }
            }
            (header, binary)
        })
}

/// An input with a hostile shape, datatype, data or binary size.
fn hostile_input() -> impl Strategy<Value = (Value, Vec<u8>)> {
    (
        prop::sample::select(NAMES),
        prop_oneof![
            4 => prop::sample::select(DATATYPES).prop_map(Value::from),
            2 => prop::sample::select(BAD_DATATYPES).prop_map(Value::from),
            1 => values::scalar(),
        ],
        shape(),
        prop::option::weighted(0.8, values::value(&["data", "name", "shape"])),
        prop::option::weighted(0.3, dim()),
        prop::collection::vec(any::<u8>(), 0..48),
        prop::option::weighted(0.1, values::value(&["binary_data_size", "x"])),
    )
        .prop_map(|(name, datatype, shape, data, binary_size, binary, parameters)| {
            let mut header = json!({"name": name, "shape": shape, "datatype": datatype});
            if let Some(data) = data {
                header["data"] = data;
            }
            match (binary_size, parameters) {
                (Some(size), _) => header["parameters"] = json!({"binary_data_size": size}),
                (None, Some(p)) => header["parameters"] = p,
                (None, None) => {}
            }
            (header, binary)
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        2 => Just(Limits::default()),
        1 => (0usize..20, 0usize..200, 0usize..4096).prop_map(|(max_rows, max_elements, max_response)| Limits {
            max_body: 1 << 20,
            max_rows,
            max_elements,
            max_response,
        }),
    ]
}

/// A whole request: inputs, top-level parameters and outputs, the binary tail, and the
/// `Inference-Header-Content-Length` a client sent (right, wrong, or absent).
#[derive(Debug, Clone)]
struct Request {
    body: Input,
    json_len: Option<usize>,
    limits: Limits,
}

fn request() -> impl Strategy<Value = Request> {
    let input = prop_oneof![5 => consistent_input(), 1 => hostile_input()];
    (
        prop::collection::vec(input, 0..4),
        prop::option::weighted(0.3, prop_oneof![4 => values::string().prop_map(Value::String), 1 => values::scalar()]),
        prop::option::weighted(
            0.4,
            prop::collection::vec(
                (
                    prop::sample::select(&["binary_data_output", "routing_key", "contributions", "x"][..]),
                    values::scalar(),
                ),
                0..4,
            ),
        ),
        prop::option::weighted(
            0.3,
            prop::collection::vec((prop::sample::select(NAMES), prop::option::of(values::scalar())), 0..3),
        ),
        0usize..16,
        any::<Index>(),
        prop::bool::weighted(0.8),
        limits(),
    )
        .prop_map(|(inputs, id, parameters, outputs, len_choice, len_at, distinct, limits)| {
            let mut header = Map::new();
            if let Some(id) = id {
                header.insert("id".into(), id);
            }
            if let Some(p) = parameters {
                header.insert(
                    "parameters".into(),
                    Value::Object(p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
                );
            }
            if let Some(outs) = outputs {
                let outs = outs
                    .into_iter()
                    .map(|(name, binary)| match binary {
                        Some(b) => json!({"name": name, "parameters": {"binary_data": b}}),
                        None => json!({"name": name}),
                    })
                    .collect();
                header.insert("outputs".into(), Value::Array(outs));
            }
            let mut tail = Vec::new();
            let mut list = Vec::new();
            for (i, (mut h, binary)) in inputs.into_iter().enumerate() {
                if distinct {
                    h["name"] = format!("in{i}").into();
                }
                list.push(h);
                tail.extend_from_slice(&binary);
            }
            header.insert("inputs".into(), Value::Array(list));
            let mut body = serde_json::to_vec(&Value::Object(header)).unwrap_or_default();
            let head = body.len();
            body.extend_from_slice(&tail);
            // Mostly right; sometimes cut anywhere, beyond the body, or absurd.
            let json_len = match len_choice {
                0..=9 if tail.is_empty() => None,
                0..=12 => Some(head),
                13 => Some(len_at.index(body.len() + 1)),
                14 => Some(body.len() + 1 + len_at.index(16)),
                _ => Some(usize::MAX),
            };
            Request { body: Input(body), json_len, limits }
        })
}

/// Where the JSON header of a body ends, if it starts with a JSON value.
fn header_len(body: &[u8]) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match values.next() {
        Some(Ok(_)) => Some(values.byte_offset()),
        _ => None,
    }
}

/// Decode, check what came out, and encode it back as a response.
fn check(body: &[u8], json_len: Option<usize>, limits: &Limits) -> Result<(), TestCaseError> {
    memory::case("oip", body);
    let request = match oip::decode(body, json_len, limits) {
        Ok(r) => r,
        Err(Refusal::Bad(m) | Refusal::TooLarge(m)) => {
            prop_assert!(!m.is_empty());
            return Ok(());
        }
    };
    let mut total = 0usize;
    for (name, t) in &request.inputs {
        let count = t.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        prop_assert_eq!(count, Some(t.data.len()), "input {}: shape {:?}", name, t.shape);
        if let Some(rows) = t.shape.first() {
            prop_assert!(*rows <= limits.max_rows, "input {name}: {rows} rows accepted");
        }
        total += t.data.len();
    }
    prop_assert!(total <= limits.max_elements, "{total} elements accepted");

    let binary = |name: &str| {
        request
            .outputs
            .as_ref()
            .and_then(|o| o.iter().find(|(n, _)| n == name).map(|(_, b)| *b))
            .unwrap_or(request.binary_default)
    };
    let mut outputs: Vec<(String, kairo_runtime::Tensor, bool)> =
        request.inputs.iter().map(|(n, t)| (n.clone(), t.clone(), binary(n))).collect();
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    let id = request.id.clone().unwrap_or_default();
    match oip::encode("model", 1, &id, &outputs, json!({"routing_key": request.routing_key}), limits) {
        Ok((out, json_len)) => {
            prop_assert!(out.len() <= limits.max_response, "{} byte response", out.len());
            let head = &out[..json_len.unwrap_or(out.len())];
            prop_assert!(serde_json::from_slice::<Value>(head).is_ok(), "the response header is not JSON");
            // The response, read back with the request decoder (`outputs` renamed `inputs`),
            // gives the same tensors; NaN and infinities are written as JSON `null`, so
            // responses carrying them as JSON are left out.
            let finite = outputs.iter().all(|(_, t, b)| *b || t.data.first_non_finite().is_none());
            if finite {
                let again = String::from_utf8_lossy(head).replacen("\"outputs\":", "\"inputs\":", 1);
                let mut body = again.into_bytes();
                let n = body.len();
                body.extend_from_slice(&out[head.len()..]);
                let back = oip::decode(&body, json_len.map(|_| n), &Limits::default());
                prop_assert!(back.is_ok(), "the encoded response does not decode: {:?}", back.err());
                if let Ok(back) = back {
                    for (name, t, _) in &outputs {
                        // Compared as text: NaN (from binary data) is not equal to itself.
                        let got = back.inputs.get(name).map(|b| format!("{b:?}"));
                        prop_assert_eq!(got, Some(format!("{t:?}")), "output {} changed on the way", name);
                    }
                }
            }
        }
        Err(e) => prop_assert!(matches!(e, Refusal::TooLarge(_)), "encode refused with {e:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(3000)))]

    #[test]
    fn structured_requests(r in request()) {
        check(&r.body.0, r.json_len, &r.limits)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(6000)))]

    #[test]
    fn mutated_seeds(
        body in corpus::mutated(corpus::seeds("oip").into_iter().map(|(_, b)| b).collect(), 6),
        len_choice in 0usize..4,
        len_at in any::<Index>(),
        limits in limits(),
    ) {
        let json_len = match len_choice {
            0 => None,
            1 => header_len(&body.0),
            2 => Some(len_at.index(body.0.len() + 1)),
            _ => header_len(&body.0).map(|n| n + len_at.index(3)),
        };
        check(&body.0, json_len, &limits)?;
    }
}

/// Every seed as committed; the reproductions from the issue are refused as too large.
#[test]
fn seeds_decode_or_refuse() {
    for (name, body) in corpus::seeds("oip") {
        let json_len = if name.ends_with(".bin") { header_len(&body) } else { None };
        let limits = Limits::default();
        let result = oip::decode(&body, json_len, &limits);
        if name.starts_with("issue-") {
            assert!(matches!(result, Err(Refusal::TooLarge(_))), "{name}: {:?}", result.err());
        } else if name.starts_with("json-") || name.starts_with("binary-fp32") || name.starts_with("binary-bytes") {
            assert!(result.is_ok(), "{name}: {:?}", result.err());
        }
        check(&body, json_len, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Nesting far beyond serde_json's recursion limit is an error, not a stack overflow.
#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{deep}}}]}}"#);
    assert!(matches!(oip::decode(body.as_bytes(), None, &Limits::default()), Err(Refusal::Bad(_))));
    let body = format!(r#"{{"inputs":[],"parameters":{{"p":{deep}}}}}"#);
    assert!(matches!(oip::decode(body.as_bytes(), None, &Limits::default()), Err(Refusal::Bad(_))));
}
