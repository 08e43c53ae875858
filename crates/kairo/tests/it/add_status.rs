use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::fs;

#[test]
fn init_creates_store_config_and_ignores_store() {
    let repo = Repo::new();
    assert!(repo.join(".kairo").is_dir());
    assert!(repo.join("kairo.yaml").is_file());
    assert!(String::from_utf8(repo.read(".gitignore")).unwrap().lines().any(|l| l == "/.kairo/"));
    // Idempotent.
    repo.kairo(&["init"]).assert().success().stdout(predicate::str::contains("Reinitialized"));
    assert_eq!(String::from_utf8(repo.read(".gitignore")).unwrap().matches("/.kairo/").count(), 1);
}

#[test]
fn init_outside_git_warns_but_works() {
    let repo = Repo::bare();
    repo.kairo(&["init"])
        .assert()
        .success()
        .stderr(predicate::str::contains("not in a git repository").and(predicate::str::contains("code versions")));
    repo.write("a.csv", "x\n1\n");
    repo.kairo(&["data", "add", "a.csv"]).assert().success();
    repo.kairo(&["data", "status"]).assert().code(0);
}

#[test]
fn commands_outside_a_project_say_how_to_start() {
    let repo = Repo::bare();
    repo.kairo(&["data", "status"]).assert().code(1).stderr(predicate::str::contains("kairo init"));
}

#[test]
fn add_file_writes_pointer_gitignore_and_object() {
    let repo = Repo::new();
    repo.write("data/train.csv", "a,b\n1,2\n");
    let out = repo.json(&["data", "add", "data/train.csv"]);
    let r = &out[0];
    assert_eq!(r["path"], "data/train.csv");
    assert_eq!(r["type"], "file");
    assert_eq!(r["size"], 8);
    assert_eq!(r["hash"], blake3::hash(b"a,b\n1,2\n").to_hex().as_str());
    assert_eq!(r["objects_stored"], 1);

    let pointer = String::from_utf8(repo.read("data/train.csv.kairo")).unwrap();
    assert!(pointer.contains("path: train.csv") && pointer.contains("type: file"), "{pointer}");
    assert!(pointer.len() < 400, "pointer files are small");
    assert!(String::from_utf8(repo.read("data/.gitignore")).unwrap().lines().any(|l| l == "/train.csv"));
    // git sees the pointer, not the data.
    let status = repo.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.contains("data/train.csv.kairo") && !status.contains("data/train.csv\n"), "{status}");
    assert_eq!(repo.object_count(), 1);
}

#[test]
fn add_directory_builds_a_merkle_tree_and_dedupes() {
    let repo = Repo::new();
    make_tree(&repo, "data", 40);
    repo.write("data/d0/same1.txt", "dup");
    repo.write("data/d1/same2.txt", "dup");
    let r = &repo.json(&["data", "add", "data"])[0];
    assert_eq!(r["type"], "dir");
    assert_eq!(r["files"], 42);
    // 41 distinct contents + root manifest + 4 directory manifests.
    assert_eq!(r["objects_stored"], 41 + 1 + 4);
    assert_eq!(repo.object_count(), 46);

    // Same content under another name is stored once across datasets.
    fs::create_dir_all(repo.join("copy")).unwrap();
    fs::copy(repo.join("data/d0/f0.txt"), repo.join("copy/f0.txt")).unwrap();
    let r = &repo.json(&["data", "add", "copy"])[0];
    assert_eq!(r["objects_stored"], 1, "only the new manifest is stored");
}

#[test]
fn stat_cache_and_merkle_tree_limit_work_to_what_changed() {
    let repo = Repo::new();
    for i in 0..30 {
        repo.write(&format!("data/a/b/c/f{i}"), format!("{i}"));
        repo.write(&format!("data/x/g{i}"), format!("x{i}"));
    }
    // Files written within a clock tick of being recorded are "racy" and re-read next time
    // (see kairo-store's stat_cache); let them age past that window first.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let first = &repo.json(&["data", "add", "data"])[0];
    assert_eq!(first["files_hashed"], 60);

    // Nothing changed: no file is read and nothing is stored.
    let again = &repo.json(&["data", "add", "data"])[0];
    assert_eq!(again["files_hashed"], 0);
    assert_eq!(again["objects_stored"], 0);
    assert_eq!(again["changed"], false);

    // One deep file changed: that file is read, and only it and its parents' manifests
    // (c, b, a, root) are new; data/x's manifest is reused.
    repo.write("data/a/b/c/f7", "changed");
    let third = &repo.json(&["data", "add", "data"])[0];
    assert_eq!(third["files_hashed"], 1);
    assert_eq!(third["objects_stored"], 1 + 4);
    assert_ne!(third["hash"], first["hash"]);
}

#[test]
fn same_size_rewrite_right_after_add_is_still_detected() {
    let repo = Repo::new();
    repo.write("d.csv", "a,1\n");
    repo.kairo(&["data", "add", "d.csv"]).assert().success();
    // Same size, possibly within the same timestamp tick as the first write.
    repo.write("d.csv", "b,2\n");
    repo.kairo(&["data", "status"]).assert().code(3);
    let r = &repo.json(&["data", "add", "d.csv"])[0];
    assert_eq!(r["hash"], blake3::hash(b"b,2\n").to_hex().as_str());
}

#[test]
fn status_reports_unchanged_modified_missing_with_exit_codes() {
    let repo = Repo::new();
    make_tree(&repo, "data", 8);
    repo.write("model.bin", "weights");
    repo.kairo(&["data", "add", "data", "model.bin"]).assert().success();
    repo.kairo(&["data", "status"]).assert().code(0).stdout(predicate::str::contains("data: unchanged"));

    repo.write("data/d0/f0.txt", "edited");
    repo.write("data/new.txt", "new");
    fs::remove_file(repo.join("data/d1/f1.txt")).unwrap();
    fs::remove_file(repo.join("model.bin")).unwrap();
    repo.kairo(&["data", "status"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("data: modified (1 added, 1 removed, 1 changed)"))
        .stdout(predicate::str::contains("model.bin: missing"));

    let json = repo.json(&["data", "status"]);
    let data = json.as_array().unwrap().iter().find(|s| s["path"] == "data").unwrap();
    assert_eq!(
        (data["state"].as_str(), data["added"].as_u64(), data["removed"].as_u64(), data["changed"].as_u64()),
        (Some("modified"), Some(1), Some(1), Some(1))
    );
    let model = json.as_array().unwrap().iter().find(|s| s["path"] == "model.bin").unwrap();
    assert_eq!(model["state"], "missing");

    // Status of one path only, addressed through its pointer file or from a subdirectory.
    repo.kairo(&["data", "status", "data.kairo"]).assert().code(3).stdout(predicate::str::contains("model.bin").not());
    repo.kairo(&["data", "status", "../model.bin"]).current_dir(repo.join("data")).assert().code(3);
}

#[test]
fn nested_tracking_is_refused() {
    let repo = Repo::new();
    make_tree(&repo, "data", 4);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.kairo(&["data", "add", "data/d0/f0.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tracked by data.kairo"));
}

/// The files under `.kairo/status/`: the snapshots `data status` answers "unchanged" from.
fn snapshots(repo: &Repo) -> usize {
    fs::read_dir(repo.join(".kairo/status")).map(|d| d.filter(|e| e.is_ok()).count()).unwrap_or(0)
}

/// Re-add `data` once its files are old enough to be trusted (not racy), so that it has a
/// snapshot again.
fn settle(repo: &Repo) {
    std::thread::sleep(std::time::Duration::from_millis(60));
    repo.kairo(&["data", "add", "data"]).assert().success();
    assert_eq!(snapshots(repo), 1, "add of settled files writes the status snapshot");
    repo.kairo(&["data", "status"]).assert().code(0).stdout(predicate::str::contains("data: unchanged"));
}

#[test]
fn status_snapshot_is_trusted_only_while_every_stat_matches() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    make_tree(&repo, "data", 12);
    settle(&repo);

    // Same size, same mtime put back: the ctime still tells.
    let f = repo.join("data/d1/f5.txt");
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    repo.write("data/d1/f5.txt", "FILE 5\n");
    fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), mtime);
    repo.kairo(&["data", "status"]).assert().code(3).stdout(predicate::str::contains("1 changed"));
    settle(&repo);

    // A mode change (the tree records the executable bit).
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    repo.kairo(&["data", "status"]).assert().code(3);
    settle(&repo);

    // An empty file added to a directory, a rename within one, a new empty directory.
    repo.write("data/d2/empty", "");
    repo.kairo(&["data", "status"]).assert().code(3).stdout(predicate::str::contains("1 added"));
    settle(&repo);
    fs::rename(repo.join("data/d3/f3.txt"), repo.join("data/d3/g3.txt")).unwrap();
    repo.kairo(&["data", "status"]).assert().code(3);
    settle(&repo);
    fs::create_dir(repo.join("data/d0/sub")).unwrap();
    repo.kairo(&["data", "status"]).assert().code(3);
    settle(&repo);

    // A damaged snapshot is not trusted: the scan answers, and writes a good one.
    let snapshot = fs::read_dir(repo.join(".kairo/status")).unwrap().next().unwrap().unwrap().path();
    fs::write(&snapshot, b"KAIRO-STATUS-1\n\xff\xff").unwrap();
    repo.kairo(&["data", "status"]).assert().code(0);
    assert!(fs::read(&snapshot).unwrap().len() > 500, "the scan rewrote the snapshot");
    repo.write("data/d1/f1.txt", "changed again\n");
    repo.kairo(&["data", "status"]).assert().code(3);
}
