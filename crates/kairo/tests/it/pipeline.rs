//! Pipelines end to end: `kairo run`, `status`, `runs`, `reproduce`, `lineage`.

use crate::Repo;
use serde_json::Value;
use std::time::{Duration, Instant};

pub const TWO_STAGES: &str = "
stages:
  prepare:
    cmd: mkdir -p data && sort raw.txt > data/clean.txt && echo prepared
    deps: [raw.txt]
    outs: [data/clean.txt]
  train:
    cmd: sh train.sh
    deps: [train.sh, data/clean.txt]
    params: [train.lr]
    outs: [model.txt]
    metrics: [metrics.json]
";

const TRAIN_SH: &str = r#"lr=$(sed -n 's/ *lr: *//p' params.yaml)
n=$(wc -l < data/clean.txt)
echo "model lr=$lr n=$n" > model.txt
printf '{"acc": %s, "rows": %s}\n' "$lr" "$n" > metrics.json
echo "trained with lr=$lr"
"#;

pub fn pipeline_repo(stages: &str) -> Repo {
    let repo = Repo::new();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", format!("{config}{stages}"));
    repo.write("raw.txt", "b\na\nc\n");
    repo.write("train.sh", TRAIN_SH);
    repo.write("params.yaml", "train:\n  lr: 0.1\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "pipeline"]);
    repo
}

fn actions(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| (o["stage"].as_str().unwrap().to_string(), o["action"].as_str().unwrap().to_string()))
        .collect()
}

fn reasons(v: &Value, stage: &str) -> Vec<String> {
    let o = v.as_array().unwrap().iter().find(|o| o["stage"] == stage).unwrap();
    o["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn runs_stale_stages_explains_why_and_restores_from_the_run_cache() {
    let repo = pipeline_repo(TWO_STAGES);
    let status = repo.json(&["status"]);
    assert_eq!(actions(&status), [pair("prepare", "would_run"), pair("train", "would_run")]);
    assert_eq!(reasons(&status, "prepare"), ["never run"]);
    repo.kairo(&["status"]).assert().code(3);

    let out = repo.kairo(&["run"]).assert().success().get_output().stdout.clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("prepared") && out.contains("trained with lr=0.1"), "command output is streamed: {out}");
    assert_eq!(repo.read("model.txt"), b"model lr=0.1 n=3\n");
    assert_eq!(actions(&repo.json(&["status"])), [pair("prepare", "up_to_date"), pair("train", "up_to_date")]);
    repo.kairo(&["status"]).assert().code(0);
    let lock = String::from_utf8(repo.read("kairo.lock")).unwrap();
    assert!(
        lock.contains("schema: kairo-lock/1") && lock.contains("train.lr: 0.1") && lock.contains("path: model.txt"),
        "{lock}"
    );
    let ignored = String::from_utf8(repo.read(".gitignore")).unwrap();
    assert!(ignored.contains("/model.txt") && ignored.contains("/metrics.json"), "{ignored}");

    // A param change reruns only the stage that reads it, and says so.
    repo.write("params.yaml", "train:\n  lr: 0.2\n");
    let dry = repo.json(&["run", "--dry-run"]);
    assert_eq!(actions(&dry), [pair("prepare", "up_to_date"), pair("train", "would_run")]);
    assert_eq!(reasons(&dry, "train"), ["param `train.lr` changed (0.1 -> 0.2)"]);
    let ran = repo.json(&["run"]);
    assert_eq!(actions(&ran), [pair("prepare", "up_to_date"), pair("train", "ran")]);
    assert_eq!(repo.read("model.txt"), b"model lr=0.2 n=3\n");
    let runs_before = repo.json(&["runs", "ls"]).as_array().unwrap().len();

    // Back to the old value: outputs come from the run cache, nothing executes.
    repo.write("params.yaml", "train:\n  lr: 0.1\n");
    let restored = repo.json(&["run"]);
    assert_eq!(restored[1]["action"], "restored", "{restored}");
    assert_eq!(repo.read("model.txt"), b"model lr=0.1 n=3\n");
    assert_eq!(repo.json(&["runs", "ls"]).as_array().unwrap().len(), runs_before, "a restore is not an execution");

    // Every kind of reason.
    repo.write("raw.txt", "b\na\nc\nd\n");
    repo.write("model.txt", "tampered\n");
    let dry = repo.json(&["status"]);
    assert_eq!(reasons(&dry, "prepare"), ["dep `raw.txt` changed"]);
    let train = reasons(&dry, "train");
    assert!(train.contains(&"output `model.txt` modified".to_string()), "{train:?}");
    assert!(train.contains(&"upstream stage `prepare` will run".to_string()), "{train:?}");
    std::fs::remove_file(repo.join("metrics.json")).unwrap();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", config.replace("cmd: sh train.sh", "cmd: sh ./train.sh"));
    let train = reasons(&repo.json(&["status", "train"]), "train");
    assert!(
        train.contains(&"cmd changed".to_string()) && train.contains(&"output `metrics.json` missing".to_string()),
        "{train:?}"
    );
    repo.kairo(&["run"]).assert().success();
    assert_eq!(repo.read("model.txt"), b"model lr=0.1 n=4\n");

    // --force reruns what is up to date; unknown stages are named.
    let forced = repo.json(&["run", "--force", "prepare"]);
    assert_eq!(forced[0]["action"], "ran");
    assert_eq!(forced[0]["reasons"][0], "forced");
    repo.kairo(&["run", "nope"]).assert().code(1).stderr(predicates::str::contains("no stage named `nope`"));
}

#[test]
fn pipeline_mistakes_point_at_the_line() {
    let repo = Repo::new();
    let base = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    let lines_before = base.lines().count();
    let set = |stages: &str| repo.write("kairo.yaml", format!("{base}{stages}"));
    let err = |args: &[&str]| String::from_utf8(repo.kairo(args).assert().code(1).get_output().stderr.clone()).unwrap();

    set("stages:\n  train:\n    cmd: x\n    outz: [a]\n");
    let e = err(&["run"]);
    assert!(e.contains(&format!("kairo.yaml:{}:", lines_before + 4)) && e.contains("unknown field `outz`"), "{e}");

    set("stages:\n  train:\n    cmd: x\n    deps: 3\n");
    assert!(err(&["status"]).contains(&format!("kairo.yaml:{}:", lines_before + 4)));

    set("stages:\n  a:\n    cmd: x\n    deps: [y]\n    outs: [x]\n  b:\n    cmd: y\n    deps: [x]\n    outs: [y]\n");
    let e = err(&["run"]);
    assert!(e.contains("cycle") && e.contains("a -> b") || e.contains("b -> a"), "{e}");

    set("stages:\n  train:\n    cmd: cat missing.csv > out\n    deps: [missing.csv]\n    outs: [out]\n");
    let e = err(&["run"]);
    assert!(
        e.contains(&format!("kairo.yaml:{}:", lines_before + 4)) && e.contains("`missing.csv` does not exist"),
        "{e}"
    );

    repo.write("params.yaml", "train:\n  lr: 1\n");
    set("stages:\n  train:\n    cmd: echo hi\n    params:\n      - train.lrr\n");
    let e = err(&["status"]);
    assert!(e.contains(&format!("kairo.yaml:{}:", lines_before + 5)) && e.contains("train.lrr"), "{e}");

    set("stages:\n  t:\n    cmd: x\n    env: {image: python:3.12}\n");
    assert!(err(&["run"]).contains("not pinned"));
    assert!(!repo.join("kairo.lock").exists(), "nothing ran");
}

#[test]
fn a_failing_stage_stops_downstream_but_not_independent_branches() {
    let repo = pipeline_repo(
        "
stages:
  broken:
    cmd: echo about to fail; echo details >&2; exit 7
    deps: [raw.txt]
    outs: [broken.out]
  after:
    cmd: cp broken.out after.out
    deps: [broken.out]
    outs: [after.out]
  other:
    cmd: sleep 0.2; cp raw.txt other.out
    deps: [raw.txt]
    outs: [other.out]
",
    );
    let out = repo.kairo(&["run", "-j", "2", "--json"]).assert().code(1).get_output().stdout.clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(actions(&v), [pair("broken", "ran"), pair("after", "skipped"), pair("other", "ran")]);
    assert_eq!(v[0]["status"], "failed");
    assert_eq!(v[0]["exit_code"], 7);
    assert!(v[0]["message"].as_str().unwrap().contains("details"), "log tail in the message: {}", v[0]);
    assert_eq!(v[2]["status"], "succeeded");
    assert!(repo.join("other.out").exists());

    let id = v[0]["run_id"].as_str().unwrap();
    let run = repo.json(&["runs", "show", id]);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exit_code"], 7);
    let log = repo.kairo(&["runs", "show", &id[..20], "--log"]).assert().success().get_output().stdout.clone();
    assert_eq!(String::from_utf8(log).unwrap().lines().count(), 2);
    // A failed run is never reused: the next run executes it again.
    let again = repo.kairo(&["run", "broken", "--json"]).assert().code(1).get_output().stdout.clone();
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again[0]["action"], "ran");
}

#[test]
fn runs_can_be_listed_filtered_compared_and_traced() {
    let repo = pipeline_repo(TWO_STAGES);
    repo.kairo(&["run", "--trigger", "ci"]).assert().success();
    repo.write("params.yaml", "train:\n  lr: 0.5\n");
    repo.kairo(&["run"]).assert().success();

    let train_runs = repo.json(&["runs", "ls", "--stage", "train"]);
    let ids: Vec<&str> = train_runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first, ids are time-ordered");
    let first = &train_runs[1];
    assert_eq!(first["trigger"], "ci");
    assert_eq!(first["actor"], "tester@test");
    assert_eq!(first["executor"], "local");
    assert_eq!(first["git"]["commit"].as_str().unwrap().len(), 40);
    assert_eq!(first["metrics"]["acc"], 0.1);
    assert_eq!(first["params"]["params.yaml"]["train.lr"], 0.1);
    assert!(first["env"]["key"]["os"].as_str().unwrap().starts_with("linux"));
    assert!(first["log"].is_string());

    let good = repo.json(&["runs", "ls", "--where", "acc>=0.3"]);
    assert_eq!(good.as_array().unwrap().len(), 1);
    assert_eq!(good[0]["id"], ids[0]);
    assert_eq!(repo.json(&["runs", "ls", "--status", "failed"]).as_array().unwrap().len(), 0);
    repo.kairo(&["runs", "ls", "--where", "acc ~ 1"]).assert().code(2);
    repo.kairo(&["runs", "ls", "--status", "weird"]).assert().code(2);
    repo.kairo(&["runs", "show", "ffffffffff"]).assert().code(1).stderr(predicates::str::contains("no run matches"));
    repo.kairo(&["run", "--trigger", "whenever"]).assert().code(2);

    let diff = repo.json(&["runs", "diff", ids[1], ids[0]]);
    assert_eq!(diff["params"][0]["key"], "params.yaml:train.lr");
    let acc = diff["metrics"].as_array().unwrap().iter().find(|m| m["key"] == "acc").unwrap();
    assert_eq!(acc["delta"], 0.4);
    assert!(diff["data"].as_array().unwrap().is_empty(), "same data");
    let text = repo.kairo(&["runs", "diff", ids[1], ids[0]]).assert().success().get_output().stdout.clone();
    assert!(String::from_utf8(text).unwrap().contains("acc: 0.1 -> 0.5 (+0.4)"));

    // Lineage of the model: train run <- data/clean.txt <- prepare run <- raw.txt.
    let l = repo.json_with(&["lineage", "model.txt", "--format", "json"]);
    assert_eq!(l["type"], "data");
    let train = &l["produced_by"];
    assert_eq!(train["stage"], "train");
    assert_eq!(train["id"], ids[0]);
    let clean = train["inputs"].as_array().unwrap().iter().find(|i| i["path"] == "data/clean.txt").unwrap();
    assert_eq!(clean["produced_by"]["stage"], "prepare");
    assert_eq!(clean["produced_by"]["inputs"][0]["path"], "raw.txt");
    let text =
        String::from_utf8(repo.kairo(&["lineage", ids[0]]).assert().success().get_output().stdout.clone()).unwrap();
    assert!(
        text.starts_with(&format!("run {}", ids[0])) && text.contains("└── ") && text.contains("stage `prepare`"),
        "{text}"
    );
    let dot = String::from_utf8(
        repo.kairo(&["lineage", "model.txt", "--format", "dot"]).assert().success().get_output().stdout.clone(),
    )
    .unwrap();
    assert!(dot.starts_with("digraph lineage {") && dot.contains("-> \"run_"), "{dot}");
    repo.kairo(&["lineage", "nothing/here"]).assert().code(1).stderr(predicates::str::contains("is not a run id"));
}

#[test]
fn reproduce_reexecutes_from_recorded_inputs_and_compares_outputs() {
    let noisy =
        "  noisy:\n    cmd: od -An -N8 -tx8 /dev/urandom > noise.txt\n    deps: [raw.txt]\n    outs: [noise.txt]\n";
    let repo = pipeline_repo(&format!("{TWO_STAGES}{noisy}"));
    let v = repo.json(&["run"]);
    let train_id = v[1]["run_id"].as_str().unwrap().to_string();
    let noisy_id = v[2]["run_id"].as_str().unwrap().to_string();
    // Move on: different data and params in the work tree do not matter to reproduce.
    repo.write("raw.txt", "zzz\n");
    repo.write("params.yaml", "train:\n  lr: 0.9\n");
    repo.write("data/clean.txt", "zzz\n");

    let r = repo.json(&["reproduce", &train_id]);
    assert_eq!(r["original"], train_id.as_str());
    assert_eq!(r["run"]["reproduces"], train_id.as_str());
    assert_eq!(r["run"]["status"], "succeeded");
    for o in r["outputs"].as_array().unwrap() {
        assert_eq!(o["identical"], true, "{o}");
    }
    assert!(r["metrics"].as_array().unwrap().is_empty());
    assert!(!repo.join(r["workdir"].as_str().unwrap()).exists(), "the worktree is removed");
    let shown = repo.json(&["runs", "show", r["run"]["id"].as_str().unwrap()]);
    assert_eq!(shown["reproduces"], train_id.as_str());

    // A non-deterministic stage is reported as such (exit 3), with the differing output.
    let out = repo.kairo(&["reproduce", &noisy_id]).assert().code(3).get_output().stdout.clone();
    assert!(String::from_utf8(out).unwrap().contains("noise.txt"), "names the output");
    repo.kairo(&["reproduce", "abcdef0123"]).assert().code(1).stderr(predicates::str::contains("no run matches"));
}

#[test]
fn a_dependency_changing_during_the_run_is_caught_and_not_cached() {
    let repo = pipeline_repo(
        "
stages:
  sneaky:
    cmd: cp raw.txt out.txt && echo extra >> raw.txt
    deps: [raw.txt]
    outs: [out.txt]
",
    );
    let out = repo.kairo(&["run", "--json"]).assert().code(1).get_output().stdout.clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v[0]["message"].as_str().unwrap().contains("`raw.txt` changed while the stage ran"), "{v}");
    let run = repo.json(&["runs", "show", v[0]["run_id"].as_str().unwrap()]);
    assert_eq!(run["cacheable"], false);
    assert!(!repo.join("kairo.lock").exists(), "kairo.lock is not updated");
}

#[test]
fn ctrl_c_marks_the_run_interrupted_and_a_vanished_kairo_marks_it_failed() {
    let repo = pipeline_repo(
        "\nstages:\n  slow:\n    cmd: sleep 30 && touch done.txt\n    deps: [raw.txt]\n    outs: [done.txt]\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("kairo");
    for (signal, status) in [("-INT", "interrupted"), ("-KILL", "failed")] {
        let mut child = std::process::Command::new(&bin)
            .args(["run"])
            .current_dir(repo.path())
            .env("KAIRO_ACTOR", "tester@test")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            let v = repo.json(&["runs", "ls", "--status", "running"]);
            if !v.as_array().unwrap().is_empty() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the run never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let code = child.wait().unwrap();
        if signal == "-INT" {
            assert_eq!(code.code(), Some(130));
        }
        // After -KILL the run is orphaned: the next command that looks at runs notices.
        let runs = repo.json(&["runs", "ls"]);
        assert_eq!(runs[0]["status"], status, "{runs}");
        assert!(!repo.join("done.txt").exists());
    }
}

#[test]
fn two_runs_at_once_never_write_the_same_output_twice() {
    let repo = pipeline_repo(
        "\nstages:\n  slow:\n    cmd: sleep 1 && date +%s%N > out.txt\n    deps: [raw.txt]\n    outs: [out.txt]\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("kairo");
    let spawn = || {
        std::process::Command::new(&bin)
            .args(["run", "--json"])
            .current_dir(repo.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let va: Value = serde_json::from_slice(&a.stdout).unwrap();
    let vb: Value = serde_json::from_slice(&b.stdout).unwrap();
    let mut got = vec![va[0]["action"].as_str().unwrap().to_string(), vb[0]["action"].as_str().unwrap().to_string()];
    got.sort();
    assert_eq!(got, ["ran", "up_to_date"], "one executes, the other waits and finds it done");
    let waited = [&a.stderr, &b.stderr].iter().any(|e| String::from_utf8_lossy(e).contains("being written by another"));
    assert!(waited, "the waiting process says why it waits");
    assert_eq!(repo.json(&["runs", "ls"]).as_array().unwrap().len(), 1);
}

#[test]
fn foreach_stages_and_parallel_jobs() {
    let repo = pipeline_repo(
        "
stages:
  fit:
    foreach: [1, 2, 3]
    do:
      cmd: echo seed ${item} > fit-${item}.txt
      deps: [raw.txt]
      outs: [\"fit-${item}.txt\"]
  pick:
    cmd: cat fit-1.txt fit-2.txt fit-3.txt > best.txt
    deps: [fit-1.txt, fit-2.txt, fit-3.txt]
    outs: [best.txt]
",
    );
    let v = repo.json(&["run", "-j", "3"]);
    assert_eq!(actions(&v), [pair("fit@1", "ran"), pair("fit@2", "ran"), pair("fit@3", "ran"), pair("pick", "ran")]);
    assert_eq!(repo.read("best.txt"), b"seed 1\nseed 2\nseed 3\n");
    let only = repo.json(&["status", "fit"]);
    assert_eq!(only.as_array().unwrap().len(), 3, "a group name selects its expansions");
}

#[test]
fn python_stages_fingerprint_the_interpreter_and_lockfile_envs_get_a_venv() {
    let repo = pipeline_repo(
        "
stages:
  host:
    cmd: python3 -c \"import sys; print(sys.version)\" > host.txt
    deps: [raw.txt]
    outs: [host.txt]
  venv:
    cmd: python -c \"import sys; print(sys.prefix)\" > prefix.txt
    deps: [raw.txt]
    outs: [prefix.txt]
    env: {python: requirements.txt}
  boxed:
    cmd: echo hi > boxed.txt
    deps: [raw.txt]
    outs: [boxed.txt]
    env: {image: \"debian@sha256:0000000000000000000000000000000000000000000000000000000000000000\"}
",
    );
    repo.write("requirements.txt", "# no third-party packages yet\n");
    let out = repo.kairo(&["run", "--json"]).assert().code(1).get_output().stdout.clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["status"], "succeeded");
    assert_eq!(v[1]["status"], "succeeded", "{v}");
    let prefix = String::from_utf8(repo.read("prefix.txt")).unwrap();
    assert!(prefix.trim().starts_with(repo.join(".kairo/envs").canonicalize().unwrap().to_str().unwrap()), "{prefix}");
    assert_eq!(v[2]["status"], "failed");
    assert!(v[2]["message"].as_str().unwrap().contains("no container runtime is usable"), "{}", v[2]);

    let host = repo.json(&["runs", "show", v[0]["run_id"].as_str().unwrap()]);
    assert!(host["env"]["key"]["python3.version"].as_str().unwrap().starts_with("CPython 3"), "{}", host["env"]);
    assert_eq!(host["env"]["key"]["python3.packages"].as_str().unwrap().len(), 64);
    let venv = repo.json(&["runs", "show", v[1]["run_id"].as_str().unwrap()]);
    assert_eq!(venv["env"]["spec"], "python:requirements.txt");
    assert_eq!(venv["env"]["key"]["lockfile.hash"].as_str().unwrap().len(), 64);

    // Changing the lockfile changes the environment, and a new venv is built.
    repo.write("requirements.txt", "# pinned differently\n");
    let status = repo.json(&["status", "venv"]);
    assert!(reasons(&status, "venv")[0].starts_with("environment changed (lockfile.hash"), "{status}");
    repo.kairo(&["run", "venv"]).assert().success();
    let envs =
        std::fs::read_dir(repo.join(".kairo/envs")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(envs, 2);
}

#[test]
fn runs_are_recorded_in_postgres_when_configured() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    let repo = Repo::bare().with_database(url).initialised();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", format!("{config}{TWO_STAGES}"));
    repo.write("raw.txt", "b\na\n");
    repo.write("train.sh", TRAIN_SH);
    repo.write("params.yaml", "train:\n  lr: 0.3\n");
    repo.kairo(&["run"]).assert().success();
    let runs = repo.json(&["runs", "ls", "--where", "acc==0.3"]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let l = repo.json_with(&["lineage", "model.txt", "--format", "json"]);
    assert_eq!(l["produced_by"]["stage"], "train");
}

#[test]
fn stages_see_their_run_id_persist_outputs_and_trace_tracked_datasets() {
    let repo = pipeline_repo(
        "
stages:
  tag:
    cmd: sh tag.sh
    deps: [data, raw.txt]
    outs: [tag.txt, summary, {history.txt: {persist: true}}]
    metrics: [scores.yaml]
",
    );
    repo.write("data/a.csv", "x\n1\n");
    repo.write("data/b.csv", "x\n2\n");
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.write(
        "tag.sh",
        "echo \"$KAIRO_STAGE $KAIRO_RUN_ID\" > tag.txt\necho run >> history.txt\nrm -rf summary && cp -r data summary\nprintf 'f1: 0.5\\nnested:\\n  auc: 0.75\\n' > scores.yaml\n",
    );
    let v = repo.json(&["run"]);
    let id = v[0]["run_id"].as_str().unwrap();
    assert_eq!(String::from_utf8(repo.read("tag.txt")).unwrap(), format!("tag {id}\n"));
    let run = repo.json(&["runs", "show", id]);
    assert_eq!(run["metrics"]["f1"], 0.5);
    assert_eq!(run["metrics"]["nested.auc"], 0.75);
    let dataset = run["deps"].as_array().unwrap().iter().find(|d| d["path"] == "data").unwrap();
    assert_eq!(dataset["dataset"], true, "a tracked dataset is recorded by its version");
    let pointer = String::from_utf8(repo.read("data.kairo")).unwrap();
    assert!(pointer.contains(dataset["hash"].as_str().unwrap()));
    assert_eq!(run["outs"].as_array().unwrap().iter().find(|o| o["path"] == "summary").unwrap()["type"], "dir");

    // persist: kept while the command runs, so it accumulates; others are recreated.
    repo.kairo(&["run", "--force"]).assert().success();
    assert_eq!(repo.read("history.txt"), b"run\nrun\n");

    // Lineage from a dataset version: who added it; from a run: the dataset among its inputs.
    let hash = dataset["hash"].as_str().unwrap();
    let l = repo.json_with(&["lineage", &format!("data@{}", &hash[..10]), "--format", "json"]);
    assert_eq!(l["kind"], "dataset");
    assert_eq!(l["dataset"]["added_by"], "tester@test");
    let l = repo.json_with(&["lineage", "summary", "--format", "json"]);
    let inputs = l["produced_by"]["inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|i| i["path"] == "data" && i["kind"] == "dataset"), "{l}");
    repo.kairo(&["lineage", "data@ffffffff"]).assert().code(1).stderr(predicates::str::contains("no recorded version"));

    // Objects of runs are pinned: gc keeps what a run produced even with no pointer to it.
    repo.kairo(&["data", "gc"]).assert().success();
    std::fs::remove_dir_all(repo.join("summary")).unwrap();
    let v = repo.json(&["run"]);
    assert_eq!(v[0]["action"], "restored", "{v}");
    assert_eq!(repo.read("summary/b.csv"), b"x\n2\n");
}
