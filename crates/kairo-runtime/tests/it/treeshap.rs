//! Exact TreeSHAP against the `shap` package (`fixtures/treeshap/golden.json`, written by
//! `make_golden.py` with shap's `TreeExplainer`, path-dependent): the same trees and covers
//! give the same SHAP values and expected value, to 1e-6.

use std::collections::HashMap;
use std::path::PathBuf;

use kairo_runtime::explain::{Encoding, Explainer, Method, Scorer, TreeNode};
use kairo_runtime::{Data, Tensor};
use serde_json::Value;

pub fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/treeshap/golden.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// One column per feature, `[rows, 1]`.
pub fn inputs(x: &Value, features: usize) -> HashMap<String, Tensor> {
    let rows: Vec<Vec<f64>> = x.as_array().unwrap().iter().map(numbers).collect();
    (0..features)
        .map(|f| {
            let column: Vec<f32> = rows.iter().map(|r| r[f] as f32).collect();
            (format!("x{f}"), Tensor::new(vec![rows.len(), 1], Data::F32(column)).unwrap())
        })
        .collect()
}

pub fn features(n: usize) -> Vec<Encoding> {
    (0..n)
        .map(|f| Encoding {
            name: format!("x{f}"),
            mean: None,
            std: None,
            categories: Vec::new(),
            input: None,
            index: None,
        })
        .collect()
}

/// Contributions vs shap: `[row][output][feature]` and the expected value per output.
pub fn assert_matches(name: &str, e: &Explainer, x: &Value, shap: &Value, expected: &Value, features: usize) {
    assert_eq!(e.method(), Method::TreeShap, "{name}");
    let (values, rows) = e.contribution_values(&inputs(x, features)).unwrap();
    let outputs = e.targets;
    let cols = features + 1;
    let expected = numbers(expected);
    let mut worst = 0f64;
    for r in 0..rows {
        for k in 0..outputs {
            let want = numbers(&shap[r][k]);
            for f in 0..features {
                let got = values[(r * outputs + k) * cols + f];
                worst = worst.max((got - want[f]).abs());
                assert!(
                    (got - want[f]).abs() < 1e-6,
                    "{name} row {r} output {k} feature {f}: {got} vs shap {}",
                    want[f]
                );
            }
            let bias = values[(r * outputs + k) * cols + features];
            assert!((bias - expected[k]).abs() < 1e-6, "{name}: bias {bias} vs shap's expected value {}", expected[k]);
        }
    }
    eprintln!("{name}: {rows} rows, largest difference from shap {worst:e}");
}

#[test]
fn custom_trees_match_shap() {
    let g = golden();
    let cases: Vec<&Value> = g["cases"].as_array().unwrap().iter().filter(|c| c["kind"] == "custom").collect();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let features = case["n_features"].as_u64().unwrap() as usize;
        let outputs = case["n_outputs"].as_u64().unwrap() as usize;
        let trees: Vec<Vec<TreeNode>> = case["trees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let left = t["children_left"].as_array().unwrap();
                (0..left.len())
                    .map(|i| {
                        let l = left[i].as_i64().unwrap();
                        let split = (l >= 0).then(|| {
                            (
                                t["features"][i].as_u64().unwrap() as usize,
                                t["thresholds"][i].as_f64().unwrap() as f32,
                                l as usize,
                                t["children_right"][i].as_u64().unwrap() as usize,
                            )
                        });
                        TreeNode {
                            split,
                            value: numbers(&t["values"][i]),
                            cover: Some(t["node_sample_weight"][i].as_f64().unwrap()),
                        }
                    })
                    .collect()
            })
            .collect();
        let base = match &case["base_offset"] {
            Value::Array(_) => numbers(&case["base_offset"]),
            v => vec![v.as_f64().unwrap(); outputs],
        };
        let e = Explainer {
            features: self::features(features),
            targets: outputs,
            score: "value".into(),
            scorer: Scorer::Trees { trees, base },
        };
        let e = Explainer::from_metadata(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_matches(name, &e, &case["X"], &case["shap_values"], &case["expected_value"], features);
    }
}

/// skl2onnx's trees: the explainer read from the `.onnx` file, covers from the training rows
/// routed through it, against shap on the trees as the file stores them (float32 weights) —
/// and against shap on the scikit-learn model itself, which differs by float32 rounding only.
#[test]
fn skl2onnx_ensembles_match_shap() {
    let g = golden();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/treeshap");
    let cases: Vec<&Value> = g["cases"].as_array().unwrap().iter().filter(|c| c["kind"] == "sklearn_onnx").collect();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(case["onnx"].as_str().unwrap())).unwrap();
        let model = kairo_runtime::Model::load(&bytes).unwrap();
        let mut e = model.tree_explainer().unwrap_or_else(|| panic!("{name}: no tree explainer")).clone();
        assert_eq!(e.method(), Method::Saabas, "{name}: no covers yet");
        let data = &g["datasets"][case["dataset"].as_str().unwrap()];
        let features = case["n_features"].as_u64().unwrap() as usize;
        let matrix = |x: &Value| {
            let rows = x.as_array().unwrap();
            let flat: Vec<f32> = rows.iter().flat_map(|r| numbers(r).into_iter().map(|v| v as f32)).collect();
            HashMap::from([("input".to_string(), Tensor::new(vec![rows.len(), features], Data::F32(flat)).unwrap())])
        };
        e.set_covers_from(&matrix(&data["X_train"])).unwrap();
        let want_covers: Vec<Vec<f64>> = case["covers"].as_array().unwrap().iter().map(numbers).collect();
        let mut got_covers: Vec<Vec<f64>> = e.covers();
        // Same multiset per tree (the node order may differ from sklearn's).
        for (got, want) in got_covers.iter_mut().zip(&want_covers) {
            let mut want = want.clone();
            got.sort_by(f64::total_cmp);
            want.sort_by(f64::total_cmp);
            assert_eq!(*got, want, "{name}: covers");
        }
        let (values, rows) = e.contribution_values(&matrix(&data["X_explain"])).unwrap();
        let outputs = e.targets;
        assert_eq!(outputs, case["n_outputs"].as_u64().unwrap() as usize, "{name}");
        let mut worst = (0f64, 0f64);
        for (shap, expected, tolerance, slot) in [
            (&case["shap_values_onnx_weights"], &case["expected_value_onnx_weights"], 1e-6, 0),
            (&case["shap_values"], &case["expected_value"], 1e-6, 1),
        ] {
            for r in 0..rows {
                for k in 0..outputs {
                    let want = numbers(&shap[r][k]);
                    for f in 0..features {
                        let d = (values[(r * outputs + k) * (features + 1) + f] - want[f]).abs();
                        assert!(d < tolerance, "{name} row {r} output {k} feature {f}: off by {d}");
                        if slot == 0 {
                            worst.0 = worst.0.max(d);
                        } else {
                            worst.1 = worst.1.max(d);
                        }
                    }
                    let bias = values[(r * outputs + k) * (features + 1) + features];
                    assert!(
                        (bias - expected[k].as_f64().unwrap()).abs() < tolerance,
                        "{name}: bias {bias} vs {}",
                        expected[k]
                    );
                }
            }
        }
        eprintln!(
            "{name}: largest difference from shap on the stored trees {:e}, on the sklearn model {:e}",
            worst.0, worst.1
        );
    }
}
