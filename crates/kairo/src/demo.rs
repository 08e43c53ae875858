//! `kairo demo`: a scripted walk through the product on generated data, run with this very
//! binary so the output is exactly what a user would see: data versioning, then a pipeline with
//! runs, the run cache, run comparison, lineage and reproduction. Later capabilities extend it.

use crate::{CmdResult, Failure};
use kairo_core::exit;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub async fn run(dir: Option<PathBuf>) -> CmdResult {
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
    println!("# demo finished");
    Ok(exit::OK)
}

struct Demo<'a> {
    root: &'a Path,
    exe: &'a Path,
}

impl Demo<'_> {
    fn step(&self, why: &str, args: &[&str], expect: i32) -> Result<(), Failure> {
        println!("# {why}\n$ kairo {}", args.join(" "));
        let out = Command::new(self.exe).args(args).current_dir(self.root).output()?;
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
    fn json(&self, args: &[&str]) -> Result<serde_json::Value, Failure> {
        let out = Command::new(self.exe).args(args).current_dir(self.root).output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn git(&self, args: &[&str]) -> Result<(), Failure> {
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
