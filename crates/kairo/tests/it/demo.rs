//! `kairo demo`, the README's first command, runs to the end: every step exits as the script
//! expects (data versioning, pipeline, models: gate, canary, serving, rollback).

use assert_cmd::Command;

#[test]
fn the_demo_runs_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kairo")
        .unwrap()
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .env("KAIRO_ACTOR", "demo@test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("promoted: 'champion' now points at version 2"), "{stdout}");
    assert!(stdout.contains("\"arm\":\"canary\""), "{stdout}");
    assert!(stdout.trim_end().ends_with("# demo finished"));
}
