//! Every committed fixture model runs in Kairo's runtime and matches onnxruntime's outputs
//! (recorded by `fixtures/models/make_models.py`) to 1e-5.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod treeshap;

use std::collections::HashMap;
use std::path::PathBuf;

use kairo_runtime::{DType, Data, Model, RuntimeError, Tensor};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models")
}

fn load(name: &str) -> Model {
    let bytes = std::fs::read(fixtures().join(format!("{name}.onnx"))).unwrap();
    Model::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data = v["data"].as_array().unwrap();
    let data = match DType::from_oip(v["dtype"].as_str().unwrap()).unwrap() {
        DType::F32 => Data::F32(data.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
        DType::I64 => Data::I64(data.iter().map(|x| x.as_i64().unwrap()).collect()),
        DType::Bytes => Data::Bytes(data.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
        other => panic!("fixture dtype {other}"),
    };
    Tensor::new(shape, data).unwrap()
}

fn check_case(name: &str) {
    let model = load(name);
    let case: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join(format!("{name}.cases.json"))).unwrap()).unwrap();
    let inputs: HashMap<String, Tensor> =
        case["inputs"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), tensor(v))).collect();
    let outputs = model.infer(inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (spec, got) in model.signature().outputs.iter().zip(&outputs) {
        let want = tensor(&case["outputs"][&spec.name]);
        assert_eq!(got.shape, want.shape, "{name}: output {} shape", spec.name);
        match (&got.data, &want.data) {
            (Data::F32(g), Data::F32(w)) => {
                for (i, (a, b)) in g.iter().zip(w).enumerate() {
                    let tol = 1e-5 * b.abs().max(1.0);
                    assert!((a - b).abs() <= tol, "{name}: output {}[{i}] = {a}, onnxruntime {b}", spec.name);
                }
            }
            (g, w) => assert_eq!(g, w, "{name}: output {}", spec.name),
        }
    }
}

#[test]
fn logistic_regression_binary() {
    check_case("logreg20");
}

#[test]
fn random_forest_classifier() {
    check_case("forest20");
}

#[test]
fn zipmap_is_served_as_the_probability_tensor() {
    check_case("logreg_iris_zipmap");
    let model = load("logreg_iris_zipmap");
    assert!(model.lowered_ops().contains(&"ZipMap".to_string()));
}

#[test]
fn gradient_boosting_classifiers() {
    check_case("gbc3");
    check_case("gbc_binary");
}

#[test]
fn tree_and_linear_regressors() {
    check_case("forest_reg");
    check_case("gbr");
    check_case("linreg");
}

#[test]
fn scaler_and_one_hot_pipeline_with_an_unseen_category() {
    check_case("pipeline_mixed");
    let model = load("pipeline_mixed");
    assert_eq!(model.lowered_ops(), ["OneHotEncoder", "Scaler"]);
}

#[test]
fn mlp() {
    check_case("mlp");
}

#[cfg(not(feature = "ort"))]
#[test]
fn unsupported_operators_are_named() {
    let bytes = std::fs::read(fixtures().join("svm_unsupported.onnx")).unwrap();
    match Model::load(&bytes) {
        Err(RuntimeError::Unsupported { ops }) => assert_eq!(ops, ["ai.onnx.ml:SVMClassifier"]),
        other => panic!("expected unsupported operators, got {other:?}"),
    }
    assert!(matches!(Model::load(b"not a model"), Err(RuntimeError::Decode(_))));
}

#[test]
fn bad_inputs_name_the_input() {
    let model = load("logreg20");
    let err = |inputs: Vec<(&str, Tensor)>| {
        let map = inputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        match model.infer(map) {
            Err(RuntimeError::Input(msg)) => msg,
            other => panic!("expected an input error, got {other:?}"),
        }
    };
    let ok = || Tensor::new(vec![1, 20], Data::F32(vec![0.5; 20])).unwrap();
    assert!(err(vec![]).contains("missing input 'input'"));
    assert!(err(vec![("input", ok()), ("extra", ok())]).contains("unknown input 'extra'"));
    let wrong_shape = Tensor::new(vec![1, 19], Data::F32(vec![0.5; 19])).unwrap();
    assert!(err(vec![("input", wrong_shape)]).contains("expected shape [-1, 20]"));
    let wrong_type = Tensor::new(vec![1, 20], Data::F64(vec![0.5; 20])).unwrap();
    assert!(err(vec![("input", wrong_type)]).contains("expected datatype FP32, got FP64"));
    let mut nan = vec![0.5; 20];
    nan[3] = f32::NAN;
    let nan = Tensor::new(vec![1, 20], Data::F32(nan)).unwrap();
    assert!(err(vec![("input", nan)]).contains("element 3 is NaN"));
    // A batch of many rows runs in one call.
    let batch = Tensor::new(vec![100, 20], Data::F32(vec![0.1; 2000])).unwrap();
    let out = model.infer([("input".to_string(), batch)].into()).unwrap();
    assert_eq!(out[1].shape, vec![100, 2]);
}

/// With the `ort` feature, models tract cannot run go to ONNX Runtime (loaded from
/// `ORT_DYLIB_PATH`; `.ci/test` points it at the onnxruntime wheel's library).
#[cfg(feature = "ort")]
#[test]
fn models_tract_cannot_run_go_to_onnxruntime() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        assert!(std::env::var_os("KAIRO_CI").is_none(), "ORT_DYLIB_PATH is not set, and under CI a test never skips");
        eprintln!("skipping: ORT_DYLIB_PATH is not set (.ci/test sets it)");
        return;
    }
    let model = load("svm_unsupported");
    assert_eq!(model.backend_name(), "onnxruntime");
    check_case("svm_unsupported");
    // Models tract runs stay on tract.
    assert_eq!(load("logreg20").backend_name(), "tract");
    let bad = Tensor::new(vec![1, 3], Data::F32(vec![0.5; 3])).unwrap();
    assert!(matches!(model.infer([("input".to_string(), bad)].into()), Err(RuntimeError::Input(_))));
}
