//! `kairo demo`: the closed loop, end to end, on generated data and with no Python.
//!
//! A churn model is trained on January's customers and served. In March, customers behave
//! differently (usage drops, and it is usage that now predicts churn); their labels come back
//! through `POST /v1/feedback`. The monitor sees the drift and raises an alert that says
//! `action: retrain`; the automation exports the labelled March rows as a new dataset version,
//! retrains, registers the challenger, waits for fresh labels, judges challenger against
//! champion on the same newest rows with a paired bootstrap, promotes, rolls out as a canary
//! under the rollout guard, and resolves the incident once the monitor is quiet. Each
//! `kairo automations tick` here is what `kairo server` does on its own every few seconds.
//! Seeded: the same run prints the same decisions.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use kairo_core::exit;

use crate::demo::{post, Demo};
use crate::{CmdResult, Failure};

/// Customers: `tenure, spend, support_calls, usage_hours` and whether they churned.
/// January: churn follows support calls and short tenure. March: customers call support more
/// and use the product less, and churn follows low usage.
fn customers(month: Month, n: usize, seed: u64) -> Vec<([f64; 4], u8)> {
    let mut rng = kairo_core::splitmix::SplitMix64::new(seed);
    let mut u = move || rng.unit();
    (0..n)
        .map(|_| {
            let tenure = (u() * 60.0).floor();
            let spend = 20.0 + u() * 80.0;
            let (calls, usage, churn) = match month {
                Month::January => {
                    let calls = (u() * u() * 8.0).floor();
                    let usage = 20.0 + u() * 30.0;
                    (calls, usage, calls * 0.6 - tenure * 0.04 + u() * 1.2 > 1.2)
                }
                Month::March => {
                    // More calls to support, less use: two of the four features move.
                    let calls = (u() * 7.0).floor();
                    let usage = u() * 40.0;
                    (calls, usage, usage < 14.0 + u() * 6.0)
                }
            };
            ([tenure, (spend * 100.0).round() / 100.0, calls, (usage * 10.0).round() / 10.0], u8::from(churn))
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Month {
    January,
    March,
}

const COLUMNS: [&str; 4] = ["tenure", "spend", "support_calls", "usage_hours"];

fn csv(rows: &[([f64; 4], u8)]) -> String {
    let mut text = format!("{},churned\n", COLUMNS.join(","));
    for (x, y) in rows {
        text.push_str(&format!("{},{},{},{},{y}\n", x[0], x[1], x[2], x[3]));
    }
    text
}

const CONFIG: &str = r#"
stages:
  train:
    cmd: kairo train --data data/train.csv --target churned --drop request_id,row,time,version --algo gbdt --seed 7 --out model.onnx --metrics metrics.json
    deps: [data/train.csv]
    outs: [model.onnx]
    metrics: [metrics.json]
models:
  churn:
    rollout: {min_requests: 20, window_s: 2, max_error_rate: 0.05, max_p99_ms: 2000}
monitors:
  churn-watch:
    deployment: churn
    rows: 200
    alerts:
      - when: drift_share > 0.4
        action: retrain
automations:
  churn-retrain:
    model: churn
    on:
      - alert: {monitor: churn-watch}
    retrain:
      export: {to: data/train.csv, since: 30d}
      stages: [train]
      artifact: model.onnx
    register: {profile_data: data/train.csv, target: churned}
    evaluate:
      data: [recent_labels]
      min_labels: 200
      metric: auc
      test: paired_bootstrap
      confidence: 0.95
    promote: {to: champion}
    rollout: {strategy: canary, weight: 50}
    verify: {monitor: churn-watch, quiet_windows: 1}
    guard: {cooldown: 1h, max_per_day: 3}
"#;

pub async fn run(dir: Option<PathBuf>) -> CmdResult {
    let scratch;
    let root = match dir {
        Some(d) => {
            fs::create_dir_all(&d)?;
            d
        }
        None => {
            scratch = tempfile::Builder::new().prefix("kairo-loop-demo-").tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()?;
    let demo = Demo { root: &root, exe: &exe };
    println!("# Kairo demo: the closed loop, in {}", root.display());
    println!("# (kairo demo --tour walks through the parts one by one)\n");
    demo.git(&["init", "-q"])?;
    demo.git(&["config", "user.email", "demo@kairo.invalid"])?;
    demo.git(&["config", "user.name", "Kairo Demo"])?;
    demo.step("a git repository becomes a Kairo project", &["init"], exit::OK)?;
    fs::create_dir_all(root.join("data"))?;
    fs::write(root.join("data/train.csv"), csv(&customers(Month::January, 2000, 1)))?;
    let config = fs::read_to_string(root.join("kairo.yaml"))?;
    fs::write(root.join("kairo.yaml"), format!("{config}{CONFIG}"))?;
    println!("# kairo.yaml: a training stage, a drift monitor, and an automation that closes the loop:");
    for line in CONFIG.lines().skip_while(|l| !l.starts_with("automations:")) {
        println!("#   {line}");
    }
    println!();
    demo.step("January's 2000 customers become a dataset version", &["data", "add", "data/train.csv"], exit::OK)?;
    demo.git(&["add", "-A"])?;
    demo.git(&["commit", "-q", "-m", "January data, pipeline, monitor and automation"])?;
    demo.step("train version 1 with the built-in trainer (no Python)", &["run"], exit::OK)?;
    demo.step(
        "register it with its training data's profile, make it champion, deploy it",
        &[
            "models",
            "register",
            "churn",
            "--file",
            "model.onnx",
            "--profile-data",
            "data/train.csv",
            "--target",
            "churned",
        ],
        exit::OK,
    )?;
    demo.step("", &["models", "promote", "churn", "1"], exit::OK)?;
    demo.step("", &["deploy", "churn", "--version", "1"], exit::OK)?;

    println!("# serve it: kairo serve churn (its rollout guard watches every canary)");
    let mut server = demo
        .kairo()
        .args(["serve", "churn", "--port", "0", "--threads", "1", "--poll-ms", "200", "--log-flush-s", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = with_server(&demo, &mut server);
    let _ = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    result?;
    demo.step(
        "what it was worth, from the ledger: lead time, time to restore, automation",
        &["kpi", "--since", "1d"],
        exit::OK,
    )?;
    println!("# demo finished: one alert, no commands typed after it, and the whole story is on record");
    Ok(exit::OK)
}

fn with_server(demo: &Demo, server: &mut Child) -> Result<(), Failure> {
    let stdout = server.stdout.take().ok_or_else(|| fail("no output from kairo serve"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|w| w.trim_end_matches(':').trim_end_matches('/').to_string())
        .ok_or_else(|| fail(format!("kairo serve did not start: {line}")))?;
    println!("{}", line.trim_end());
    let march = customers(Month::March, 1800, 3);
    let mut sent = 0;

    let n = traffic(&addr, &march[sent..sent + 300], "mar-a", 20)?;
    sent += 300;
    println!("# March: {n} customers scored, their churn labels returned through POST /v1/feedback\n");
    settle();
    demo.step(
        "the monitor compares March with the training profile and raises an alert with action: retrain (exit 3)",
        &["monitor", "check", "--monitor", "churn-watch"],
        exit::CHANGED,
    )?;
    demo.step(
        "the loop takes the alert: incident opened, labelled March rows exported as a dataset version, \
         version 2 retrained on them and registered; it then waits for labels newer than the alert",
        &["automations", "tick"],
        exit::OK,
    )?;

    let n = traffic(&addr, &march[sent..sent + 400], "mar-b", 20)?;
    sent += 400;
    println!("# more March traffic: {n} rows, labels returned\n");
    settle();
    demo.step(
        "challenger against champion on the same fresh rows (paired bootstrap), then promotion and a canary",
        &["automations", "tick"],
        exit::OK,
    )?;

    let n = traffic(&addr, &march[sent..sent + 300], "mar-c", 1)?;
    sent += 300;
    println!("# {n} requests: half go to the canary; the rollout guard of kairo serve judges it\n");
    std::thread::sleep(Duration::from_millis(3500));
    // The guard completes a healthy canary on a request after its window: send a few until it
    // has (a busy machine may need more than one round), at most 30 s.
    let mut more = 0;
    let started = std::time::Instant::now();
    loop {
        more += traffic(&addr, &march[sent..sent + 20], "mar-d", 1)?;
        sent += 20;
        std::thread::sleep(Duration::from_millis(300));
        let d = demo.json(&["deploy", "churn", "--json"])?;
        if d["candidate"].is_null() || started.elapsed() > Duration::from_secs(30) || sent + 20 > march.len() - 300 {
            break;
        }
    }
    println!("# {more} more requests after the canary window\n");
    demo.step("the canary took 100%: verify with the monitor", &["automations", "tick"], exit::OK)?;

    let n = traffic(&addr, &march[sent..sent + 300], "mar-e", 20)?;
    sent += 300;
    println!("# {n} rows served by version 2\n");
    settle();
    settle();
    // Verification needs a monitor window wholly after the rollout. On a busy machine the last
    // flush can lag, or a flush can mix the rows before and after the rollout so that the newest
    // 200-row window still reaches back past it: tick again (at most 10), serving more rows of
    // version 2 before each retry while there are any.
    for attempt in 0..10 {
        let why = if attempt == 0 { "the monitor is quiet against version 2's profile: resolved" } else { "" };
        demo.step(why, &["automations", "tick"], exit::OK)?;
        if demo.json(&["incidents", "show", "1", "--json"])?["state"] != "verifying" {
            break;
        }
        if sent + 100 <= march.len() {
            traffic(&addr, &march[sent..sent + 100], &format!("mar-f{attempt}"), 20)?;
            sent += 100;
        }
        settle();
    }
    demo.step("what happened, step by step, with the evidence", &["incidents", "show", "1"], exit::OK)?;
    demo.step("the champion now", &["models", "show", "churn@champion"], exit::OK)?;
    Ok(())
}

/// Let the server write its prediction log (it flushes every second).
fn settle() {
    std::thread::sleep(Duration::from_millis(1600));
}

/// Score `rows` in requests of `batch` rows through /invocations, then send their labels.
fn traffic(addr: &str, rows: &[([f64; 4], u8)], prefix: &str, batch: usize) -> Result<usize, Failure> {
    let mut feedback = Vec::new();
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let id = format!("{prefix}-{i:04}");
        let body = format!(
            "{{\"id\":\"{id}\",\"inputs\":[{}]}}",
            COLUMNS
                .iter()
                .enumerate()
                .map(|(c, name)| format!(
                    "{{\"name\":\"{name}\",\"shape\":[{},1],\"datatype\":\"FP32\",\"data\":[{}]}}",
                    chunk.len(),
                    chunk.iter().map(|(x, _)| x[c].to_string()).collect::<Vec<_>>().join(",")
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let answer = post(addr, "/v2/models/churn/infer", &body)?;
        if !answer.contains("\"outputs\"") {
            return Err(fail(format!("kairo serve refused a request: {answer}")));
        }
        let labels: Vec<String> = chunk.iter().map(|(_, y)| y.to_string()).collect();
        feedback.push(format!("{{\"request_id\":\"{id}\",\"labels\":[{}]}}", labels.join(",")));
    }
    let answer = post(addr, "/v1/feedback", &format!("[{}]", feedback.join(",")))?;
    if answer.contains("error") {
        return Err(fail(format!("feedback refused: {answer}")));
    }
    Ok(rows.len())
}

fn fail(message: impl Into<String>) -> Failure {
    Failure { code: exit::ERROR, message: message.into() }
}
