//! MLflow scoring bodies (`kairo_serve::invocations::decode_json` and `decode_csv`) against
//! hand-built signatures, then `invocations::encode` of what was accepted.

use std::collections::HashMap;

use kairo_fuzz::corpus::{self, Input};
use kairo_fuzz::{cases, memory, values};
use kairo_runtime::{DType, Signature, Tensor, TensorSpec};
use kairo_serve::invocations;
use kairo_serve::limits::{Limits, Refusal};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn spec(name: &str, dtype: DType, shape: &[i64]) -> TensorSpec {
    TensorSpec { name: name.into(), dtype, shape: shape.to_vec() }
}

/// The models the bodies are decoded for: one `[N, 20]` FP32 input; two named columns (FP32
/// and BYTES, as skl2onnx exports a pipeline); one `[N, 3]` INT64 input; rank-1 named columns
/// of other types; and an input type `/invocations` cannot fill.
fn signatures() -> Vec<Signature> {
    vec![
        Signature {
            inputs: vec![spec("input", DType::F32, &[-1, 20])],
            outputs: vec![spec("label", DType::I64, &[-1]), spec("probabilities", DType::F32, &[-1, 2])],
        },
        Signature {
            inputs: vec![spec("age", DType::F32, &[-1, 1]), spec("city", DType::Bytes, &[-1, 1])],
            outputs: vec![spec("variable", DType::F32, &[-1, 1])],
        },
        Signature { inputs: vec![spec("x", DType::I64, &[-1, 3])], outputs: vec![spec("y", DType::F64, &[-1])] },
        Signature {
            inputs: vec![spec("a", DType::F64, &[-1]), spec("b", DType::Bool, &[-1]), spec("c", DType::I32, &[-1])],
            outputs: vec![spec("y", DType::F64, &[-1]), spec("z", DType::Bytes, &[-1])],
        },
        Signature { inputs: vec![spec("pixels", DType::U8, &[-1, 4])], outputs: vec![spec("y", DType::F32, &[-1])] },
    ]
}

const COLUMNS: &[&str] = &["input", "age", "city", "x", "a", "b", "c", "pixels", "f0", "x0", "", "age"];
const KEYS: &[&str] = &["dataframe_split", "dataframe_records", "instances", "inputs"];

fn column() -> impl Strategy<Value = String> {
    prop_oneof![8 => prop::sample::select(COLUMNS).prop_map(str::to_string), 1 => values::string()]
}

/// A cell: mostly a scalar, sometimes a nested value.
fn cell() -> impl Strategy<Value = Value> {
    prop_oneof![8 => values::scalar(), 1 => values::value(COLUMNS)]
}

/// Column names: the models' own sets (so bodies reach the typed columns) or random ones.
fn columns() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        3 => prop::collection::vec(column(), 0..4),
        1 => Just(vec!["age".to_string(), "city".into()]),
        1 => Just(vec!["city".to_string(), "age".into()]),
        1 => Just(vec!["a".to_string(), "b".into(), "c".into()]),
        1 => Just(vec!["x0".to_string(), "x1".into(), "x2".into()]),
        1 => Just((0..20).map(|i| format!("f{i}")).collect::<Vec<_>>()),
    ]
}

/// `n` rows of `width` cells, now and then one row longer or shorter.
fn rows_of(width: usize) -> impl Strategy<Value = Vec<Value>> {
    (
        prop::collection::vec(prop::collection::vec(cell(), width), 0..5),
        prop::option::weighted(0.1, (0usize..5, 0usize..3)),
    )
        .prop_map(|(mut rows, ragged)| {
            if let Some((r, k)) = ragged {
                if let Some(row) = rows.get_mut(r) {
                    row.truncate(row.len().saturating_sub(k));
                    row.extend(std::iter::repeat_n(Value::Null, k * 2 % 3));
                }
            }
            rows.into_iter().map(Value::Array).collect()
        })
}

/// Rows of a width the models know (or not).
fn rows() -> impl Strategy<Value = Vec<Value>> {
    prop::sample::select(vec![0usize, 1, 2, 3, 20, 21]).prop_flat_map(rows_of)
}

/// `dataframe_split`: columns (usually as wide as the rows), data, sometimes pandas' index.
fn split() -> impl Strategy<Value = Value> {
    (
        columns(),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.05),
        prop::option::weighted(0.1, values::value(COLUMNS)),
    )
        .prop_flat_map(|(columns, named, no_data, index)| {
            let width = columns.len();
            (Just((columns, named, no_data, index)), prop_oneof![4 => rows_of(width), 1 => rows()])
        })
        .prop_map(|((columns, named, no_data, index), data)| {
            let mut split = Map::new();
            if named {
                split.insert("columns".into(), columns.into());
            }
            if !no_data {
                split.insert("data".into(), Value::Array(data));
            }
            if let Some(i) = index {
                split.insert("index".into(), i);
            }
            Value::Object(split)
        })
}

/// Records: objects with the same columns (in any order), now and then one missing or extra.
fn records() -> impl Strategy<Value = Value> {
    columns()
        .prop_flat_map(|columns| {
            let width = columns.len();
            (
                Just(columns),
                prop::collection::vec(
                    (prop::collection::vec(cell(), width), any::<prop::sample::Index>(), 0u8..20),
                    0..5,
                ),
            )
        })
        .prop_map(|(columns, items)| {
            let records = items
                .into_iter()
                .map(|(cells, at, odd)| {
                    let mut kv: Vec<(String, Value)> = columns.iter().cloned().zip(cells).collect();
                    if !kv.is_empty() {
                        let by = at.index(kv.len());
                        kv.rotate_left(by);
                        match odd {
                            0 => drop(kv.pop()),
                            1 => kv.push(("extra".into(), Value::Null)),
                            _ => {}
                        }
                    }
                    Value::Object(kv.into_iter().collect::<Map<_, _>>())
                })
                .collect();
            Value::Array(records)
        })
}

/// Named tensors for `inputs`/`instances`: name → nested rows.
fn named() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop_oneof![column(), prop::sample::select(vec!["input", "x"]).prop_map(str::to_string)], rows()),
        0..3,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k, Value::Array(v))).collect()))
}

/// The value of one scoring key, shaped for it four times out of five.
fn payload(key: &'static str) -> BoxedStrategy<Value> {
    let fitting = match key {
        "dataframe_split" => split().boxed(),
        "dataframe_records" => records().boxed(),
        _ => prop_oneof![
            3 => rows().prop_map(Value::Array),
            2 => records(),
            2 => named(),
            1 => prop::collection::vec(values::scalar(), 0..5).prop_map(Value::Array),
        ]
        .boxed(),
    };
    prop_oneof![
        8 => fitting,
        1 => prop_oneof![split(), records(), named(), rows().prop_map(Value::Array)],
        1 => values::value(COLUMNS),
    ]
    .boxed()
}

/// A body: usually one scoring key, sometimes none, two or an unknown one.
fn json_body() -> impl Strategy<Value = Input> {
    (
        prop::sample::select(KEYS).prop_flat_map(|k| (Just(k), payload(k))),
        prop::option::weighted(
            0.1,
            (prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), values::string()], payload("inputs")),
        ),
        prop::bool::weighted(0.03),
    )
        .prop_map(|((key, value), extra, empty)| {
            let mut body = Map::new();
            if !empty {
                body.insert(key.to_string(), value);
            }
            if let Some((k, v)) = extra {
                body.insert(k, v);
            }
            Input(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
        })
}

/// A CSV cell as text: a number, empty, or quoted with separators, quotes and newlines.
fn csv_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => values::number().prop_map(|v| v.to_string()),
        2 => Just(String::new()),
        2 => values::string().prop_map(|s| {
            if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
        }),
        1 => "[a-z ,\"\n]{0,6}",
    ]
}

fn csv_body() -> impl Strategy<Value = Input> {
    let header = prop_oneof![
        3 => prop::collection::vec(column(), 0..4),
        1 => Just((0..20).map(|i| format!("f{i}")).collect::<Vec<_>>()),
        1 => Just(vec!["x0".to_string(), "x1".into(), "x2".into()]),
        1 => Just(vec!["age".to_string(), "city".into()]),
        1 => Just(vec!["a".to_string(), "b".into(), "c".into()]),
    ];
    (
        header,
        prop::bool::ANY,
        prop::bool::ANY,
        prop::bool::ANY,
        0usize..6,
        prop::option::weighted(0.15, (0usize..6, 0usize..3)),
    )
        .prop_flat_map(|(header, crlf, quote_header, trailing, n, ragged)| {
            let width = header.len();
            (
                Just((header, crlf, quote_header, trailing, ragged)),
                prop::collection::vec(prop::collection::vec(csv_cell(), width), n),
            )
        })
        .prop_map(|((header, crlf, quote_header, trailing, ragged), mut rows)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            if let Some((r, k)) = ragged {
                if let Some(row) = rows.get_mut(r) {
                    if k == 0 {
                        row.pop();
                    } else {
                        row.extend(std::iter::repeat_n("1".to_string(), k));
                    }
                }
            }
            let header: Vec<String> = header
                .into_iter()
                .map(|h| if quote_header { format!("\"{}\"", h.replace('"', "\"\"")) } else { h })
                .collect();
            let mut text = header.join(",");
            for row in rows {
                text.push_str(eol);
                text.push_str(&row.join(","));
            }
            if trailing {
                text.push_str(eol);
            }
            Input(text.into_bytes())
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        2 => Just(Limits::default()),
        1 => (0usize..8, 0usize..100, 0usize..2048).prop_map(|(max_rows, max_elements, max_response)| Limits {
            max_body: 1 << 20,
            max_rows,
            max_elements,
            max_response,
        }),
    ]
}

/// What an accepted body must satisfy, then its encoding as a response.
fn accepted(sig: &Signature, tensors: &HashMap<String, Tensor>, limits: &Limits) -> Result<(), TestCaseError> {
    let mut total = 0usize;
    for (name, t) in tensors {
        prop_assert!(sig.input(name).is_some(), "input {name} is not the model's");
        let count = t.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        prop_assert_eq!(count, Some(t.data.len()), "input {}: shape {:?}", name, t.shape);
        prop_assert!(t.rows() <= limits.max_rows.max(1), "input {name}: {} rows accepted", t.rows());
        total += t.data.len();
    }
    prop_assert!(total <= limits.max_elements, "{total} elements accepted");
    // The decoded tensors, standing in for a model's outputs.
    let mut outputs: Vec<Tensor> = sig.inputs.iter().filter_map(|s| tensors.get(&s.name).cloned()).collect();
    outputs.truncate(sig.outputs.len().max(1));
    match invocations::encode(sig, &outputs, limits) {
        Ok(body) => {
            prop_assert!(body.len() <= limits.max_response, "{} byte response", body.len());
            prop_assert!(serde_json::from_slice::<Value>(&body).is_ok(), "the response is not JSON");
        }
        Err(e) => prop_assert!(matches!(e, Refusal::TooLarge(_)), "encode refused with {e:?}"),
    }
    Ok(())
}

/// `decode_json` or `decode_csv`.
type Decoder = fn(&[u8], &Signature, &Limits) -> Result<HashMap<String, Tensor>, Refusal>;

fn check(target: &'static str, body: &[u8], limits: &Limits, decode: Decoder) -> Result<(), TestCaseError> {
    memory::case(target, body);
    for sig in signatures() {
        match decode(body, &sig, limits) {
            Ok(tensors) => accepted(&sig, &tensors, limits)?,
            Err(Refusal::Bad(m) | Refusal::TooLarge(m)) => prop_assert!(!m.is_empty()),
        }
    }
    Ok(())
}

fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    corpus::seeds(target).into_iter().map(|(_, b)| b).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn structured_json(body in json_body(), limits in limits()) {
        check("invocations-json", &body.0, &limits, invocations::decode_json)?;
    }

    #[test]
    fn structured_csv(body in csv_body(), limits in limits()) {
        check("invocations-csv", &body.0, &limits, invocations::decode_csv)?;
    }

    #[test]
    fn mutated_json(body in corpus::mutated(seed_bytes("invocations-json"), 6), limits in limits()) {
        check("invocations-json", &body.0, &limits, invocations::decode_json)?;
    }

    #[test]
    fn mutated_csv(body in corpus::mutated(seed_bytes("invocations-csv"), 6), limits in limits()) {
        check("invocations-csv", &body.0, &limits, invocations::decode_csv)?;
    }
}

/// Every seed as committed decodes for at least one of the models.
#[test]
fn seeds_decode() {
    for (target, decode) in
        [("invocations-json", invocations::decode_json as Decoder), ("invocations-csv", invocations::decode_csv)]
    {
        for (name, body) in corpus::seeds(target) {
            let ok = signatures().iter().any(|sig| decode(&body, sig, &Limits::default()).is_ok());
            assert!(ok || name.starts_with("ragged"), "{target}/{name} decodes for none of the models");
            check(target, &body, &Limits::default(), decode).unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
        }
    }
}

/// Nesting far beyond serde_json's recursion limit is an error, not a stack overflow.
#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    for key in ["dataframe_split", "dataframe_records", "instances", "inputs"] {
        let body = format!(r#"{{"{key}":{deep}}}"#);
        for sig in signatures() {
            assert!(invocations::decode_json(body.as_bytes(), &sig, &Limits::default()).is_err(), "{key}");
        }
    }
    let body = format!(r#"{{"inputs":{{"input":{deep}}}}}"#);
    assert!(invocations::decode_json(body.as_bytes(), &signatures()[0], &Limits::default()).is_err());
}
