//! `kairo demo`, the README's first command, runs to the end: the closed loop from an alert
//! to a resolved incident; and `kairo demo --tour`, the walk through the parts (data
//! versioning, pipeline, models: gate, canary, serving, rollback).

use assert_cmd::Command;

fn demo(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kairo")
        .unwrap()
        .arg("demo")
        .args(args)
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .env("KAIRO_ACTOR", "demo@test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_demo_closes_the_loop() {
    let stdout = demo(&[]);
    for expected in [
        "ALERT drift_share > 0.4",
        "incident 1 opened for churn",
        "triggered -> retraining  exported 300 labelled production rows to data/train.csv",
        "registering -> evaluating  registered churn version 2",
        "waiting for 0 of 200 labelled production rows",
        "-> rolling_out",
        "canary: version 2 takes 50%",
        "rolling_out -> verifying  version 2 serves all traffic",
        "verifying -> resolved  resolved: monitor churn-watch quiet for 1 window(s)",
        "incident 1: resolved (automation churn-retrain, model churn)",
        "$ kairo kpi --since 1d",
        "deployment frequency",
        "time to restore",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
    assert!(stdout.trim_end().ends_with("the whole story is on record"), "{stdout}");
}

#[test]
fn the_tour_runs_to_the_end() {
    let stdout = demo(&["--tour"]);
    assert!(stdout.contains("promoted: 'champion' now points at version 2"), "{stdout}");
    assert!(stdout.contains("\"arm\":\"canary\""), "{stdout}");
    assert!(stdout.trim_end().ends_with("# demo finished"));
}
