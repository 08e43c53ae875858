//! Responsible production (issue 21) in a deployment monitor: performance estimated before
//! labels arrive (CBPE, calibrated on the model's holdout) and replaced by the realised values
//! once they do; drift and quality per slice of `segments:`, small slices reported but not
//! judged; fairness across a logged column as an alert value.

use serde_json::{json, Value};

use crate::monitoring::{features, training_csv, Lcg};
use crate::serving::{eventually, register_profiled, Serve};
use crate::Repo;

fn check(repo: &Repo, monitor: &str) -> (i32, Value) {
    let out = repo.kairo(&["monitor", "check", "--json", "--monitor", monitor]).output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

const MONITOR: &str = "    deployment: clf\n    rows: 400\n    segments: [f1]\n    min_segment_rows: 30\n    alerts:\n      - when: estimated_accuracy < 0.999\n      - when: demographic_parity_difference(f0) >= 0\n";

#[test]
fn a_monitor_estimates_before_labels_slices_and_judges_fairness() {
    let repo = Repo::new();
    let mut g = Lcg(21);
    repo.write("train.csv", training_csv(&mut g, 2000));
    repo.write("holdout.csv", training_csv(&mut g, 1500));
    repo.write(
        "kairo.yaml",
        format!(
            "version: 1\nmodels:\n  clf:\n    holdout: {{path: holdout.csv, target: label}}\nmonitors:\n  m:\n{MONITOR}  bad:\n    deployment: clf\n    segments: [nosuch]\n"
        ),
    );
    let r = register_profiled(&repo, "clf", "logreg20.onnx", "train.csv");
    assert_eq!(r["profile"], true, "{r}");

    let serve = Serve::start(&repo, &["clf"]);
    let x = features(&mut g, 400, 0, 0.0);
    let (status, answer) = serve.post(
        "/v2/models/clf/infer",
        &json!({"id": "batch", "inputs": [{"name": "input", "shape": [400, 20], "datatype": "FP32", "data": x}]}),
    );
    assert_eq!(status, 200, "{answer}");
    eventually("the rows to be logged", || check(&repo, "m").1["windows"][0]["rows"] == 400);

    let (code, v) = check(&repo, "m");
    assert_eq!(code, 3, "both rules fire: {v}");
    let w = &v["windows"][0];
    let values = &w["values"];
    // Before labels: estimated, marked so, with a sampling error.
    let estimated = values["estimated_accuracy"].as_f64().expect("estimated accuracy");
    assert!((0.0..=1.0).contains(&estimated), "{values}");
    assert!(values["estimated_auc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{values}");
    assert!(w["estimated"]["accuracy_error"].as_f64().unwrap() > 0.0, "{w}");
    assert!(values.get("accuracy").is_none());
    // Slices of f1 (the reference's deciles): every row in one, small ones not judged.
    let slices = w["slices"].as_array().unwrap();
    assert!(slices.len() >= 8, "{slices:?}");
    assert_eq!(slices.iter().map(|s| s["rows"].as_u64().unwrap()).sum::<u64>(), 400);
    for s in slices {
        let key = format!("{}={}", s["column"].as_str().unwrap(), s["value"].as_str().unwrap());
        assert_eq!(values[format!("rows[{key}]")], s["rows"].as_f64().unwrap());
        let judged = s["rows"].as_u64().unwrap() >= 30;
        assert_eq!(s["judged"], judged, "{s}");
        assert_eq!(values.get(format!("drift_share[{key}]")).is_some(), judged, "{s}");
    }
    assert!(slices.iter().any(|s| s["judged"] == true), "{slices:?}");
    let dpd = values["demographic_parity_difference(f0)"].as_f64().expect("fairness value");
    assert!((0.0..=1.0).contains(&dpd), "{values}");
    let rules: Vec<&str> =
        v["alerts"].as_array().unwrap().iter().map(|a| a["alert"]["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.len(), 2, "{rules:?}");
    // The table says the numbers are estimates.
    let text = repo.kairo(&["monitor", "check", "--monitor", "m"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("estimated: accuracy≈"), "{text}");
    assert!(text.contains("SLICE") && text.contains("f1=("), "{text}");

    // Labels arrive (f0 > 0, as in the holdout): realised values replace the estimates, and
    // the estimate was right within its sampling error.
    let labels: Vec<i64> = x.chunks(20).map(|row| i64::from(row[0] > 0.0)).collect();
    let (status, _) = serve.post("/v1/feedback", &json!({"request_id": "batch", "labels": labels}));
    assert_eq!(status, 200);
    let (_, v) = check(&repo, "m");
    let w = &v["windows"][0];
    let realised = w["values"]["accuracy"].as_f64().expect("realised accuracy");
    assert!(w["values"].get("estimated_accuracy").is_none(), "{w}");
    let error = w["estimated"]["accuracy_error"].as_f64().unwrap();
    assert!(
        (w["estimated"]["accuracy"].as_f64().unwrap() - realised).abs() <= 4.0 * error,
        "estimated {} vs realised {realised} (sampling error {error})",
        w["estimated"]["accuracy"]
    );
    // Judged slices now carry quality with a 95% interval around it.
    let judged = w["slices"].as_array().unwrap().iter().find(|s| s["judged"] == true).unwrap();
    let (acc, low, high) = (
        judged["quality"]["accuracy"].as_f64().unwrap(),
        judged["interval"]["low"].as_f64().unwrap(),
        judged["interval"]["high"].as_f64().unwrap(),
    );
    assert!(low <= acc && acc <= high && high - low < 0.5, "{judged}");
    drop(serve);

    // A slice column the version does not log is the monitor's error, named.
    let out = repo.kairo(&["monitor", "check", "--monitor", "bad"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("segments: `nosuch` is not a logged input") && err.contains("f0"), "{err}");
}

/// `kairo monitor estimate` on nannyml's own fixture (`fixtures/cbpe`): the same per-chunk
/// estimates, bands and alerts through files and the CLI; bad input named.
#[test]
fn monitor_estimate_agrees_with_nannyml_through_files() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cbpe/golden.json");
    let g: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let case = &g["cases"][0];
    let repo = Repo::new();
    let csv = |side: &Value, labels: bool| {
        let mut out = String::from(if labels { "score,prediction,label\n" } else { "score,prediction\n" });
        let n = side["y_pred_proba"].as_array().unwrap().len();
        for i in 0..n {
            out.push_str(&format!("{},{}", side["y_pred_proba"][i].as_f64().unwrap(), side["y_pred"][i]));
            if labels {
                out.push_str(&format!(",{}", side["y_true"][i]));
            }
            out.push('\n');
        }
        out
    };
    repo.write("reference.csv", csv(&case["reference"], true));
    repo.write("current.csv", csv(&case["analysis"], true));
    let size = case["chunk_size"].to_string();
    let args = [
        "monitor",
        "estimate",
        "--reference",
        "reference.csv",
        "--current",
        "current.csv",
        "--prediction",
        "prediction",
        "--chunk-size",
        &size,
        "--json",
    ];
    let out = repo.kairo(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "the shifted chunks alert: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calibrated"], true);
    let chunks = v["chunks"].as_array().unwrap();
    let golden = case["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), golden.len());
    for (got, want) in chunks.iter().zip(golden) {
        for (ours, theirs) in [("accuracy", "estimated_accuracy"), ("auc", "estimated_roc_auc")] {
            let (a, b) = (got["estimate"][ours].as_f64().unwrap(), want[theirs].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{} {ours}: {a} vs nannyml {b}", want["key"]);
        }
        assert_eq!(got["accuracy_alert"], want["alert_accuracy"], "{}", want["key"]);
        assert_eq!(got["auc_alert"], want["alert_roc_auc"], "{}", want["key"]);
        assert!(
            (got["realised_accuracy"].as_f64().unwrap() - want["realized_accuracy"].as_f64().unwrap()).abs() < 1e-12
        );
    }
    let text = repo.kairo(&args[..args.len() - 1]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("ESTIMATED ACCURACY") && text.contains("ALERT") && text.contains("calibrated (isotonic)"),
        "{text}"
    );

    // Bad input: each names the file, the row or column, and the fix.
    repo.write("three.csv", "score,label\n0.1,a\n0.5,b\n0.9,c\n");
    repo.write("wide.csv", "score,label\n0.1,0\n1.5,1\n");
    for (reference, current, extra, needle) in [
        ("reference.csv", "current.csv", vec!["--score", "p"], "no score column `p`"),
        ("reference.csv", "current.csv", vec!["--label", "y"], "no label column `y`"),
        ("three.csv", "current.csv", vec![], "has 3 classes"),
        ("reference.csv", "wide.csv", vec![], "wide.csv: row 3: score 1.5 is not a probability"),
        ("reference.csv", "nosuch.csv", vec![], "nosuch.csv"),
    ] {
        let mut a = vec!["monitor", "estimate", "--reference", reference, "--current", current];
        a.extend(extra);
        let out = repo.kairo(&a).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
