//! `kairo monitor check` on two files: per-column verdicts, method choice by sample size and
//! preset, dataset drift and its exit code, and bad input reported as findings.

use crate::Repo;
use serde_json::Value;

/// Deterministic uniform numbers in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal (sum of 12 uniforms − 6).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// `rows` rows of 6 numeric columns (x0..x5) and 2 categorical ones (color, tier); the first
/// `shifted` numeric columns are moved by `shift` standard deviations.
pub fn table(rows: usize, seed: u64, shifted: usize, shift: f64) -> String {
    let mut g = Lcg(seed);
    let mut out = String::from("x0,x1,x2,x3,x4,x5,color,tier\n");
    let colors = ["red", "green", "blue", "black"];
    for _ in 0..rows {
        let nums: Vec<String> =
            (0..6).map(|c| format!("{:.5}", g.normal() + if c < shifted { shift } else { 0.0 })).collect();
        let color = colors[(g.next() * 4.0) as usize];
        let tier = if g.next() < 0.3 { "gold" } else { "basic" };
        out.push_str(&format!("{},{color},{tier}\n", nums.join(",")));
    }
    out
}

fn check(repo: &Repo, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv", "--json"];
    all.extend_from_slice(args);
    let out = repo.kairo(&all).output().unwrap();
    let code = out.status.code().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (code, v)
}

fn column<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["columns"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn shifted_columns_drift_and_the_dataset_verdict_sets_the_exit_code() {
    let repo = Repo::bare();
    repo.write("ref.csv", table(600, 1, 0, 0.0));
    repo.write("cur.csv", table(500, 2, 2, 0.6));
    let (code, v) = check(&repo, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(column(&v, "x0")["method"], "ks");
    assert_eq!(column(&v, "x0")["drift"], true);
    assert_eq!(column(&v, "x1")["drift"], true);
    for c in ["x2", "x3", "x4", "x5", "color", "tier"] {
        assert_eq!(column(&v, c)["drift"], false, "{c}: {}", column(&v, c));
    }
    assert_eq!(column(&v, "color")["method"], "chi2");
    assert_eq!(column(&v, "tier")["method"], "z");
    assert_eq!(
        (v["drifted"].as_u64(), v["judged"].as_u64(), v["dataset_drift"].as_bool()),
        (Some(2), Some(8), Some(false))
    );
    // With a lower share the same result is dataset drift: exit 3 for CI.
    let (code, v) = check(&repo, &["--drift-share", "0.2"]);
    assert_eq!((code, v["dataset_drift"].as_bool()), (3, Some(true)));
    // Identical distributions: nothing drifts.
    repo.write("cur.csv", table(500, 3, 0, 0.0));
    let (code, v) = check(&repo, &[]);
    assert_eq!((code, v["drifted"].as_u64()), (0, Some(0)), "{v}");
}

#[test]
fn large_samples_use_distances_and_presets_decide_differently() {
    let repo = Repo::bare();
    repo.write("ref.csv", table(5000, 4, 0, 0.0));
    repo.write("cur.csv", table(3000, 5, 1, 0.5));
    let (_, v) = check(&repo, &[]);
    assert_eq!(column(&v, "x0")["method"], "wasserstein_norm");
    assert_eq!(column(&v, "x0")["drift"], true);
    assert_eq!(column(&v, "x1")["drift"], false);
    assert_eq!(column(&v, "color")["method"], "jensenshannon");
    // A small current window: Kairo tests (the smaller side decides), Evidently measures
    // distances (only the reference size counts).
    repo.write("cur.csv", table(300, 6, 1, 0.5));
    let (_, v) = check(&repo, &[]);
    assert_eq!(column(&v, "x0")["method"], "ks");
    assert_eq!(column(&v, "color")["method"], "chi2");
    let (_, v) = check(&repo, &["--preset", "evidently"]);
    assert_eq!(column(&v, "x0")["method"], "wasserstein_norm");
    assert_eq!(column(&v, "color")["method"], "jensenshannon");
    repo.write("ref.csv", table(800, 7, 0, 0.0));
    let (_, v) = check(&repo, &["--preset", "evidently"]);
    assert_eq!(column(&v, "color")["method"], "chisquare_gof");
    // Corrections only make test verdicts stricter.
    let (_, plain) = check(&repo, &[]);
    let (_, bonf) = check(&repo, &["--correction", "bonferroni"]);
    let (_, bh) = check(&repo, &["--correction", "bh"]);
    let n = |v: &Value| v["drifted"].as_u64().unwrap();
    assert!(n(&bonf) <= n(&bh) && n(&bh) <= n(&plain));
}

#[test]
fn bad_input_becomes_findings_never_a_crash() {
    let repo = Repo::bare();
    repo.write("ref.csv", "a,b,c,d,gone\n1,x,1,,1\n2,y,2,,2\n3,x,3,,3\n4,y,4,,4\n");
    // b changed type, c has infinities, d is all null, `gone` is missing, `new` was added.
    repo.write("cur.csv", "a,b,c,d,new\n1,1,inf,,9\n2,2,3,,9\n3,3,-inf,,9\n");
    let (code, v) = check(&repo, &[]);
    // Judged: a (no drift) and b (its type changed): half the columns, so dataset drift.
    assert_eq!((code, v["judged"].as_u64(), v["drifted"].as_u64()), (3, Some(2), Some(1)), "{v}");
    assert!(column(&v, "b")["findings"][0].as_str().unwrap().contains("type changed from text to numeric"));
    assert_eq!(column(&v, "b")["drift"], true);
    assert!(column(&v, "c")["findings"][0].as_str().unwrap().contains("2 infinite values"));
    assert!(column(&v, "d")["findings"].to_string().contains("insufficient data"));
    assert_eq!(column(&v, "d")["current_null_share"], 1.0);
    let schema = v["schema"].to_string();
    assert!(schema.contains("'gone' is missing") && schema.contains("'new' is new"), "{schema}");
    // A single row and an empty file.
    repo.write("cur.csv", "a,b,c,d,gone\n1,x,1,,1\n");
    let (_, v) = check(&repo, &[]);
    assert!(column(&v, "a")["findings"].to_string().contains("insufficient data"));
    repo.write("cur.csv", "a,b,c,d,gone\n");
    let (code, v) = check(&repo, &[]);
    assert_eq!((code, v["judged"].as_u64()), (0, Some(0)));
    // Unreadable input is an error naming the file.
    repo.write("cur.csv", "a,b\n1,2,3\n");
    let out = repo.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cur.csv: row 2") && err.contains("3 fields"), "{err}");
    repo.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "nope.csv"]).assert().code(1);
}

#[test]
fn the_html_report_is_self_contained_and_names_every_column() {
    let repo = Repo::bare();
    repo.write("ref.csv", table(400, 8, 0, 0.0));
    repo.write("cur.csv", table(400, 9, 6, 1.0));
    let out = repo
        .kairo(&["monitor", "report", "--reference", "ref.csv", "--current", "cur.csv", "--out", "r.html", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "six of eight columns drift: dataset drift");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drifted"], 6);
    let html = String::from_utf8(repo.read("r.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("Dataset drift"));
    for c in ["x0", "x5", "color", "tier"] {
        assert!(html.contains(&format!("id=\"c-{c}\"")), "{c}");
    }
    assert_eq!(html.matches("<svg").count(), 8);
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}
