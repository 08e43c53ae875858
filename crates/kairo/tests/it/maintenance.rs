use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::fs;

#[test]
fn gc_keeps_every_version_in_branch_history_and_removes_the_rest() {
    let repo = Repo::new();
    repo.write("data.csv", "v1");
    repo.kairo(&["data", "add", "data.csv"]).assert().success();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "v1"]);
    repo.write("data.csv", "v2 never committed");
    repo.kairo(&["data", "add", "data.csv"]).assert().success();
    repo.write("data.csv", "v3");
    repo.kairo(&["data", "add", "data.csv"]).assert().success();
    assert_eq!(repo.object_count(), 3);

    let dry = repo.json(&["data", "gc", "--dry-run"]);
    assert_eq!(dry["objects_removed"], 1);
    assert_eq!(repo.object_count(), 3, "dry run removes nothing");

    let r = repo.json(&["data", "gc"]);
    assert_eq!(r["objects_removed"], 1);
    assert_eq!(r["bytes_removed"], "v2 never committed".len());
    assert_eq!(repo.object_count(), 2);
    // v1 (in a commit) is still restorable.
    repo.git(&["checkout", "-q", "HEAD", "--", "data.csv.kairo"]);
    repo.kairo(&["data", "checkout"]).assert().success();
    assert_eq!(repo.read("data.csv"), b"v1");
    repo.kairo(&["data", "verify"]).assert().code(0);
}

#[test]
fn gc_keeps_whole_directory_trees() {
    let repo = Repo::new();
    make_tree(&repo, "data", 10);
    repo.kairo(&["data", "add", "data"]).assert().success();
    let before = repo.object_count();
    let r = repo.json(&["data", "gc"]);
    assert_eq!(r["objects_removed"], 0);
    assert_eq!(r["objects_kept"], before as u64);
}

#[test]
fn verify_detects_a_corrupted_object_and_reads_fail_loudly() {
    let repo = Repo::new();
    make_tree(&repo, "data", 5);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.kairo(&["data", "verify"]).assert().code(0).stdout(predicate::str::contains("store is consistent"));

    let h = blake3::hash(b"file 3\n").to_hex().to_string();
    repo.corrupt_in_store(b"file 3\n");

    let r = repo.json(&["data", "verify"]);
    assert_eq!(r["corrupt"], serde_json::json!([h]));
    repo.kairo(&["data", "verify"]).assert().code(4).stdout(predicate::str::contains("CORRUPT"));

    // Any read of the object fails and names it; the work tree copy is not replaced by garbage.
    fs::remove_dir_all(repo.join("data")).unwrap();
    repo.kairo(&["data", "checkout"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("object {h} is corrupted")));
    assert!(!repo.join("data/d3/f3.txt").exists());
}

#[test]
fn verify_reports_missing_objects() {
    let repo = Repo::new();
    repo.write("a.txt", "alpha");
    repo.kairo(&["data", "add", "a.txt"]).assert().success();
    fs::remove_dir_all(repo.join(".kairo/objects")).unwrap();
    let r = repo.json(&["data", "verify"]);
    assert_eq!(r["missing"][0][0], "a.txt");
    repo.kairo(&["data", "verify"]).assert().code(4).stdout(predicate::str::contains("kairo data pull a.txt"));
}

#[test]
fn gc_refuses_to_collect_past_a_corrupted_manifest() {
    let repo = Repo::new();
    make_tree(&repo, "data", 6);
    repo.kairo(&["data", "add", "data"]).assert().success();
    let before = repo.object_count();
    // The directory manifest of data/d2 names f2.txt; damage it.
    repo.corrupt_in_store(br#""name":"f2.txt""#);
    repo.kairo(&["data", "gc"]).assert().code(1).stderr(predicate::str::contains("gc stopped, nothing removed"));
    assert_eq!(repo.object_count(), before, "nothing was collected");
}
