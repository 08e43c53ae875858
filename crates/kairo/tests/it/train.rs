//! `kairo train` through the real binary: every learner on data made here (numbers with
//! missing values, a category with missing and unseen values), exported to ONNX, loaded in
//! Kairo's runtime and (with the test venv) in onnxruntime with the same predictions;
//! bit-identical output for the same seed; bad input refused with nothing written.

use crate::Repo;
use kairo_runtime::{Data, Model, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Deterministic uniform numbers in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 400 rows: x1, x2 (5% missing), city (a–d, some missing), and the three targets.
pub fn dataset(target: &str) -> String {
    let mut g = Lcg(42);
    let mut out = format!("x1,x2,city,{target}\n");
    for _ in 0..400 {
        let x1 = g.next() * 4.0 - 2.0;
        let x2 = g.next() * 10.0;
        let city = ["a", "b", "c", "d", ""][(g.next() * 5.0) as usize];
        let bump = match city {
            "a" => 1.0,
            "b" => -1.0,
            _ => 0.0,
        };
        let score = x1 + 0.2 * x2 - 1.0 + bump + (g.next() - 0.5);
        let y = match target {
            "churn" => (if score > 0.0 { "yes" } else { "no" }).to_string(),
            "tier" => (if score < -0.5 {
                0
            } else if score < 1.0 {
                1
            } else {
                2
            })
            .to_string(),
            _ => format!("{:.4}", 3.0 * score + 10.0),
        };
        let x2 = if g.next() < 0.05 { String::new() } else { format!("{x2:.4}") };
        out.push_str(&format!("{x1:.4},{x2},{city},{y}\n"));
    }
    out
}

/// The model's inputs from a CSV made by `dataset` (plus an unseen city).
fn inputs(model: &Model, csv: &str) -> HashMap<String, Tensor> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut out = HashMap::new();
    for spec in &model.signature().inputs {
        let c = header.iter().position(|h| *h == spec.name).unwrap();
        let data = match spec.dtype {
            kairo_runtime::DType::Bytes => Data::Bytes(rows.iter().map(|r| r[c].to_string()).collect()),
            _ => Data::F32(rows.iter().map(|r| r[c].parse().unwrap_or(f32::NAN)).collect()),
        };
        out.insert(spec.name.clone(), Tensor::new(vec![rows.len(), 1], data).unwrap());
    }
    out
}

fn as_json(t: &Tensor) -> Vec<Value> {
    match &t.data {
        Data::Bytes(v) => v.iter().map(|s| Value::from(s.clone())).collect(),
        Data::I64(v) => v.iter().map(|x| Value::from(*x as f64)).collect(),
        _ => (0..t.data.len()).map(|i| Value::from(t.data.f64_at(i).unwrap())).collect(),
    }
}

fn onnxruntime(python: &str, model: &PathBuf, csv: &PathBuf) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/onnx_outputs.py");
    let out = std::process::Command::new(python).arg(script).arg(model).arg(csv).output().unwrap();
    assert!(out.status.success(), "onnx_outputs.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

#[test]
fn every_learner_exports_onnx_that_kairo_and_onnxruntime_agree_on() {
    let repo = Repo::new();
    let python = crate::server::python();
    let cases = [
        ("churn", "logistic", "label"),
        ("churn", "gbdt", "label"),
        ("churn", "random_forest", "label"),
        ("tier", "logistic", "label"),
        ("tier", "gbdt", "label"),
        ("tier", "random_forest", "label"),
        ("spend", "linear", "variable"),
        ("spend", "gbdt", "variable"),
    ];
    for target in ["churn", "tier", "spend"] {
        repo.write(&format!("{target}.csv"), dataset(target));
    }
    // Scoring data with a city never seen in training: its one-hot columns are all zero.
    let scoring = dataset("churn").replacen(",a,", ",zürich,", 3);
    repo.write("scoring.csv", &scoring);
    for (target, algo, first_output) in cases {
        let model = format!("{target}-{algo}.onnx");
        let mut args = vec![
            "train",
            "--data",
            &format!("{target}.csv"),
            "--target",
            target,
            "--algo",
            algo,
            "--out",
            &model,
            "--metrics",
            "metrics.json",
            "--seed",
            "7",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if algo == "random_forest" {
            args.extend(["--param".into(), "n_estimators=15".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let summary = repo.json(&args);
        let metrics: Value = serde_json::from_slice(&repo.read("metrics.json")).unwrap();
        assert_eq!(summary["train_rows"], 320, "{summary}");
        assert_eq!(summary["test_rows"], 80);
        match first_output {
            "label" => {
                let accuracy = metrics["accuracy"].as_f64().unwrap();
                assert!(accuracy > 0.6, "{target} {algo}: accuracy {accuracy}");
                assert!(metrics.get("f1_macro").is_some() && metrics.get("balanced_accuracy").is_some());
            }
            _ => assert!(metrics["r2"].as_f64().unwrap() > 0.5, "{target} {algo}: {metrics}"),
        }
        if target == "churn" {
            assert!(metrics["auc"].as_f64().unwrap() > 0.7, "{algo}: {metrics}");
        }
        // The same data, params and seed give the same bytes.
        let again = args.iter().map(|a| if *a == model.as_str() { "again.onnx" } else { a }).collect::<Vec<_>>();
        repo.kairo(&again).assert().success();
        assert!(repo.read(&model) == repo.read("again.onnx"), "{model} is not deterministic");

        let loaded = Model::load(&repo.read(&model)).unwrap();
        let names: Vec<&str> = loaded.signature().outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names[0], first_output);
        let data_csv = if target == "churn" { "scoring.csv".to_string() } else { format!("{target}.csv") };
        let text = String::from_utf8(repo.read(&data_csv)).unwrap();
        let ours = loaded.infer(inputs(&loaded, &text)).unwrap();
        if target == "churn" {
            assert_eq!(ours[0].data.len(), 400);
            assert!(matches!(&ours[0].data, Data::Bytes(v) if v.iter().all(|l| l == "yes" || l == "no")));
        }
        if let Some(python) = &python {
            let theirs = onnxruntime(python, &repo.join(&model), &repo.join(&data_csv));
            for (spec, tensor) in loaded.signature().outputs.iter().zip(&ours) {
                let want = theirs[&spec.name].as_array().unwrap();
                let got = as_json(tensor);
                assert_eq!(got.len(), want.len(), "{model} {}", spec.name);
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    match (g.as_f64(), w.as_f64()) {
                        (Some(g), Some(w)) => {
                            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{model} {}[{i}]: {g} vs {w}", spec.name)
                        }
                        _ => assert_eq!(g, w, "{model} {}[{i}]", spec.name),
                    }
                }
            }
        }
    }
}

#[test]
fn registration_measures_permutation_importance_on_the_holdout() {
    let repo = Repo::new();
    repo.write("churn.csv", dataset("churn"));
    repo.kairo(&["train", "--data", "churn.csv", "--target", "churn", "--algo", "logistic", "--out", "m.onnx"])
        .assert()
        .success();
    repo.write("kairo.yaml", "version: 1\nmodels:\n  churn:\n    holdout: {path: churn.csv, target: churn}\n");
    repo.kairo(&["models", "register", "churn", "--file", "m.onnx"]).assert().success();
    let show = repo.json(&["models", "show", "churn:1"]);
    let imp = &show["versions"][0]["importance"];
    assert_eq!(imp["metric"], "accuracy", "{show}");
    assert_eq!(imp["rows"], 400);
    let features = imp["features"].as_array().unwrap();
    let names: Vec<&str> = features.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // x1 moves the score by ±2, x2 by ±1, the city by ±1: x1 matters most; shuffling any
    // of them costs accuracy.
    assert_eq!(names[0], "x1", "{imp}");
    assert!(features.iter().all(|f| f["importance"].as_f64().unwrap() > 0.0), "{imp}");
    let text = repo.kairo(&["models", "show", "churn:1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("permutation importance (accuracy drop on churn.csv"));
}

#[test]
fn served_contributions_add_up_to_the_score() {
    let repo = Repo::new();
    repo.write("churn.csv", dataset("churn"));
    repo.write("spend.csv", dataset("spend"));
    repo.write("tier.csv", dataset("tier"));
    let models = [
        ("churn", "logistic", "logit"),
        ("churn", "gbdt", "logit"),
        ("churn", "random_forest", "probability"),
        ("tier", "gbdt", "logit"),
        ("spend", "linear", "value"),
        ("spend", "gbdt", "value"),
    ];
    let mut names = Vec::new();
    for (target, algo, _) in models {
        let name = format!("{target}-{}", algo.replace('_', "-"));
        let file = format!("{name}.onnx");
        let mut args =
            vec!["train", "--data", &format!("{target}.csv"), "--target", target, "--algo", algo, "--out", &file]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
        if algo == "random_forest" {
            args.extend(["--param".to_string(), "n_estimators=10".to_string()]);
        }
        repo.kairo(&args.iter().map(String::as_str).collect::<Vec<_>>()).assert().success();
        repo.kairo(&["models", "register", &name, "--file", &file]).assert().success();
        names.push(name);
    }
    let fixture = crate::serving::fixture("forest20.onnx");
    repo.kairo(&["models", "register", "sklearn", "--file", fixture.to_str().unwrap()]).assert().success();
    let mut served: Vec<&str> = names.iter().map(String::as_str).collect();
    served.push("sklearn");
    let serve = crate::serving::Serve::start(&repo, &served);
    let body = serde_json::json!({
        "inputs": [
            {"name": "x1", "shape": [3, 1], "datatype": "FP32", "data": [1.5, -0.5, 0.2]},
            {"name": "x2", "shape": [3, 1], "datatype": "FP32", "data": [7.0, 4.0, 2.0]},
            {"name": "city", "shape": [3, 1], "datatype": "BYTES", "data": ["a", "b", "somewhere new"]},
        ],
        "parameters": {"contributions": true},
    });
    for ((target, _, score), name) in models.iter().zip(&names) {
        let (status, r) = serve.post(&format!("/v2/models/{name}/infer"), &body);
        assert_eq!(status, 200, "{name}: {r}");
        let output = |n: &str| r["outputs"].as_array().unwrap().iter().find(|o| o["name"] == n).cloned().unwrap();
        let contributions = output("contributions");
        let method = if ["logistic", "linear"].iter().any(|l| name.ends_with(l)) { "linear" } else { "treeshap" };
        assert_eq!(r["parameters"]["contribution_method"], method, "{name}: {r}");
        let shape: Vec<u64> = contributions["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let columns: Vec<String> = output("contribution_names")["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().into())
            .collect();
        assert_eq!(columns, vec!["x1", "x2", "city", "bias"], "{name}");
        let data: Vec<f64> = contributions["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let targets = shape[1] as usize;
        assert_eq!((shape[0], shape[2]), (3, 4), "{name}");
        for row in 0..3 {
            // The score the contributions must add up to, from the model's own outputs.
            let want: Vec<f64> = match (*target, *score) {
                ("spend", _) => vec![output("variable")["data"][row].as_f64().unwrap()],
                (_, "probability") => {
                    (0..targets).map(|k| output("probabilities")["data"][row * targets + k].as_f64().unwrap()).collect()
                }
                ("churn", _) => {
                    let p = output("probabilities")["data"][row * 2 + 1].as_f64().unwrap();
                    vec![(p / (1.0 - p)).ln()]
                }
                _ => {
                    // One-vs-rest: each class's logit; probabilities are their sigmoids, normalised.
                    let p: Vec<f64> = (0..targets)
                        .map(|k| output("probabilities")["data"][row * targets + k].as_f64().unwrap())
                        .collect();
                    let sum: Vec<f64> =
                        (0..targets).map(|k| data[(row * targets + k) * 4..][..4].iter().sum()).collect();
                    let sig: Vec<f64> = sum.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
                    let total: f64 = sig.iter().sum();
                    for k in 0..targets {
                        assert!((sig[k] / total - p[k]).abs() < 1e-4, "{name} row {row} class {k}");
                    }
                    sum
                }
            };
            for (k, w) in want.iter().enumerate() {
                let got: f64 = data[(row * targets + k) * 4..][..4].iter().sum();
                assert!((got - w).abs() < 1e-3 * w.abs().max(1.0), "{name} row {row} target {k}: {got} vs {w}");
            }
        }
    }
    // A model without contribution data says so.
    let (status, r) = serve.post(
        "/v2/models/sklearn/infer",
        &serde_json::json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": vec![0.5; 20]}],
                            "parameters": {"contributions": true}}),
    );
    assert_eq!(status, 400);
    assert!(r["error"].as_str().unwrap().contains("no contribution data"), "{r}");
    assert!(r["error"].as_str().unwrap().contains("--profile-data"), "{r}");
    serve.stop();

    // The same forest registered with its training data: exact TreeSHAP, features named as
    // the data names them, adding up to the positive class's probability.
    let mut g = crate::monitoring::Lcg(5);
    repo.write("train20.csv", crate::monitoring::training_csv(&mut g, 300));
    let fixture = fixture.to_str().unwrap();
    let args =
        ["models", "register", "forest", "--file", fixture, "--profile-data", "train20.csv", "--target", "label"];
    repo.kairo(&args).assert().success();
    let serve = crate::serving::Serve::start(&repo, &["forest"]);
    let row: Vec<f32> = (0..20).map(|i| (i as f32 - 10.0) / 7.0).collect();
    let (status, r) = serve.post(
        "/v2/models/forest/infer",
        &serde_json::json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": row}],
                            "parameters": {"contributions": true}}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["parameters"]["contribution_method"], "treeshap", "{r}");
    let output = |n: &str| r["outputs"].as_array().unwrap().iter().find(|o| o["name"] == n).cloned().unwrap();
    let names = output("contribution_names")["data"].clone();
    assert_eq!(names[0], "f0", "{names}");
    assert_eq!(names[20], "bias");
    let c: Vec<f64> = output("contributions")["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(c.len(), 2 * 21, "two classes × (20 features + bias)");
    let p: Vec<f64> = output("probabilities")["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for k in 0..2 {
        let sum: f64 = c[k * 21..(k + 1) * 21].iter().sum();
        assert!((sum - p[k]).abs() < 1e-4, "class {k}: {sum} vs {}", p[k]);
    }
    serve.stop();
}

#[test]
fn a_pipeline_stage_trains_and_its_run_registers_with_lineage_and_metrics() {
    let repo = Repo::new();
    repo.write("churn.csv", dataset("churn"));
    let exe = assert_cmd::cargo::cargo_bin("kairo");
    repo.write(
        "kairo.yaml",
        format!(
            "version: 1\nstages:\n  train:\n    cmd: '{} train --data churn.csv --target churn --algo logistic --out model.onnx --metrics metrics.json'\n    deps: [churn.csv]\n    outs: [model.onnx]\n    metrics: [metrics.json]\n",
            exe.display()
        ),
    );
    repo.kairo(&["run"]).assert().success();
    let runs = repo.json(&["runs", "ls"]);
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let v = repo.json(&["models", "register", "churn", "--run", &run, "--artifact", "model.onnx"]);
    assert!(v["metrics"]["accuracy"].as_f64().unwrap() > 0.6, "{v}");
    assert!(v["metrics"]["auc"].as_f64().is_some());
    assert_eq!(v["profile"], true, "the run's CSV dependency is profiled");
    let lineage = repo.json_with(&["lineage", "churn:1", "--format", "json"]);
    assert!(lineage["lineage"].to_string().contains("churn.csv"), "{lineage}");
    // Nothing changed: the stage does not run again.
    repo.kairo(&["status"]).assert().code(0);
}

#[test]
fn bad_input_is_refused_by_name_and_writes_nothing() {
    let repo = Repo::new();
    repo.write("ok.csv", dataset("churn"));
    repo.write("empty.csv", "");
    repo.write("constant.csv", "x,y\n1,a\n2,a\n3,a\n");
    repo.write("few.csv", "x,y\n1,a\n2,b\n3,c\n");
    let mut junk = String::from("x,y\n");
    for i in 0..50 {
        junk.push_str(&format!("{},{}\n", if i == 17 { "n/a?".to_string() } else { i.to_string() }, i % 2));
    }
    repo.write("junk.csv", junk);
    let cases: [(&[&str], &str); 8] = [
        (&["--data", "ok.csv", "--target", "nope"], "no target column 'nope'"),
        (&["--data", "empty.csv", "--target", "y"], "empty"),
        (&["--data", "constant.csv", "--target", "y"], "constant"),
        (&["--data", "few.csv", "--target", "y"], "3 classes for 3 rows"),
        (&["--data", "junk.csv", "--target", "y"], "column 'x'"),
        (&["--data", "ok.csv", "--target", "churn", "--param", "depth=3"], "--param depth"),
        (&["--data", "ok.csv", "--target", "churn", "--algo", "linear"], "regression"),
        (&["--data", "missing.csv", "--target", "y"], "missing.csv"),
    ];
    for (args, message) in cases {
        let mut all = vec!["train", "--out", "model.onnx", "--metrics", "m.json"];
        all.extend_from_slice(args);
        let out = repo.kairo(&all).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in {stderr}");
        assert!(!repo.join("model.onnx").exists() && !repo.join("m.json").exists(), "{args:?} left output behind");
    }
    // Test data may hold a single class (only training data must have something to learn).
    repo.write(
        "one-class.csv",
        dataset("churn").lines().filter(|l| !l.ends_with(",no")).collect::<Vec<_>>().join("\n"),
    );
    let v = repo.json(&[
        "train",
        "--data",
        "ok.csv",
        "--target",
        "churn",
        "--test-data",
        "one-class.csv",
        "--out",
        "t.onnx",
    ]);
    assert!(v["metrics"]["accuracy"].as_f64().is_some(), "{v}");
    // A value that is not KEY=VALUE is a usage error.
    repo.kairo(&["train", "--data", "ok.csv", "--target", "churn", "--out", "m.onnx", "--param", "deep"])
        .assert()
        .code(2);
}
