//! Snapshots of the human output of the main commands, as a user reads it in a terminal:
//! stdout, stderr and the exit code of each step of a session, with ids, hashes, times, paths
//! and durations redacted (`crate::snapshot_settings`). A change to what a command prints
//! fails here until the snapshot under `snapshots/` is updated and reviewed (README, "Tests").

use crate::serving::fixture;
use crate::{Repo, Transcript};

/// Copy a fixture model into the repository, so commands name it by a relative path.
fn model(repo: &Repo, name: &str) -> String {
    let rel = format!("models/{name}");
    repo.write(&rel, std::fs::read(fixture(name)).unwrap());
    rel
}

#[test]
fn init_and_data_versioning() {
    let repo = Repo::bare();
    let mut t = Transcript::new(&repo);
    t.note("outside a project");
    assert_eq!(t.kairo(&["status"]), 1);
    t.note("not a git repository: initialised, with a warning");
    assert_eq!(t.kairo(&["init"]), 0);
    repo.git(&["init", "-q"]);
    t.note("again, inside git");
    assert_eq!(t.kairo(&["init"]), 0);

    crate::make_tree(&repo, "ds", 6);
    assert_eq!(t.kairo(&["data", "add", "ds"]), 0);
    assert_eq!(t.kairo(&["data", "status"]), 0);
    repo.write("ds/d0/f0.txt", "changed\n");
    repo.write("ds/new.txt", "new\n");
    std::fs::remove_file(repo.join("ds/d1/f1.txt")).unwrap();
    assert_eq!(t.kairo(&["data", "status"]), 3);
    assert_eq!(t.kairo(&["data", "diff", "ds"]), 0);
    assert_eq!(t.kairo(&["data", "add", "ds"]), 0);
    assert_eq!(t.kairo(&["data", "log", "ds"]), 0);
    std::fs::remove_dir_all(repo.join("ds")).unwrap();
    assert_eq!(t.kairo(&["data", "status"]), 3);
    assert_eq!(t.kairo(&["data", "checkout"]), 0);
    assert_eq!(t.kairo(&["data", "verify"]), 0);
    t.note("a path that does not exist");
    assert_eq!(t.kairo(&["data", "add", "nope"]), 1);

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("init_and_data", t.text);
}

#[test]
fn pipeline_run_cached_rerun_runs_and_reproduce() {
    let repo = crate::pipeline::pipeline_repo(crate::pipeline::TWO_STAGES);
    // `runs show` names the branch: not whatever `init.defaultBranch` says on this machine.
    repo.git(&["branch", "-M", "main"]);
    let mut t = Transcript::new(&repo);
    assert_eq!(t.kairo(&["status"]), 3);
    assert_eq!(t.kairo(&["run"]), 0);
    t.note("nothing changed");
    assert_eq!(t.kairo(&["run"]), 0);
    assert_eq!(t.kairo(&["status"]), 0);
    repo.write("params.yaml", "train:\n  lr: 0.2\n");
    t.note("a param changed");
    assert_eq!(t.kairo(&["status"]), 3);
    assert_eq!(t.kairo(&["run"]), 0);
    repo.write("params.yaml", "train:\n  lr: 0.1\n");
    t.note("back to the old value: restored from the run cache");
    assert_eq!(t.kairo(&["run"]), 0);
    assert_eq!(t.kairo(&["runs", "ls"]), 0);

    let runs = repo.json(&["runs", "ls"]);
    let id = |i: usize| runs[i]["id"].as_str().unwrap().to_string();
    let (first_train, second_train) = (id(1), id(0));
    assert_eq!(runs[1]["stage"], "train");
    assert_eq!(t.kairo(&["runs", "show", &first_train]), 0);
    assert_eq!(t.kairo(&["runs", "diff", &first_train, &second_train]), 0);
    assert_eq!(t.kairo(&["reproduce", &first_train]), 0);
    assert_eq!(t.kairo(&["lineage", "model.txt"]), 0);
    // Every run id starts with `0` (UUID v7, until the year 2527).
    t.note("errors: an id prefix that matches several runs, an unknown run");
    assert_eq!(t.kairo(&["runs", "show", "0"]), 1);
    assert_eq!(t.kairo(&["runs", "show", "ffffffff"]), 1);

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("pipeline", t.text);
}

#[test]
fn models_promotion_and_deployment() {
    let repo = Repo::new();
    let logreg = model(&repo, "logreg20.onnx");
    let forest = model(&repo, "forest20.onnx");
    repo.write(
        "kairo.yaml",
        "version: 1\nmodels:\n  clf:\n    gates: [\"auc >= 0.9\", \"size_mb <= 5\"]\n    approval: required\n",
    );
    let mut t = Transcript::new(&repo);
    assert_eq!(t.kairo(&["models", "register", "clf", "--file", &logreg, "--metric", "auc=0.95"]), 0);
    assert_eq!(t.kairo(&["models", "register", "clf", "--file", &forest, "--metric", "auc=0.5"]), 0);
    assert_eq!(t.kairo(&["models", "register", "other", "--file", &logreg]), 0);
    assert_eq!(t.kairo(&["models", "ls"]), 0);
    t.note("gates pass, approval required: pending");
    assert_eq!(t.kairo(&["models", "promote", "clf", "1"]), 6);
    t.note("a failed gate");
    assert_eq!(t.kairo(&["models", "promote", "clf", "2"]), 5);
    t.note("four eyes: the requester cannot approve");
    assert_eq!(t.kairo(&["models", "promote", "clf", "1", "--approve"]), 1);
    t.note("approved by another approver: passed");
    assert_eq!(t.kairo_as("approver@test", &["models", "promote", "clf", "1", "--approve", "--reason", "reviewed"]), 0);
    assert_eq!(t.kairo(&["models", "show", "clf"]), 0);
    assert_eq!(t.kairo(&["models", "show", "clf@champion"]), 0);

    assert_eq!(t.kairo(&["deploy", "clf"]), 0);
    assert_eq!(t.kairo(&["deploy", "clf", "--version", "1"]), 0);
    assert_eq!(t.kairo(&["deploy", "clf", "--version", "2", "--strategy", "canary", "--weight", "10"]), 0);
    assert_eq!(t.kairo(&["deploy", "clf"]), 0);
    assert_eq!(t.kairo(&["models", "ls"]), 0);
    assert_eq!(t.kairo(&["rollback", "clf"]), 0);
    assert_eq!(t.kairo(&["deploy", "clf"]), 0);

    t.note("errors: unknown model, unknown version, a first deploy that is not direct, a missing file");
    assert_eq!(t.kairo(&["models", "show", "nope"]), 1);
    assert_eq!(t.kairo(&["models", "show", "clf:9"]), 1);
    assert_eq!(t.kairo(&["models", "promote", "nope", "1"]), 1);
    assert_eq!(t.kairo(&["deploy", "other", "--version", "1", "--strategy", "canary"]), 1);
    assert_eq!(t.kairo(&["models", "register", "x", "--file", "missing.onnx"]), 1);

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("models", t.text);
}

#[test]
fn monitor_check_report() {
    let repo = Repo::bare();
    repo.write("ref.csv", crate::monitor::table(600, 1, 0, 0.0));
    repo.write("cur.csv", crate::monitor::table(500, 2, 2, 0.6));
    let mut t = Transcript::new(&repo);
    assert_eq!(t.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv"]), 0);
    t.note("a lower share: the same result is dataset drift");
    let code = t.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv", "--drift-share", "0.2"]);
    assert_eq!(code, 3);
    t.note("findings instead of a crash: a type change, infinities, all nulls, schema changes");
    repo.write("ref.csv", "a,b,c,d,gone\n1,x,1,,1\n2,y,2,,2\n3,x,3,,3\n4,y,4,,4\n");
    repo.write("cur.csv", "a,b,c,d,new\n1,1,inf,,9\n2,2,3,,9\n3,3,-inf,,9\n");
    assert_eq!(t.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv"]), 3);
    t.note("errors: a malformed row, a missing file");
    repo.write("cur.csv", "a,b\n1,2,3\n");
    assert_eq!(t.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "cur.csv"]), 1);
    assert_eq!(t.kairo(&["monitor", "check", "--reference", "ref.csv", "--current", "nope.csv"]), 1);

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("monitor_check", t.text);
}

#[test]
fn configuration_errors_name_the_place_and_the_fix() {
    let repo = Repo::new();
    let mut t = Transcript::new(&repo);
    let case = |t: &mut Transcript, config: &str, args: &[&str]| {
        repo.write("kairo.yaml", config);
        t.note(&format!("kairo.yaml: {config:?}"));
        t.kairo(args)
    };
    assert_eq!(case(&mut t, "version: 1\nstages:\n  a:\n    cmd: echo\n    depz: [x]\n", &["status"]), 1);
    assert_eq!(case(&mut t, "version: 1\nmodelz: {}\n", &["models", "ls"]), 1);
    assert_eq!(case(&mut t, "version: 1\nmodels: [\n", &["models", "promote", "clf", "1"]), 1);
    assert_eq!(case(&mut t, "version: 2\n", &["status"]), 1);
    let missing_dep = "version: 1\nstages:\n  a:\n    cmd: echo\n    deps: [nope.txt]\n    outs: [o]\n";
    assert_eq!(case(&mut t, missing_dep, &["run"]), 1);
    let cycle = "version: 1\nstages:\n  a:\n    cmd: cp b a\n    deps: [b]\n    outs: [a]\n  b:\n    cmd: cp a b\n    deps: [a]\n    outs: [b]\n";
    assert_eq!(case(&mut t, cycle, &["run"]), 1);
    repo.write("m.onnx", std::fs::read(fixture("logreg20.onnx")).unwrap());
    repo.kairo(&["models", "register", "clf", "--file", "m.onnx"]).assert().success();
    assert_eq!(
        case(&mut t, "version: 1\nmodels:\n  clf:\n    gates: [\"auc >> 1\"]\n", &["models", "promote", "clf", "1"]),
        1
    );
    t.note("usage errors");
    assert_eq!(t.kairo(&["deploy", "clf", "--version", "1", "--strategy", "sideways"]), 2);
    assert_eq!(t.kairo(&["frobnicate"]), 2);

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("config_errors", t.text);
}

/// The walk-through (`kairo demo --tour`), whole: the data, pipeline, registry, serving and
/// monitoring steps as a new user sees them.
#[test]
fn demo_summary() {
    let repo = Repo::bare();
    let mut cmd = assert_cmd::Command::cargo_bin("kairo").unwrap();
    let out = cmd
        .args(["demo", "--tour", "--dir"])
        .arg(repo.join("demo"))
        .env("KAIRO_ACTOR", "demo@test")
        .env_remove("CI")
        .output()
        .unwrap();
    let mut t = Transcript::new(&repo);
    assert_eq!(t.record("kairo demo --tour --dir [TMP]/demo", &out), 0, "{}", t.text);
    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("demo", t.text);
}
