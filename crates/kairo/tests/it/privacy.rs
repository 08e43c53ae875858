//! Privacy of the prediction log (issue 21): personal-looking columns reported at registration
//! (refused with `--strict`), per-field policies applied by `kairo serve` before a row is
//! queued — and the proof: the raw values are nowhere in the store, while a model without a
//! policy leaves them there (so the search can find what it looks for). Monitoring reads the
//! hashed and bucketed fields as categories.

use std::path::Path;

use serde_json::{json, Value};

use crate::monitoring::training_csv;
use crate::serving::{eventually_within, fixture};
use crate::Repo;

const KEY: &str = "a privacy key for tests";
/// Sent as `customer_id` (hashed) and as `f5` (dropped): neither may reach the store.
const ID_MARKER: f32 = 731_953.25;
const DROP_MARKER: f32 = 6_175.125;

/// Whether any file of the store (loose objects and packs) holds `needle`.
fn in_store(repo: &Repo, needle: &str) -> bool {
    /// The file's bytes, and for a prediction-log segment (Parquet: typed and compressed
    /// columns) also its rows as the JSON any reader gets back.
    fn contents(p: &Path) -> Vec<u8> {
        let mut bytes = std::fs::read(p).unwrap_or_default();
        if let Ok(rows) = kairo_watch::segment::read(&bytes) {
            for r in rows {
                bytes.extend_from_slice(r.to_json().to_string().as_bytes());
            }
        }
        bytes
    }
    fn walk(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p, needle)
            } else {
                let hit = contents(&p).windows(needle.len()).any(|w| w == needle);
                if hit {
                    eprintln!("FOUND {} in {}", String::from_utf8_lossy(needle), p.display());
                }
                hit
            }
        })
    }
    walk(&repo.join(".kairo"), needle.as_bytes())
}

fn project() -> Repo {
    let repo = Repo::new();
    let mut g = crate::monitoring::Lcg(7);
    let csv = training_csv(&mut g, 400).replacen("f0,f1,", "customer_id,age,", 1);
    repo.write("train.csv", csv);
    repo
}

fn register(repo: &Repo, name: &str, extra: &[&str], key: Option<&str>) -> std::process::Output {
    let model = fixture("logreg20.onnx");
    let mut args = vec![
        "models",
        "register",
        name,
        "--file",
        model.to_str().unwrap(),
        "--profile-data",
        "train.csv",
        "--target",
        "label",
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut cmd = repo.kairo(&args);
    cmd.env_remove("KAIRO_PRIVACY_KEY");
    if let Some(k) = key {
        cmd.env("KAIRO_PRIVACY_KEY", k);
    }
    cmd.output().unwrap()
}

fn request(url: &str, model: &str, id: &str) {
    let mut row: Vec<f32> = (0..20).map(|i| i as f32 * 0.01).collect();
    row[0] = ID_MARKER;
    row[1] = 0.5;
    row[5] = DROP_MARKER;
    let body = json!({"id": id, "inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": row}]});
    let r = reqwest::blocking::Client::new().post(format!("{url}/v2/models/{model}/infer")).json(&body).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

fn logged(repo: &Repo, model: &str) -> Vec<Value> {
    repo.json(&["models", "predictions", model, "--limit", "10"])["rows"].as_array().cloned().unwrap_or_default()
}

#[test]
fn personal_columns_are_reported_and_strict_refuses_them() {
    let repo = project();
    let out = register(&repo, "clf", &[], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let personal: Vec<&str> = v["personal"].as_array().unwrap().iter().map(|f| f["column"].as_str().unwrap()).collect();
    assert_eq!(personal, ["customer_id"], "{v}");
    assert_eq!(v["personal"][0]["suggested"], "hash");
    assert!(v["notes"].to_string().contains("models.clf.privacy.fields.customer_id: hash"), "{}", v["notes"]);

    let out = register(&repo, "clf", &["--strict"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--strict") && err.contains("customer_id: hash") && err.contains("privacy:"), "{err}");
    assert_eq!(
        repo.json(&["models", "show", "clf"])["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing registered"
    );

    // A policy for it (even `keep`) satisfies --strict.
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}models:\n  clf:\n    privacy:\n      fields:\n        customer_id: keep\n"),
    );
    let out = register(&repo, "clf", &["--strict"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Serve `model` of `repo` (with the key), send three requests with the markers, wait until
/// the log holds them, stop; the logged rows.
fn serve_and_log(repo: &Repo, model: &str) -> Vec<Value> {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"));
    cmd.args(["serve", model, "--port", "0", "--log-flush-s", "1"])
        .current_dir(repo.path())
        .env("KAIRO_PRIVACY_KEY", KEY)
        .env("KAIRO_ACTOR", "server@test")
        .env_remove("KAIRO_DATABASE_URL");
    let (server, url) = crate::spawn_command(cmd);
    for i in 0..3 {
        request(&url, model, &format!("r{i}"));
    }
    eventually_within("the log to be written", std::time::Duration::from_secs(20), || logged(repo, model).len() == 3);
    drop(server);
    logged(repo, model)
}

#[test]
fn policies_keep_raw_values_out_of_the_store() {
    let repo = project();
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}models:\n  clf:\n    privacy:\n      fields:\n        customer_id: hash\n        age: {{bucket: [-1, 0, 1]}}\n        f5: drop\n"),
    );
    // hash needs its key, at registration (the profile is hashed alike) and at serving.
    let out = register(&repo, "clf", &[], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("KAIRO_PRIVACY_KEY"), "{err}");
    let out = register(&repo, "clf", &[], Some(KEY));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let refused = repo.kairo(&["serve", "clf", "--port", "0"]).env_remove("KAIRO_PRIVACY_KEY").output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("KAIRO_PRIVACY_KEY is not set"), "{err}");

    // The control: the same model and requests in a project without a policy.
    let control = project();
    assert!(register(&control, "clf", &[], None).status.success());
    let open = serve_and_log(&control, "clf");
    assert_eq!(open[0]["inputs"]["input"][0].as_f64(), Some(f64::from(ID_MARKER)), "{}", open[0]);
    assert!(in_store(&control, "731953.25") && in_store(&control, "6175.125"), "the search finds raw values");

    let rows = serve_and_log(&repo, "clf");
    let row = &rows[0]["inputs"]["input"];
    let id = row[0].as_str().unwrap_or_default();
    assert!(id.starts_with("h:") && id.len() == 18, "hashed: {row}");
    assert_eq!(row[1], "0–1", "bucketed: {row}");
    assert!(row[5].is_null(), "dropped: {row}");
    assert_eq!(row[2].as_f64().map(|x| (x * 100.0).round()), Some(2.0), "kept: {row}");
    let ids: Vec<Value> = rows.iter().map(|r| r["inputs"]["input"][0].clone()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "the same id hashes alike: {ids:?}");
    assert!(!in_store(&repo, "731953") && !in_store(&repo, "6175.1"), "raw values reached the store");

    // Monitoring reads the hashed and bucketed fields as categories (from the same key).
    let out = repo
        .kairo(&["monitor", "check", "--deployment", "clf", "--rows", "3", "--windows", "1", "--json"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&out.stderr));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = check["windows"][0]["drift"]["columns"].as_array().cloned().unwrap_or_default();
    let kind = |name: &str| columns.iter().find(|c| c["name"] == name).map(|c| c["method"].clone());
    assert!(kind("customer_id").is_some() && kind("age").is_some(), "{check}");
    assert!(kind("f5").is_none(), "a dropped field is not monitored: {check}");
}

/// Erasure on request and retention by age: the rows go from the log, their bytes from the
/// store at `kairo data gc` (searched for, as above), the audit trail names the field and the
/// counts but never the value, and monitoring still counts the pruned rows from their sketches.
#[test]
fn erasure_and_retention_remove_the_bytes() {
    let repo = project();
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", format!("{config}models:\n  clf:\n    privacy:\n      retention: 3s\n"));
    assert!(register(&repo, "clf", &[], None).status.success());
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let rows = serve_and_log(&repo, "clf");
    assert_eq!(rows.len(), 3);
    // A second subject's row, which the erasure must leave alone.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"));
    cmd.args(["serve", "clf", "--port", "0", "--log-flush-s", "1"])
        .current_dir(repo.path())
        .env_remove("KAIRO_DATABASE_URL");
    let (server, url) = crate::spawn_command(cmd);
    let mut other: Vec<f32> = (0..20).map(|i| i as f32 * 0.01).collect();
    other[0] = 4_242.625;
    let body =
        json!({"id": "other", "inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": other}]});
    let r = reqwest::blocking::Client::new().post(format!("{url}/v2/models/clf/infer")).json(&body).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually_within("the other row to be logged", std::time::Duration::from_secs(20), || {
        logged(&repo, "clf").len() == 4
    });
    drop(server);
    assert!(in_store(&repo, "731953.25") && in_store(&repo, "4242.625"));

    // Bad conditions are usage errors naming the fix.
    let out = repo
        .kairo(&["models", "predictions", "erase", "clf", "--where", "customer_id", "--reason", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected FIELD = VALUE"));
    let out = repo
        .kairo(&["models", "predictions", "erase", "clf", "--where", "nobody = 1", "--reason", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no logged input is called `nobody`"));

    let erased = repo.json(&[
        "models",
        "predictions",
        "erase",
        "clf",
        "--where",
        "customer_id = 731953.25",
        "--reason",
        "request 17 of a data subject",
    ]);
    assert_eq!((erased["rows"].as_u64(), erased["segments"].as_u64()), (Some(3), Some(1)), "{erased}");
    let left = logged(&repo, "clf");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["request_id"], "other");
    repo.kairo(&["data", "gc"]).assert().success();
    assert!(!in_store(&repo, "731953.25"), "the erased value is gone from the store after gc");
    assert!(in_store(&repo, "4242.625"), "the other subject's row stays");

    // The audit trail: who, the field, the counts, the reason — not the value.
    let (server, url) = crate::spawn_listening(&repo, &["server", "--port", "0"]);
    let events: Value =
        reqwest::blocking::get(format!("{url}/api/v1/events?subject=deployment:clf")).unwrap().json().unwrap();
    drop(server);
    let erasure =
        events["events"].as_array().unwrap().iter().find(|e| e["kind"] == "predictions.erased").unwrap().clone();
    assert_eq!(erasure["actor"], "tester@test");
    assert_eq!(erasure["payload"]["field"], "customer_id");
    assert_eq!(erasure["payload"]["rows"], 3);
    assert_eq!(erasure["payload"]["reason"], "request 17 of a data subject");
    assert!(!erasure.to_string().contains("731953"), "{erasure}");

    // Retention: once the segments are older than 3 s, gc gives up their rows and their bytes.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let gc = repo.json(&["data", "gc"]);
    assert_eq!(gc["prediction_logs"][0]["model"], "clf", "{gc}");
    assert_eq!(gc["prediction_logs"][0]["rows"], 1, "{gc}");
    assert!(!in_store(&repo, "4242.625"), "rows past retention are gone from the store");
    assert!(logged(&repo, "clf").is_empty());
    // Monitoring still counts them: the window is merged from the sketches kept.
    let out = repo
        .kairo(&["monitor", "check", "--deployment", "clf", "--rows", "1", "--windows", "1", "--json"])
        .output()
        .unwrap();
    let check: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(check["windows"][0]["rows"], 1, "{check}");
}

/// Fairness as a promotion gate: `METRIC(COLUMN)` judged on the holdout's groups of a column
/// the model does not take (left out of its inputs), failing (exit 5) or passing by threshold;
/// a column the holdout lacks is named.
#[test]
fn fairness_gates_judge_the_holdout_by_group() {
    let repo = project();
    // The holdout: the 20 features, the label (f0 > 0), and a group that follows f0, so the
    // model's selection rate differs sharply between the groups.
    let mut g = crate::monitoring::Lcg(11);
    let x = crate::monitoring::features(&mut g, 400, 0, 0.0);
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label,group\n";
    for r in 0..400 {
        let row: Vec<String> = x[r * 20..(r + 1) * 20].iter().map(|v| format!("{v:.5}")).collect();
        let group = if x[r * 20] > 0.5 { "a" } else { "b" };
        csv.push_str(&format!("{},{},{group}\n", row.join(","), u8::from(x[r * 20] > 0.0)));
    }
    repo.write("holdout.csv", csv);
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    let with_gates = |gates: &str| {
        repo.write(
            "kairo.yaml",
            format!(
                "{config}models:\n  clf:\n    holdout: {{path: holdout.csv, target: label}}\n    gates: [{gates}]\n"
            ),
        );
    };
    assert!(register(&repo, "clf", &[], None).status.success());
    let promote = || {
        let out = repo.kairo(&["models", "promote", "clf", "1", "--json"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v, String::from_utf8_lossy(&out.stderr).to_string())
    };

    with_gates("\"demographic_parity_difference(group) <= 0.05\", \"disparate_impact_ratio(group) >= 0.95\"");
    let (code, v, err) = promote();
    assert_eq!(code, Some(5), "{v}{err}");
    let gates = v["gates"].as_array().unwrap();
    assert!(gates.iter().all(|g| g["passed"] == false && g["detail"].as_str().unwrap().contains("holdout")), "{v}");
    let dpd: f64 = gates[0]["detail"].as_str().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let dir: f64 = gates[1]["detail"].as_str().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(dpd > 0.05 && dpd <= 1.0 && dir < 0.95 && dir > 0.0, "the groups are treated differently: {dpd} {dir}");

    with_gates("\"equalized_odds_difference(nosuch) <= 1\"");
    let (code, v, _) = promote();
    assert_eq!(code, Some(5));
    assert!(v["gates"][0]["detail"].as_str().unwrap().contains("no column `nosuch`"), "{v}");

    with_gates("\"demographic_parity_difference(group) <= 1\", \"equal_opportunity_difference(group) <= 1\"");
    let (code, v, err) = promote();
    assert_eq!(code, Some(0), "{v}{err}");
}

/// Every prediction-log segment (Parquet) under the project's store.
fn segments(repo: &Repo) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if std::fs::read(&p).is_ok_and(|b| b.starts_with(b"PAR1") && kairo_watch::segment::read(&b).is_ok())
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo.join(".kairo/objects"), &mut out);
    out
}

/// The log is Parquet with a typed column per input element, which pandas reads without Kairo.
#[test]
fn pandas_reads_the_prediction_log_with_typed_columns() {
    let Some(python) = crate::server::python() else { return };
    let repo = project();
    assert!(register(&repo, "clf", &[], None).status.success());
    let rows = serve_and_log(&repo, "clf");
    assert_eq!(rows.len(), 3);
    let files = segments(&repo);
    assert!(!files.is_empty(), "no Parquet segment in the store");
    let script = r#"
import json, sys
import pandas as pd
df = pd.concat([pd.read_parquet(p) for p in sys.argv[1:]])
print(json.dumps({"rows": len(df), "types": {c: str(t) for c, t in df.dtypes.items()},
                  "first": sorted(float(v) for v in df["inputs.input[0]"])}))
"#;
    let out = std::process::Command::new(python).arg("-c").arg(script).args(&files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 3, "{v}");
    assert_eq!(v["types"]["inputs.input[0]"], "float32", "a FP32 input is FLOAT: {v}");
    assert_eq!(v["types"]["inputs.input[]"], "uint32", "{v}");
    assert_eq!(v["types"]["status"], "uint16", "{v}");
    assert!(["str", "object"].contains(&v["types"]["request_id"].as_str().unwrap_or("")), "text (pandas 3 or 2): {v}");
    assert_eq!(v["types"]["outputs.probabilities[1]"], "float32", "{v}");
    assert!(v["first"].as_array().unwrap().iter().all(|x| x.as_f64() == Some(f64::from(ID_MARKER))), "{v}");
}
