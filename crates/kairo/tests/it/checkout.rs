use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn checkout_restores_deleted_and_edited_data() {
    let repo = Repo::new();
    make_tree(&repo, "data", 12);
    repo.write("data/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(repo.join("data/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    repo.kairo(&["data", "add", "data"]).assert().success();
    let original = repo.read("data/d2/f6.txt");

    fs::remove_dir_all(repo.join("data")).unwrap();
    let r = &repo.json(&["data", "checkout"])[0];
    assert_eq!(r["written"], 13);
    assert_eq!(repo.read("data/d2/f6.txt"), original);
    assert_ne!(fs::metadata(repo.join("data/run.sh")).unwrap().permissions().mode() & 0o111, 0, "exec bit restored");
    repo.kairo(&["data", "status"]).assert().code(0);

    // Checked-out files are copies: editing one cannot reach the store.
    assert_eq!(fs::metadata(repo.join("data/d2/f6.txt")).unwrap().nlink(), 1);
    fs::OpenOptions::new().append(true).open(repo.join("data/d2/f6.txt")).unwrap().write_all(b"edit").unwrap();
    repo.kairo(&["data", "verify"]).assert().code(0);
    repo.kairo(&["data", "status"]).assert().code(3);
    repo.kairo(&["data", "checkout", "--force"]).assert().success();

    // Unchanged files are left alone, extra files whose content is stored are removed.
    repo.write("data/d0/f0.txt", "file 1\n"); // same content as data/d1/f1.txt: stored
    let r = &repo.json(&["data", "checkout", "data"])[0];
    assert_eq!(r["written"], 1);
    assert_eq!(r["unchanged"], 12);
    assert_eq!(repo.read("data/d0/f0.txt"), b"file 0\n");
}

#[test]
fn checkout_refuses_to_discard_unsaved_work_unless_forced() {
    let repo = Repo::new();
    make_tree(&repo, "data", 4);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.write("data/d0/f0.txt", "precious edit");
    repo.write("data/notes.txt", "unsaved notes");

    repo.kairo(&["data", "checkout"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("data/d0/f0.txt").and(predicate::str::contains("data/notes.txt")))
        .stderr(predicate::str::contains("--force"));
    // Nothing was touched.
    assert_eq!(repo.read("data/d0/f0.txt"), b"precious edit");
    assert_eq!(repo.read("data/notes.txt"), b"unsaved notes");

    repo.kairo(&["data", "checkout", "--force"]).assert().success();
    assert_eq!(repo.read("data/d0/f0.txt"), b"file 0\n");
    assert!(!repo.join("data/notes.txt").exists());
    repo.kairo(&["data", "status"]).assert().code(0);
}

#[test]
fn checkout_switches_versions_with_git() {
    let repo = Repo::new();
    make_tree(&repo, "data", 6);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "v1"]);

    fs::remove_dir_all(repo.join("data/d1")).unwrap();
    repo.write("data/d9/new.txt", "v2 only");
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.git(&["commit", "-qam", "v2"]);

    repo.git(&["checkout", "-q", "HEAD~1"]);
    repo.kairo(&["data", "checkout"]).assert().success();
    assert!(repo.join("data/d1/f1.txt").exists());
    assert!(!repo.join("data/d9").exists(), "directories not in the version are removed");
    repo.kairo(&["data", "status"]).assert().code(0);

    repo.git(&["checkout", "-q", "-"]);
    repo.kairo(&["data", "checkout"]).assert().success();
    assert_eq!(repo.read("data/d9/new.txt"), b"v2 only");
    assert!(!repo.join("data/d1").exists());
}

#[test]
fn checkout_of_a_version_not_in_the_store_says_pull() {
    let repo = Repo::new();
    repo.write("a.bin", "alpha");
    repo.kairo(&["data", "add", "a.bin"]).assert().success();
    fs::remove_dir_all(repo.join(".kairo/objects")).unwrap();
    fs::remove_file(repo.join("a.bin")).unwrap();
    repo.kairo(&["data", "checkout"]).assert().code(1).stderr(predicate::str::contains("kairo data pull a.bin"));
}
