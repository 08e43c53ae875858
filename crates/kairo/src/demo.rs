//! `kairo demo`: the closed loop on generated data, run with this very binary so the output is
//! exactly what a user would see (`demo_loop.rs`). `kairo demo --tour` is the earlier walk
//! through the parts: data versioning, then a pipeline with runs, the run cache, run
//! comparison, lineage and reproduction; then models: registration, a promotion gate, a
//! canary, serving and rollback.

use crate::{CmdResult, Failure};
use kairo_core::exit;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub async fn run(dir: Option<PathBuf>, tour: bool) -> CmdResult {
    if !tour {
        return crate::demo_loop::run(dir).await;
    }
    let scratch;
    let root = match dir {
        Some(d) => {
            fs::create_dir_all(&d)?;
            d
        }
        None => {
            scratch = tempfile::Builder::new().prefix("kairo-demo-").tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()?;
    let demo = Demo { root: &root, exe: &exe };
    println!("# Kairo demo in {}\n", root.display());

    demo.git(&["init", "-q"])?;
    demo.git(&["config", "user.email", "demo@kairo.invalid"])?;
    demo.git(&["config", "user.name", "Kairo Demo"])?;
    demo.step("a git repository becomes a Kairo project", &["init"], exit::OK)?;

    generate_sample_data(&root.join("data"))?;
    println!("# generated sample data: data/train.csv, data/test.csv and 200 feature shards\n");
    demo.step(
        "track the dataset: contents go to the store, data.kairo goes to git",
        &["data", "add", "data"],
        exit::OK,
    )?;
    demo.git(&["add", "data.kairo", ".gitignore", "kairo.yaml"])?;
    demo.git(&["commit", "-q", "-m", "Track sample data"])?;
    demo.step("nothing changed since it was recorded", &["data", "status"], exit::OK)?;

    fs::write(root.join("data/test.csv"), "id,x1,x2,label\n1,0.5,0.25,1\n")?;
    fs::write(root.join("data/shards/new.bin"), b"a new shard")?;
    demo.step("edit one file and add another: status says what changed (exit 3)", &["data", "status"], exit::CHANGED)?;
    demo.step("file by file", &["data", "diff", "data"], exit::OK)?;
    demo.step("record the new version (only the two new files are read)", &["data", "add", "data"], exit::OK)?;
    demo.git(&["commit", "-q", "-am", "Update test split"])?;
    demo.step("both versions, with the commits that recorded them", &["data", "log", "data"], exit::OK)?;
    demo.step("what changed between the two commits", &["data", "diff", "data", "HEAD~1", "HEAD"], exit::OK)?;

    fs::remove_dir_all(root.join("data"))?;
    demo.step("the data is deleted by accident", &["data", "status"], exit::CHANGED)?;
    demo.step("restore it from the store", &["data", "checkout"], exit::OK)?;
    demo.step("back as recorded", &["data", "status"], exit::OK)?;
    demo.step("every object re-hashed and every version complete", &["data", "verify"], exit::OK)?;

    write_pipeline(&root)?;
    demo.git(&["add", "-A"])?;
    demo.git(&["commit", "-q", "-m", "Add a training pipeline"])?;
    println!("# a two-stage pipeline (prepare -> train) is added to kairo.yaml, with params.yaml\n");
    demo.step("what would run, and why (exit 3: something is stale)", &["status"], exit::CHANGED)?;
    demo.step("run it: each stage execution is recorded as a run", &["run"], exit::OK)?;
    demo.step("nothing changed, nothing runs", &["run"], exit::OK)?;
    fs::write(root.join("params.yaml"), "train:\n  threshold: 0.7\n")?;
    demo.step("a param changed: only the stage that reads it is stale", &["status"], exit::CHANGED)?;
    demo.step("rerun it", &["run"], exit::OK)?;
    fs::write(root.join("params.yaml"), "train:\n  threshold: 0.85\n")?;
    demo.step("back to the old value: outputs come from the run cache, nothing executes", &["run"], exit::OK)?;
    demo.step("the recorded runs", &["runs", "ls"], exit::OK)?;
    let runs = demo.json(&["runs", "ls", "--stage", "train", "--json"])?;
    let ids: Vec<String> = runs
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    if let [newest, older, ..] = ids.as_slice() {
        demo.step("what differs between the two training runs", &["runs", "diff", older, newest], exit::OK)?;
        demo.step("where the model came from", &["lineage", "model.txt"], exit::OK)?;
        demo.step(
            "re-execute the first training run from its commit, data and params",
            &["reproduce", older],
            exit::OK,
        )?;
    }
    models(&demo)?;
    println!("# demo finished");
    Ok(exit::OK)
}

/// Two versions of a classifier (scikit-learn, exported to ONNX with skl2onnx; the samples in
/// `fixtures/models`), registered, gated, deployed as a canary, served and rolled back.
fn models(demo: &Demo) -> Result<(), Failure> {
    let dir = demo.root.join("models");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("logreg.onnx"), include_bytes!("../../../fixtures/models/logreg20.onnx"))?;
    fs::write(dir.join("forest.onnx"), include_bytes!("../../../fixtures/models/forest20.onnx"))?;
    let mut train = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label\n";
    for row in churn_rows(2000, 0.0, 1).chunks(20) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
        train.push_str(&format!("{},{}\n", cells.join(","), u8::from(row[0] + row[1] > 0.0)));
    }
    fs::write(dir.join("train.csv"), train)?;
    let config = fs::read_to_string(demo.root.join("kairo.yaml"))?;
    fs::write(
        demo.root.join("kairo.yaml"),
        format!(
            "{config}models:\n  churn:\n    gates: [\"auc >= 0.85\", \"size_mb <= 5\"]\n\
             monitors:\n  churn-drift:\n    deployment: churn\n    rows: 250\n    alerts:\n      \
             - when: drift_share > 0.3\n        action: retrain\n"
        ),
    )?;
    println!(
        "# two ONNX models of a churn classifier, a promotion gate (auc >= 0.85) and a drift monitor in kairo.yaml\n"
    );
    demo.step(
        "register version 1 with its training data: it must load in the serving runtime, and the data is profiled",
        &[
            "models",
            "register",
            "churn",
            "--file",
            "models/logreg.onnx",
            "--metric",
            "auc=0.81",
            "--profile-data",
            "models/train.csv",
            "--target",
            "label",
        ],
        exit::OK,
    )?;
    demo.step(
        "register version 2",
        &["models", "register", "churn", "--file", "models/forest.onnx", "--metric", "auc=0.93"],
        exit::OK,
    )?;
    demo.step("version 1 fails the gate (exit 5)", &["models", "promote", "churn", "1"], exit::GATE_FAILED)?;
    demo.step("version 2 passes and becomes champion", &["models", "promote", "churn", "2"], exit::OK)?;
    demo.step("deploy version 1 to serve 100%", &["deploy", "churn", "--version", "1"], exit::OK)?;
    demo.step(
        "roll version 2 out as a canary on half of the traffic",
        &["deploy", "churn", "--version", "2", "--strategy", "canary", "--weight", "50"],
        exit::OK,
    )?;
    println!("# serve it: kairo serve churn (Open Inference Protocol and MLflow /invocations)");
    let mut child = Command::new(demo.exe)
        .args(["serve", "churn", "--port", "0", "--threads", "1", "--poll-ms", "200", "--log-flush-s", "1"])
        .current_dir(demo.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = serve_requests(demo, &mut child);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result?;
    demo.step("every answer is in the prediction log", &["models", "predictions", "churn", "--limit", "4"], exit::OK)?;
    demo.step(
        "production data drifted: the monitor compares the log with the training profile and alerts (exit 3)",
        &["monitor", "check", "--monitor", "churn-drift"],
        exit::CHANGED,
    )?;
    demo.step(
        "retrain without Python: gradient boosting to ONNX, tested on 20% of the rows held out",
        &[
            "train",
            "--data",
            "data/train.csv",
            "--target",
            "label",
            "--algo",
            "gbdt",
            "--out",
            "models/gbdt.onnx",
            "--metrics",
            "models/gbdt-metrics.json",
        ],
        exit::OK,
    )?;
    demo.step(
        "the trained model registers (and serves) like any other",
        &["models", "register", "threshold-gbdt", "--file", "models/gbdt.onnx"],
        exit::OK,
    )?;
    Ok(())
}

/// `rows` × 20 roughly normal features, the first ten moved by `shift`.
fn churn_rows(rows: usize, shift: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..rows * 20)
        .map(|i| (0..12).map(|_| uniform()).sum::<f64>() - 6.0 + if i % 20 < 10 { shift } else { 0.0 })
        .collect()
}

fn serve_requests(demo: &Demo, child: &mut std::process::Child) -> Result<(), Failure> {
    use std::io::{BufRead, BufReader};
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Failure { code: exit::ERROR, message: "no output from kairo serve".into() })?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    print!("{line}");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|w| w.trim_end_matches(':').to_string())
        .ok_or_else(|| Failure { code: exit::ERROR, message: format!("kairo serve did not start: {line}") })?;
    let body = format!(
        "{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,20],\"datatype\":\"FP32\",\"data\":[{}]}}]}}",
        vec!["0.5"; 20].join(",")
    );
    for i in 0..4 {
        let key = format!("customer-{i}");
        let body = body.replace("]}]}", &format!("]}}],\"parameters\":{{\"routing_key\":\"{key}\"}}}}"));
        let answer = post(&addr, "/v2/models/churn/infer", &body)?;
        println!("POST /v2/models/churn/infer ({key}) -> {answer}");
    }
    println!();
    demo.step("roll the canary back: version 1 serves everything again", &["rollback", "churn"], exit::OK)?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let csv_body = format!(
        "{{\"dataframe_split\":{{\"columns\":[{}],\"data\":[[{}]]}}}}",
        (0..20).map(|i| format!("\"f{i}\"")).collect::<Vec<_>>().join(","),
        vec!["0.5"; 20].join(",")
    );
    println!("POST /invocations -> {}\n", post(&addr, "/invocations", &csv_body)?);
    let shifted: Vec<String> = churn_rows(300, 2.0, 2).iter().map(|v| format!("{v:.4}")).collect();
    let batch = format!(
        "{{\"inputs\":[{{\"name\":\"input\",\"shape\":[300,20],\"datatype\":\"FP32\",\"data\":[{}]}}]}}",
        shifted.join(",")
    );
    let answer = post(&addr, "/v2/models/churn/infer", &batch)?;
    println!("POST /v2/models/churn/infer (300 customers whose behaviour changed) -> {} bytes\n", answer.len());
    Ok(())
}

/// A minimal HTTP/1.1 POST over loopback (the demo has no HTTP client dependency).
pub(crate) fn post(addr: &str, path: &str, body: &str) -> Result<String, Failure> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

pub(crate) struct Demo<'a> {
    pub root: &'a Path,
    pub exe: &'a Path,
}

impl Demo<'_> {
    pub fn step(&self, why: &str, args: &[&str], expect: i32) -> Result<(), Failure> {
        if !why.is_empty() {
            println!("# {why}");
        }
        println!("$ kairo {}", args.join(" "));
        let out = self.kairo().args(args).output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!();
        let code = out.status.code().unwrap_or(-1);
        if code != expect {
            return Err(Failure {
                code: exit::ERROR,
                message: format!("demo step `kairo {}` exited {code}, expected {expect}", args.join(" ")),
            });
        }
        Ok(())
    }

    /// Run a step quietly and parse its JSON output.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value, Failure> {
        let out = self.kairo().args(args).output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// This very binary, in the demo project, with its directory first on PATH (so pipeline
    /// stages that run `kairo train` run this kairo).
    pub fn kairo(&self) -> Command {
        let mut c = Command::new(self.exe);
        c.current_dir(self.root);
        if let Some(dir) = self.exe.parent() {
            let rest = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![dir.to_path_buf()];
            paths.extend(std::env::split_paths(&rest));
            if let Ok(joined) = std::env::join_paths(paths) {
                c.env("PATH", joined);
            }
        }
        c
    }

    pub fn git(&self, args: &[&str]) -> Result<(), Failure> {
        let out = Command::new("git").args(args).current_dir(self.root).output()?;
        if !out.status.success() {
            return Err(Failure {
                code: exit::ERROR,
                message: format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(())
    }
}

/// Stages that turn the tracked data into features and a (threshold) model with metrics.
fn write_pipeline(root: &Path) -> std::io::Result<()> {
    let config = fs::read_to_string(root.join("kairo.yaml"))?;
    let stages = r#"
stages:
  prepare:
    cmd: mkdir -p features && awk -F, 'NR > 1 { print $2 + 0.5 * $3 "," $4 }' data/train.csv > features/train.csv
    deps: [data]
    outs: [features]
  train:
    cmd: sh train.sh
    deps: [train.sh, features]
    params: [train.threshold]
    outs: [model.txt]
    metrics: [metrics.json]
"#;
    fs::write(root.join("kairo.yaml"), format!("{config}{stages}"))?;
    fs::write(root.join("params.yaml"), "train:\n  threshold: 0.85\n")?;
    let train = r#"t=$(awk '/threshold:/ { print $2 }' params.yaml)
awk -F, -v t="$t" '{ n++; if (($1 > t) == $2) ok++ } END { printf "{\"accuracy\": %.4f, \"rows\": %d}\n", ok / n, n }' features/train.csv > metrics.json
echo "threshold model: predict 1 when x1 + 0.5 * x2 > $t" > model.txt
cat metrics.json
"#;
    fs::write(root.join("train.sh"), train)
}

/// A small, deterministic tabular dataset and some binary shards.
fn generate_sample_data(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir.join("shards"))?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for (name, rows) in [("train.csv", 5000), ("test.csv", 1000)] {
        let mut text = String::from("id,x1,x2,label\n");
        for i in 0..rows {
            let (x1, x2) = (next(), next());
            let label = u8::from(x1 + 0.5 * x2 + 0.2 * next() > 0.85);
            text.push_str(&format!("{i},{x1:.6},{x2:.6},{label}\n"));
        }
        fs::write(dir.join(name), text)?;
    }
    for i in 0..200 {
        let bytes: Vec<u8> = (0..2048).map(|_| (next() * 256.0) as u8).collect();
        fs::write(dir.join("shards").join(format!("part-{i:04}.bin")), bytes)?;
    }
    Ok(())
}
