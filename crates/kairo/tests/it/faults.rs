use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::fs;
use std::time::{Duration, Instant};

/// A new, empty database on the PostgreSQL server at `base` (through psql).
pub fn fresh_postgres_database(base: &str) -> String {
    let name =
        format!("kairo_cli_{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let out =
        std::process::Command::new("psql").args([base, "-qc", &format!("CREATE DATABASE {name}")]).output().unwrap();
    assert!(out.status.success(), "create database: {}", String::from_utf8_lossy(&out.stderr));
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

#[test]
fn bad_paths_are_clear_errors_that_change_nothing() {
    let repo = Repo::new();
    repo.kairo(&["data", "add", "nope.csv"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope.csv: no such file or directory"));
    let outside = tempfile::NamedTempFile::new().unwrap();
    repo.kairo(&["data", "add", outside.path().to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("outside the project"));
    repo.kairo(&["data", "add", ".kairo/objects"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("inside Kairo's own store"));
    repo.kairo(&["data", "add", "."]).assert().code(1).stderr(predicate::str::contains("project root"));
    repo.kairo(&["data", "status", "untracked"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("kairo data add untracked"));
    repo.kairo(&["data", "frobnicate"]).assert().code(2);
    assert_eq!(repo.object_count(), 0);
}

#[test]
fn unreadable_file_fails_naming_it_and_leaves_nothing_half_written() {
    let repo = Repo::new();
    make_tree(&repo, "data", 10);
    if rustix_is_root() {
        // Root reads any mode, so use a file the kernel refuses to read: /proc/self/mem at offset 0.
        std::os::unix::fs::symlink("/proc/self/mem", repo.join("data/d0/unreadable")).unwrap();
    } else {
        repo.write("data/d0/unreadable", "secret");
        fs::set_permissions(repo.join("data/d0/unreadable"), std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
    }
    // (--follow-symlinks: the /proc link leaves the project, which is refused by default.)
    repo.kairo(&["data", "add", "--follow-symlinks", "data"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("data/d0/unreadable"));
    assert!(!repo.join("data.kairo").exists(), "no pointer for a failed add");
    repo.kairo(&["data", "verify"]).assert().code(0);
}

fn rustix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn symlink_loop_is_named() {
    let repo = Repo::new();
    make_tree(&repo, "data", 2);
    std::os::unix::fs::symlink("..", repo.join("data/d0/up")).unwrap();
    repo.kairo(&["data", "add", "data"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("data/d0/up").and(predicate::str::contains("symlink cycle")));
    std::fs::remove_file(repo.join("data/d0/up")).unwrap();
    std::os::unix::fs::symlink("self", repo.join("data/self")).unwrap();
    repo.kairo(&["data", "add", "data"]).assert().code(1).stderr(predicate::str::contains("data/self"));
    // Two links pointing at each other: a cycle too, with or without --follow-symlinks.
    std::fs::remove_file(repo.join("data/self")).unwrap();
    std::os::unix::fs::symlink("b", repo.join("data/a")).unwrap();
    std::os::unix::fs::symlink("a", repo.join("data/b")).unwrap();
    for extra in [&[][..], &["--follow-symlinks"]] {
        let mut args = vec!["data", "add"];
        args.extend_from_slice(extra);
        args.push("data");
        repo.kairo(&args).assert().code(1).stderr(predicate::str::contains("symlink cycle"));
    }
    assert!(!repo.join("data.kairo").exists());
}

#[test]
fn symlinks_leaving_the_project_or_into_the_store_are_refused() {
    let repo = Repo::new();
    make_tree(&repo, "data", 3);
    // A link into .kairo/ is refused even when following links out of the project.
    std::os::unix::fs::symlink(repo.join(".kairo"), repo.join("data/d1/store")).unwrap();
    for extra in [&[][..], &["--follow-symlinks"]] {
        let mut args = vec!["data", "add"];
        args.extend_from_slice(extra);
        args.push("data");
        repo.kairo(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("data/d1/store").and(predicate::str::contains("Kairo's own store")));
    }
    std::fs::remove_file(repo.join("data/d1/store")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside the project\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), repo.join("data/d0/secret")).unwrap();
    repo.kairo(&["data", "add", "data"]).assert().code(1).stderr(
        predicate::str::contains("data/d0/secret")
            .and(predicate::str::contains("outside the project"))
            .and(predicate::str::contains("--follow-symlinks")),
    );
    assert!(!repo.join("data.kairo").exists(), "nothing recorded");
    assert_eq!(repo.object_count(), 0, "nothing stored");
    // The path itself may be the link.
    std::os::unix::fs::symlink("/etc/passwd", repo.join("passwd")).unwrap();
    repo.kairo(&["data", "add", "passwd"]).assert().code(1).stderr(predicate::str::contains("outside the project"));

    // Links that stay inside the project work as before; --follow-symlinks stores the outside
    // file's content.
    repo.write("shared/labels.csv", "a,b\n1,2\n");
    std::os::unix::fs::symlink("../../shared/labels.csv", repo.join("data/d2/labels.csv")).unwrap();
    repo.kairo(&["data", "add", "--follow-symlinks", "data"]).assert().success();
    std::fs::remove_dir_all(repo.join("data")).unwrap();
    repo.kairo(&["data", "checkout"]).assert().success();
    assert_eq!(std::fs::read_to_string(repo.join("data/d0/secret")).unwrap(), "outside the project\n");
    assert_eq!(std::fs::read_to_string(repo.join("data/d2/labels.csv")).unwrap(), "a,b\n1,2\n");
    std::fs::remove_file(repo.join("data/d0/secret")).unwrap();
    repo.kairo(&["data", "add", "data"]).assert().success();
}

#[test]
fn corrupted_pointer_file_is_named_with_the_fix() {
    let repo = Repo::new();
    repo.write("a.csv", "x");
    repo.kairo(&["data", "add", "a.csv"]).assert().success();
    repo.write("a.csv.kairo", "format: kairo-pointer/1\nhash: [oops\n");
    for cmd in [&["data", "status"][..], &["data", "checkout"], &["data", "diff", "a.csv"]] {
        repo.kairo(cmd)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("pointer file").and(predicate::str::contains("a.csv.kairo")));
    }
    assert_eq!(repo.read("a.csv"), b"x", "the data itself is untouched");
}

#[test]
fn kill_9_during_add_leaves_the_store_consistent() {
    let repo = Repo::new();
    // Large enough to be loose objects (each staged as a temp file), and many of them.
    let chunk = vec![0u8; 512 << 10];
    for i in 0..600 {
        let mut c = chunk.clone();
        c[..8].copy_from_slice(&(i as u64).to_le_bytes());
        repo.write(&format!("data/s{}/f{i}.bin", i % 16), c);
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["data", "add", "data"])
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", "tester@test")
        .spawn()
        .unwrap();
    let tmp = repo.join(".kairo/tmp");
    let started = Instant::now();
    while fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "the add must be killed mid-way, not finish");
    assert!(!repo.join("data.kairo").exists());

    repo.kairo(&["data", "verify"]).assert().code(0);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.kairo(&["data", "verify"]).assert().code(0).stdout(predicate::str::contains("store is consistent"));
    repo.kairo(&["data", "status"]).assert().code(0);
    fs::remove_dir_all(repo.join("data")).unwrap();
    repo.kairo(&["data", "checkout"]).assert().success();
    repo.kairo(&["data", "status"]).assert().code(0);
}

#[test]
fn concurrent_adds_on_one_store_both_succeed() {
    let repo = Repo::new();
    for i in 0..300 {
        // Overlapping content: the two datasets share half their files.
        repo.write(&format!("a/f{i}"), format!("shared {i}"));
        repo.write(&format!("b/f{i}"), if i % 2 == 0 { format!("shared {i}") } else { format!("b only {i}") });
    }
    let spawn = |path: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
            .args(["data", "add", path])
            .current_dir(repo.path())
            .output()
    };
    let (ra, rb, rc) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("a"));
        let b = s.spawn(|| spawn("b"));
        let c = s.spawn(|| spawn("a"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap(), c.join().unwrap().unwrap())
    });
    for out in [&ra, &rb, &rc] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    repo.kairo(&["data", "verify"]).assert().code(0);
    repo.kairo(&["data", "status"]).assert().code(0);
    let ignore = String::from_utf8(repo.read(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "/a") && ignore.lines().any(|l| l == "/b"), "{ignore}");
    // 300 + 150 distinct files and two root manifests.
    assert_eq!(repo.object_count(), 452);
}
