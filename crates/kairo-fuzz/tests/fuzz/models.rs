//! Decoded requests run through real models (`fixtures/models`): whatever the decoders accept
//! must either run or be refused by `Model::prepare` as a client mistake (400). A
//! `RuntimeError::Run` after that is what a server answers with 500: zero 5xx means none.

use std::sync::OnceLock;

use kairo_fuzz::corpus::Input;
use kairo_fuzz::{cases, memory, values};
use kairo_runtime::{DType, Model, RuntimeError, Signature, Tensor};
use kairo_serve::limits::{Limits, Refusal};
use kairo_serve::{invocations, oip};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A linear model on `[N, 20]`, a pipeline of named columns (imputer, scaler, one-hot on a
/// BYTES column), gradient-boosted trees (NaN-aware) and an MLP.
const MODELS: &[&str] = &["logreg20", "pipeline_mixed", "gbc_binary", "mlp"];

fn models() -> &'static [(String, Model)] {
    static MODELS_LOADED: OnceLock<Vec<(String, Model)>> = OnceLock::new();
    MODELS_LOADED.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models");
        MODELS
            .iter()
            .map(|name| {
                let path = dir.join(format!("{name}.onnx"));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let model = Model::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name.to_string(), model)
            })
            .collect()
    })
}

/// A feature value: ordinary, or at the edges of FP32 (overflowing to infinity, subnormal).
fn feature() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (-10.0f64..10.0).prop_map(Value::from),
        1 => prop::sample::select(vec![3.5e38, -3.5e38, 1e-45, -0.0, 1e308, 16_777_217.0, 0.0]).prop_map(Value::from),
        1 => values::number(),
    ]
}

/// One input's header for a request of `rows` rows, its shape and datatype sometimes wrong.
fn input(name: String, dtype: DType, width: usize, rows: usize) -> impl Strategy<Value = Value> {
    (0u8..12).prop_flat_map(move |variant| {
        let (r, w) = match variant {
            0 => (rows + 1, width),
            1 => (rows, width + 1),
            2 => (rows, width.saturating_sub(1)),
            _ => (rows, width),
        };
        let shape = match variant {
            3 => vec![r * w],
            4 => vec![r, w, 1],
            _ => vec![r, w],
        };
        let datatype = if variant == 5 { "FP64" } else { dtype.oip_name() };
        let data = if dtype == DType::Bytes {
            prop::collection::vec(values::string().prop_map(Value::String), r * w).boxed()
        } else {
            prop::collection::vec(feature(), r * w).boxed()
        };
        let name = name.clone();
        data.prop_map(move |data| json!({"name": name, "shape": shape, "datatype": datatype, "data": data}))
    })
}

/// An OIP request for `sig`: every input, `rows` rows (0 to 4).
fn oip_request(sig: &Signature) -> impl Strategy<Value = Input> {
    let specs: Vec<(String, DType, usize)> = sig
        .inputs
        .iter()
        .map(|s| (s.name.clone(), s.dtype, s.shape.iter().skip(1).map(|d| (*d).max(1) as usize).product()))
        .collect();
    (0usize..5).prop_flat_map(move |rows| {
        let inputs: Vec<_> = specs.iter().map(|(n, d, w)| input(n.clone(), *d, *w, rows)).collect();
        inputs.prop_map(|inputs| Input(serde_json::to_vec(&json!({"inputs": inputs})).unwrap_or_default()))
    })
}

/// A CSV body for `sig`: a header naming the inputs (or `width` unnamed columns for a single
/// `[N, width]` input), rows of numbers, empty cells and strings.
fn csv_request(sig: &Signature) -> impl Strategy<Value = Input> {
    let header: Vec<String> = match &sig.inputs[..] {
        [one] => (0..one.shape.get(1).copied().unwrap_or(1).max(1)).map(|i| format!("f{i}")).collect(),
        many => many.iter().map(|s| s.name.clone()).collect(),
    };
    let width = header.len();
    let cell = prop_oneof![
        8 => feature().prop_map(|v| v.to_string()),
        1 => Just(String::new()),
        1 => "[a-z]{0,4}",
    ];
    prop::collection::vec(prop::collection::vec(cell, width), 0..5).prop_map(move |rows| {
        let mut text = header.join(",");
        for row in rows {
            text.push('\n');
            text.push_str(&row.join(","));
        }
        Input(text.into_bytes())
    })
}

/// Run what was decoded; only client mistakes may stop it. Then encode the outputs.
fn run(
    model: &Model,
    decoded: Result<std::collections::HashMap<String, Tensor>, Refusal>,
) -> Result<(), TestCaseError> {
    let Ok(inputs) = decoded else { return Ok(()) };
    let limits = Limits::default();
    match model.infer(inputs) {
        Ok(outputs) => {
            let sig = model.signature();
            let named: Vec<(String, Tensor, bool)> =
                sig.outputs.iter().zip(&outputs).map(|(s, t)| (s.name.clone(), t.clone(), false)).collect();
            let encoded = oip::encode("m", 1, "id", &named, Value::Null, &limits);
            prop_assert!(encoded.is_ok(), "oip::encode: {:?}", encoded.err());
            let encoded = invocations::encode(sig, &outputs, &limits);
            prop_assert!(encoded.is_ok(), "invocations::encode: {:?}", encoded.err());
        }
        Err(RuntimeError::Input(m)) => prop_assert!(!m.is_empty()),
        Err(e) => prop_assert!(false, "a 5xx: {e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn oip_requests_run_or_are_refused((i, body) in (0..MODELS.len()).prop_flat_map(|i| (Just(i), oip_request(models()[i].1.signature())))) {
        let (name, model) = &models()[i];
        memory::case("models-oip", &body.0);
        let decoded = oip::decode(&body.0, None, &Limits::default()).map(|r| r.inputs);
        run(model, decoded).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    }

    #[test]
    fn csv_requests_run_or_are_refused((i, body) in (0..MODELS.len()).prop_flat_map(|i| (Just(i), csv_request(models()[i].1.signature())))) {
        let (name, model) = &models()[i];
        memory::case("models-csv", &body.0);
        let decoded = invocations::decode_csv(&body.0, model.signature(), &Limits::default());
        run(model, decoded).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    }
}
