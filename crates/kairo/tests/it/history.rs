use crate::{make_tree, Repo};
use predicates::prelude::*;

#[test]
fn log_lists_committed_and_uncommitted_versions_newest_first() {
    let repo = Repo::new();
    make_tree(&repo, "data", 4);
    let v1 = repo.json(&["data", "add", "data"])[0]["hash"].as_str().unwrap().to_string();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "first version"]);
    repo.write("data/d0/f0.txt", "second");
    let v2 = repo.json(&["data", "add", "data"])[0]["hash"].as_str().unwrap().to_string();
    repo.git(&["commit", "-qam", "second version"]);
    repo.write("data/d0/f0.txt", "third");
    let v3 = repo.json(&["data", "add", "data"])[0]["hash"].as_str().unwrap().to_string();

    let log = repo.json(&["data", "log", "data"]);
    let hashes: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["hash"].as_str().unwrap()).collect();
    assert_eq!(hashes, vec![v3.as_str(), v2.as_str(), v1.as_str()]);
    assert!(log[0]["commit"].is_null(), "v3 is not committed yet");
    assert_eq!(log[0]["author"], "tester@test");
    assert_eq!(log[1]["message"], "second version");
    assert_eq!(log[1]["author"], "Tester <tester@kairo.invalid>");
    assert_eq!(log[2]["commit"].as_str().unwrap().len(), 40);

    repo.kairo(&["data", "log", "data"]).assert().success().stdout(predicate::str::contains("first version"));
    repo.kairo(&["data", "log", "nothing"]).assert().code(1).stderr(predicate::str::contains("not tracked"));
}

#[test]
fn diff_between_workspace_hashes_and_git_revisions() {
    let repo = Repo::new();
    make_tree(&repo, "data", 6);
    let v1 = repo.json(&["data", "add", "data"])[0]["hash"].as_str().unwrap().to_string();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "v1"]);
    repo.write("data/d0/f0.txt", "changed");
    repo.write("data/extra/e.txt", "new");
    std::fs::remove_file(repo.join("data/d1/f1.txt")).unwrap();

    // Recorded → work tree.
    let d = repo.json(&["data", "diff", "data"]);
    assert_eq!(d["added"], serde_json::json!(["extra/e.txt"]));
    assert_eq!(d["removed"], serde_json::json!(["d1/f1.txt"]));
    assert_eq!(d["modified"], serde_json::json!(["d0/f0.txt"]));

    let v2 = repo.json(&["data", "add", "data"])[0]["hash"].as_str().unwrap().to_string();
    repo.git(&["commit", "-qam", "v2"]);
    // By hash prefix, by git revision: the same answer.
    let by_hash = repo.json(&["data", "diff", "data", &v1[..10], &v2[..10]]);
    let by_rev = repo.json(&["data", "diff", "data", "HEAD~1", "HEAD"]);
    for d in [&by_hash, &by_rev] {
        assert_eq!(d["added"], serde_json::json!(["extra/e.txt"]));
        assert_eq!(d["removed"], serde_json::json!(["d1/f1.txt"]));
        assert_eq!(d["modified"], serde_json::json!(["d0/f0.txt"]));
    }
    assert_eq!(by_rev["from"]["hash"], v1.as_str());
    repo.kairo(&["data", "diff", "data", "nosuchrev"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no version matches"));
    repo.kairo(&["data", "diff", "data"]).assert().success().stdout(predicate::str::contains("no differences"));
}
