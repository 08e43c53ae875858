//! `executor: ray` against a real Ray head (`.ci/start-ray.sh`): a two-stage pipeline whose
//! second stage runs as a Ray job — code in a package, data through the project's remote,
//! outputs back verified and recorded like a local run's — then the run cache (no job), a
//! failing job named with its output, Ctrl-C (the job is stopped), and a killed client: its run
//! reconciled with Ray's job list, and the next run of the same inputs attaching to the job
//! instead of starting a second one.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Repo;

/// The CI head's token (it runs with `RAY_AUTH_MODE=token`).
fn token() -> String {
    std::env::var("KAIRO_TEST_RAY_TOKEN").unwrap_or_default()
}

fn jobs(address: &str) -> Vec<Value> {
    let client = reqwest::blocking::Client::new();
    let r = client.get(format!("{address}/api/jobs/")).bearer_auth(token()).send().unwrap();
    r.json::<Vec<Value>>().unwrap()
}

/// The jobs of `stage` of this project (tests share the head).
pub(crate) fn jobs_of(address: &str, repo: &Repo, stage: &str) -> Vec<Value> {
    let root = repo.path().display().to_string();
    jobs(address)
        .into_iter()
        .filter(|j| j["metadata"]["kairo_stage"] == stage && j["metadata"]["kairo_project"] == root.as_str())
        .collect()
}

/// A project whose remote is `remote` (default: a directory inside it).
pub(crate) fn ray_repo(address: &str, stages: &str, remote: Option<&str>) -> Repo {
    let repo = Repo::new();
    let remote = remote.map(str::to_string).unwrap_or_else(|| repo.join("remote-store").display().to_string());
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!(
            "{config}remotes:\n  store:\n    url: {remote}\ndefault_remote: store\nray:\n  address: {address}\n  token_env: KAIRO_TEST_RAY_TOKEN\n{stages}"
        ),
    );
    repo
}

pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(90), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_stage_runs_on_ray_and_comes_back_like_a_local_run() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    two_stages(&address, None);
}

/// The same through the S3 test server: the job reads and writes through signed URLs only.
#[test]
fn a_stage_runs_on_ray_through_an_s3_remote() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let Some(base) = crate::service("KAIRO_TEST_S3_URL") else { return };
    let unique =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    two_stages(&address, Some(&format!("{base}/ray-{unique}")));
}

fn two_stages(address: &str, remote: Option<&str>) {
    // `prepare` runs here; `train` on Ray, reading prepare's output through the remote.
    let stages = "stages:\n  prepare:\n    cmd: mkdir -p data && seq 1 5 > data/clean.txt\n    deps: [raw.txt]\n    outs: [data/clean.txt]\n  train:\n    cmd: python train.py\n    executor: ray\n    resources: {num_cpus: 1, memory: 64MiB}\n    deps: [train.py, data/clean.txt, ref]\n    params: [train.lr]\n    outs: [model.txt, reports]\n    metrics: [m.json]\n";
    let repo = ray_repo(address, stages, remote);
    // A tracked dataset, pushed first: its small files sit in a pack on the remote, and the job
    // still gets a URL of its own for each (a loose copy is made).
    crate::make_tree(&repo, "ref", 20);
    repo.kairo(&["data", "add", "ref"]).assert().success();
    assert_eq!(repo.json(&["data", "push"])["packs"], 1);
    repo.write("raw.txt", "raw\n");
    repo.write("params.yaml", "train:\n  lr: 0.25\n");
    repo.write(
        "train.py",
        "import json, os\nrows = [int(x) for x in open('data/clean.txt')]\nlr = [l.split(':')[1].strip() for l in open('params.yaml') if 'lr' in l][0]\nprint('training on', len(rows), 'rows, lr', lr, 'run', os.environ['KAIRO_RUN_ID'][:8])\nprint('reference', open('ref/d1/f5.txt').read().strip())\nopen('model.txt', 'w').write(f'sum={sum(rows)} lr={lr}\\n')\nos.makedirs('reports/deep', exist_ok=True)\nopen('reports/a.txt', 'w').write('a\\n')\nopen('reports/deep/b.txt', 'w').write('b\\n')\njson.dump({'acc': 0.75}, open('m.json', 'w'))\n",
    );
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(repo.read("model.txt")).unwrap(), "sum=15 lr=0.25\n");
    assert_eq!(String::from_utf8(repo.read("reports/deep/b.txt")).unwrap(), "b\n");
    let runs = repo.json(&["runs", "ls"]);
    let train = runs.as_array().unwrap().iter().find(|r| r["stage"] == "train").unwrap().clone();
    assert_eq!((train["status"].as_str(), train["executor"].as_str()), (Some("succeeded"), Some("ray")), "{train}");
    let shown = repo.json(&["runs", "show", train["id"].as_str().unwrap()]);
    let outs: Vec<&str> = shown["outs"].as_array().unwrap().iter().map(|o| o["path"].as_str().unwrap()).collect();
    assert!(outs.contains(&"model.txt") && outs.contains(&"reports") && outs.contains(&"m.json"), "{shown}");
    assert_eq!(shown["metrics"]["acc"], 0.75, "{shown}");
    let log = repo.kairo(&["runs", "show", train["id"].as_str().unwrap(), "--log"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("training on 5 rows, lr 0.25"),
        "the job's output is the run's log"
    );
    assert!(String::from_utf8_lossy(&log.stdout).contains("reference file 5"), "the job read the packed dataset");
    // Lineage: train read prepare's output.
    let lineage = repo.kairo(&["lineage", "model.txt"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&lineage.stdout).contains("prepare"),
        "{}",
        String::from_utf8_lossy(&lineage.stdout)
    );
    let submitted = jobs_of(address, &repo, "train").len();
    assert!(submitted >= 1);

    // The run cache: outputs gone, inputs the same → restored, no job submitted.
    std::fs::remove_file(repo.join("model.txt")).unwrap();
    std::fs::remove_dir_all(repo.join("reports")).unwrap();
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(repo.read("model.txt")).unwrap(), "sum=15 lr=0.25\n");
    assert_eq!(jobs_of(address, &repo, "train").len(), submitted, "a cache hit never calls Ray");

    // A failing job: its exit code and the tail of its output in the run's message.
    repo.write("train.py", "import sys\nprint('about to fail')\nsys.exit(3)\n");
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(!out.status.success());
    let failed = repo.json(&["runs", "ls"]).as_array().unwrap()[0].clone();
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap_or("");
    assert!(message.contains("code 3") && message.contains("about to fail"), "{message}");
}

#[test]
fn ctrl_c_stops_the_job_and_a_killed_client_attaches_to_it_next_time() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let stages = "stages:\n  slow:\n    cmd: sleep $(cat secs.txt) && echo done > done.txt\n    executor: ray\n    deps: [secs.txt]\n    outs: [done.txt]\n";
    let repo = ray_repo(&address, stages, None);
    let bin = assert_cmd::cargo::cargo_bin("kairo");
    let spawn = || {
        std::process::Command::new(&bin)
            .args(["run"])
            .current_dir(repo.path())
            .env("KAIRO_ACTOR", "tester@test")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let project = &repo;
    let running = |n: usize| {
        let address = address.clone();
        move || jobs_of(&address, project, "slow").iter().filter(|j| j["status"] == "RUNNING").count() >= n
    };

    // Ctrl-C: the job is stopped and the run recorded interrupted.
    repo.write("secs.txt", "60\n");
    let mut child = spawn();
    wait_for("the job to run", running(1));
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let runs = repo.json(&["runs", "ls"]);
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    wait_for("the job to stop", || jobs_of(&address, &repo, "slow").iter().all(|j| j["status"] != "RUNNING"));
    assert_eq!(jobs_of(&address, &repo, "slow")[0]["status"], "STOPPED");

    // A killed client: the job runs on and succeeds. The next kairo reconciles the orphaned run
    // with Ray's job list (it says what became of the job and keeps its output); the next run of
    // the same inputs attaches to the job and takes its outputs instead of starting a second one.
    repo.write("secs.txt", "3\n");
    let mut child = spawn();
    wait_for("the job to run", running(1));
    std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    wait_for("the job to succeed", || jobs_of(&address, &repo, "slow").iter().any(|j| j["status"] == "SUCCEEDED"));
    let runs = repo.json(&["runs", "ls"]);
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let message = runs[0]["message"].as_str().unwrap();
    assert!(
        message.contains("ended while its Ray job ran")
            && message.contains("succeeded after it")
            && message.contains("takes its outputs"),
        "{message}"
    );
    let orphan_log = repo.kairo(&["runs", "show", runs[0]["id"].as_str().unwrap(), "--log"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&orphan_log.stdout).contains("KAIRO-OUTPUT"),
        "the job's output is the orphan's log: {}",
        String::from_utf8_lossy(&orphan_log.stdout)
    );
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(repo.read("done.txt")).unwrap(), "done\n");
    let runs = repo.json(&["runs", "ls"]);
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    let log = repo.kairo(&["runs", "show", runs[0]["id"].as_str().unwrap(), "--log"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("attached to Ray job"),
        "{}",
        String::from_utf8_lossy(&log.stdout)
    );
    // One job for those inputs, not two (the interrupted one had other inputs).
    let three: Vec<Value> =
        jobs_of(&address, &repo, "slow").into_iter().filter(|j| j["status"] == "SUCCEEDED").collect();
    assert_eq!(three.len(), 1, "{three:?}");
}

#[test]
fn an_unreachable_cluster_and_a_bad_executor_are_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let repo = ray_repo(
        &format!("http://127.0.0.1:{port}"),
        "stages:\n  s:\n    cmd: echo hi > o.txt\n    executor: ray\n    deps: [i.txt]\n    outs: [o.txt]\n",
        None,
    );
    repo.write("i.txt", "x\n");
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(!out.status.success());
    let runs = repo.json(&["runs", "ls"]);
    let message = runs[0]["message"].as_str().unwrap_or("");
    assert!(message.contains("unreachable") && message.contains(&port.to_string()), "{message}");
    // A bad executor name is refused where it is written.
    repo.write("kairo.yaml", "version: 1\nstages:\n  s:\n    cmd: echo\n    executor: slurm\n");
    let out = repo.kairo(&["run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown executor `slurm`") && err.contains("kairo.yaml:"), "{err}");
}

/// The CI head runs with Ray's token authentication: without the token, or with a wrong one,
/// the run fails naming the refusal and where the token goes; nothing is submitted.
#[test]
fn a_cluster_with_token_authentication_refuses_a_missing_or_wrong_token() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let stages = "stages:\n  s:\n    cmd: echo hi > o.txt\n    executor: ray\n    deps: [i.txt]\n    outs: [o.txt]\n";
    let repo = ray_repo(&address, stages, None);
    repo.write("i.txt", "x\n");
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    for (variable, value, refusal) in [
        ("KAIRO_RAY_TOKEN", "", "no token was sent (401)"),
        ("WRONG_RAY_TOKEN", "0123abcd", "refused the token it was sent (403)"),
    ] {
        repo.write("kairo.yaml", config.replace("token_env: KAIRO_TEST_RAY_TOKEN", &format!("token_env: {variable}")));
        let out = repo.kairo(&["run"]).env(variable, value).output().unwrap();
        assert!(!out.status.success());
        let runs = repo.json(&["runs", "ls"]);
        let message = runs[0]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(refusal) && message.contains("KAIRO_RAY_TOKEN") && message.contains("ray.token_env"),
            "{message}"
        );
    }
    assert!(jobs_of(&address, &repo, "s").is_empty(), "nothing was submitted");
}

/// The stage's requirements become the job's environment (Ray's `runtime_env.pip`): a package
/// the cluster lacks is there for the command; one that does not exist fails the run with pip's
/// words.
#[test]
fn a_stage_gets_its_requirements_on_the_cluster() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let stages = "stages:\n  show:\n    cmd: python show.py\n    executor: ray\n    env: {python: requirements.txt}\n    deps: [show.py]\n    outs: [out.txt]\n";
    let repo = ray_repo(&address, stages, None);
    repo.write(
        "show.py",
        "import importlib.metadata, termcolor\nopen('out.txt', 'w').write('termcolor ' + importlib.metadata.version('termcolor') + '\\n')\n",
    );
    // termcolor is not among ray[default]'s dependencies: only the runtime env can bring it.
    repo.write("requirements.txt", "# what show.py needs\ntermcolor==2.5.0\n");
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(repo.read("out.txt")).unwrap(), "termcolor 2.5.0\n");

    repo.write("requirements.txt", "kairo-no-such-package-for-tests==0.0.1\n");
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(!out.status.success());
    let failed = repo.json(&["runs", "ls"]).as_array().unwrap()[0].clone();
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap_or("");
    assert!(message.contains("kairo-no-such-package-for-tests"), "{message}");
}
