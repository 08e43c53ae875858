//! `kairo demo`: a scripted walk through the product on generated data, run with this very
//! binary so the output is exactly what a user would see. Later capabilities extend the script.

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
