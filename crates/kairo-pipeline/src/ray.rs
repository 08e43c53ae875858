//! `executor: ray`: a stage's command as a job on a Ray cluster (through `kairo-ray`, the Jobs
//! API), so a team trains where it already computes.
//!
//! The job gets: the stage's code — its git-tracked dependencies, params files and lockfile —
//! as a working-directory package (Ray's package API, no shared filesystem); its data inputs
//! (tracked datasets, other stages' outputs) as objects of the project's remote, each through a
//! URL signed for it (or a `file://` path for a directory remote); its Python requirements as
//! Ray's `runtime_env.pip`. `kairo_ray_job.py` fetches the inputs, runs the command, and sends
//! each output back to a staging URL with its SHA-256. Kairo puts the outputs in place in the
//! work tree and records them exactly as after a local run: same run record, lineage and run
//! cache. The submission id is the run's (`kairo-RUN`), so a second submission of the same run
//! attaches to its job. Ctrl-C stops the job. The job's output streams into the run's log.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kairo_core::run::PathVersion;
use kairo_ray::{Client, Status, Submit, Submitted};
use kairo_store::LocalObjects;
use serde_json::json;

use crate::error::{PipelineError, Result};
use crate::spec::{EnvSpec, Stage};

/// The job's side: fetch inputs, run, send outputs back with their SHA-256 (`fetch`, `send`
/// and `packed` are also imported by other Kairo job scripts shipped beside it).
pub const JOB_SCRIPT: &str = include_str!("kairo_ray_job.py");
/// How long the signed URLs of one job are valid.
const URLS_VALID: Duration = Duration::from_secs(24 * 3600);
/// The job's state is asked this often (its end is noticed within this), its output every
/// `LOGS_EVERY` polls and once more at the end (Ray answers the whole log each time).
const POLL: Duration = Duration::from_millis(100);
const LOGS_EVERY: u32 = 10;

/// What the runner hands to a Ray job.
pub(crate) struct Job<'a> {
    pub project: &'a kairo_data::Project,
    pub stage: &'a Stage,
    pub run_id: &'a str,
    /// The stage's cache key: the same inputs are the same job.
    pub key: &'a kairo_core::Hash,
    pub workdir: &'a Path,
    pub deps: &'a [PathVersion],
    pub objects: &'a LocalObjects,
    pub handle: &'a tokio::runtime::Handle,
    pub interrupted: &'a dyn Fn() -> bool,
    pub on_line: &'a dyn Fn(&str),
    pub log: &'a Arc<Mutex<Vec<u8>>>,
}

/// The cluster named in kairo.yaml (`KAIRO_RAY_ADDRESS` overrides its address).
pub fn client(project: &kairo_data::Project) -> Result<Client> {
    let spec = project.config().ray.clone().unwrap_or_default();
    let address =
        std::env::var("KAIRO_RAY_ADDRESS").ok().filter(|a| !a.is_empty()).or(spec.address).ok_or_else(|| {
            PipelineError::Other(
                "a stage runs on Ray but no cluster is configured: set ray.address in kairo.yaml or KAIRO_RAY_ADDRESS"
                    .into(),
            )
        })?;
    let token = std::env::var(spec.token_env.as_deref().unwrap_or("KAIRO_RAY_TOKEN")).ok().filter(|t| !t.is_empty());
    Client::new(&address, token).map_err(ray_err)
}

/// A Ray error, with how to fix a refused token.
pub fn ray_err(e: kairo_ray::RayError) -> PipelineError {
    match e {
        kairo_ray::RayError::Unauthorized { .. } => PipelineError::Other(format!(
            "{e}: put the cluster's token (its RAY_AUTH_TOKEN) in KAIRO_RAY_TOKEN, or in the variable ray.token_env names in kairo.yaml"
        )),
        e => PipelineError::Other(e.to_string()),
    }
}

/// The submission id of a stage's job: from its cache key and the project (its directory and
/// the remote the job writes to), so that running the same stage on the same inputs again —
/// after the client was killed — finds the job instead of starting a second one, and another
/// project with the same inputs never finds it.
pub(crate) fn submission_id(key: &kairo_core::Hash, project: &kairo_data::Project) -> String {
    let mut h = blake3::Hasher::new();
    h.update(key.to_hex().as_bytes());
    h.update(b"\0");
    h.update(project.root().display().to_string().as_bytes());
    h.update(b"\0");
    let spec = project.config().ray.clone().unwrap_or_default();
    let remote = spec.remote.or_else(|| project.config().default_remote.clone()).unwrap_or_default();
    h.update(project.config().remotes.get(&remote).map(|r| r.url.as_str()).unwrap_or("").as_bytes());
    format!("kairo-{}", &h.finalize().to_hex()[..32])
}

/// What became of an orphaned run's job, as the cluster's job list says.
pub(crate) struct Settled {
    pub status: kairo_core::run::RunStatus,
    /// The sentence after "the kairo process ended while its Ray job ran; ".
    pub what: String,
    /// The job's output while Ray still has it (kept as the run's log).
    pub log: Option<Vec<u8>>,
}

/// Reconcile runs whose kairo process ended while their Ray job ran with the cluster's job
/// list (one request, plus each found job's log). Every run gets an answer, even when the
/// cluster cannot be asked.
pub(crate) async fn reconcile(
    project: &kairo_data::Project,
    runs: &[&kairo_core::run::Run],
) -> std::collections::HashMap<String, Settled> {
    use kairo_core::run::RunStatus;
    let listed = match client(project) {
        Ok(c) => c.jobs().await.map(|jobs| (c, jobs)).map_err(|e| ray_err(e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut out = std::collections::HashMap::new();
    for run in runs {
        let id = submission_id(&run.cache_key, project);
        let again = "running the stage again on the same inputs";
        let settled = match &listed {
            Err(e) => Settled {
                status: RunStatus::Failed,
                what: format!("its job {id} could not be looked up ({e}); {again} attaches to it if it still runs"),
                log: None,
            },
            Ok((c, jobs)) => match jobs.iter().find(|j| j.submission_id.as_deref() == Some(id.as_str())) {
                None => Settled {
                    status: RunStatus::Failed,
                    what: format!("the Ray cluster at {} no longer knows job {id}", c.address()),
                    log: None,
                },
                Some(job) => {
                    let log = c.logs(&id).await.ok().map(String::into_bytes);
                    let (status, what) = match job.status {
                        Status::Pending | Status::Running => {
                            (RunStatus::Failed, format!("job {id} still runs; {again} attaches to it"))
                        }
                        Status::Succeeded => (
                            RunStatus::Failed,
                            format!("job {id} succeeded after it; {again} takes its outputs without running it again"),
                        ),
                        Status::Stopped => (RunStatus::Interrupted, format!("job {id} was stopped")),
                        Status::Failed => (
                            RunStatus::Failed,
                            match job.driver_exit_code {
                                Some(code) => format!(
                                    "job {id} failed: the command exited with code {code}{}",
                                    crate::runner::log_tail(log.as_deref().unwrap_or_default())
                                ),
                                None => format!("job {id} failed: {}", job.message.as_deref().unwrap_or("")),
                            },
                        ),
                    };
                    Settled { status, what, log }
                }
            },
        };
        out.insert(run.id.clone(), settled);
    }
    out
}

/// Run the job to its end: the exit code (the command's, 97 for a missing input or output),
/// or an error that names the cause before anything ran.
pub(crate) fn run(job: &Job<'_>) -> Result<i32> {
    let client = client(job.project)?;
    let remote_name = job.project.config().ray.as_ref().and_then(|r| r.remote.clone());
    let remote = job.project.remote(remote_name.as_deref()).map_err(|e| {
        PipelineError::Other(format!("a Ray job gets its inputs and returns its outputs through a remote: {e}"))
    })?;
    let h = job.handle;
    h.block_on(client.version()).map_err(ray_err)?;
    let want = &job.stage.resources;
    let have = h.block_on(client.resources()).map_err(ray_err)?;
    for (what, need, total) in [("num_cpus", want.num_cpus, have.cpus), ("num_gpus", want.num_gpus, have.gpus)] {
        if need.is_some_and(|n| n > total) {
            return Err(PipelineError::Other(format!(
                "stage `{}` asks for {what} {} but the Ray cluster at {} has {total} in all: it would wait forever",
                job.stage.name,
                need.unwrap_or(0.0),
                client.address()
            )));
        }
    }

    // Code: git-tracked files among the dependencies, params files, the lockfile.
    let (code, data) = split_dependencies(job)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for rel in &code {
        let abs = job.workdir.join(rel);
        let bytes = std::fs::read(&abs).map_err(PipelineError::io(&abs))?;
        files.push((rel.clone(), bytes));
    }
    // Inputs: every file of every data dependency, pushed to the remote, with a URL each.
    let mut inputs = Vec::new();
    for d in &data {
        let tree = kairo_data::tree::load(job.objects, &d.path, pointer_kind(&d.kind), d.hash, d.size)?;
        for (rel, node) in tree.files_with_paths() {
            let path = if rel.is_empty() { d.path.clone() } else { format!("{}/{rel}", d.path) };
            let hash = node.hash();
            h.block_on(remote.ensure_loose(job.objects, hash))?;
            let url = h.block_on(remote.object_url(hash, URLS_VALID))?;
            inputs.push(json!({"path": path, "url": url, "size": node.size()}));
        }
    }
    // Outputs: a staging URL each.
    let id = submission_id(job.key, job.project);
    let mut outputs = Vec::new();
    for (i, o) in job.stage.all_outs().enumerate() {
        let name = format!("{id}-{i}");
        let url = h.block_on(remote.staging_url(&name, URLS_VALID))?;
        outputs.push(json!({"path": o.path, "url": url, "staged": name}));
    }
    let manifest = json!({"cmd": job.stage.cmd, "inputs": inputs, "outputs": outputs});
    files.push(("kairo-job.json".into(), serde_json::to_vec(&manifest).unwrap_or_default()));
    files.push(("kairo_ray_job.py".into(), JOB_SCRIPT.as_bytes().to_vec()));
    let package = kairo_ray::package::zip(&files);
    let uri = h.block_on(client.upload_package(package)).map_err(ray_err)?;

    let mut runtime_env =
        json!({"working_dir": uri, "env_vars": {"KAIRO_RUN_ID": job.run_id, "KAIRO_STAGE": job.stage.name}});
    match &job.stage.env {
        EnvSpec::Host => {}
        EnvSpec::Python { lockfile } => {
            let abs = job.workdir.join(lockfile);
            let text = std::fs::read_to_string(&abs).map_err(PipelineError::io(&abs))?;
            let lines: Vec<&str> =
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
            runtime_env["pip"] = json!(lines);
        }
        EnvSpec::Image { reference } => {
            return Err(PipelineError::Other(format!(
                "stage `{}` runs in image {reference}: image environments run locally, not on Ray (use env: {{python: requirements.txt}} there)",
                job.stage.name
            )))
        }
    }
    let submit = Submit {
        entrypoint: "python kairo_ray_job.py".into(),
        submission_id: id.clone(),
        runtime_env,
        metadata: [
            ("kairo_run".to_string(), job.run_id.to_string()),
            ("kairo_stage".to_string(), job.stage.name.clone()),
            ("kairo_project".to_string(), job.project.root().display().to_string()),
        ]
        .into(),
        entrypoint_num_cpus: want.num_cpus,
        entrypoint_num_gpus: want.num_gpus,
        entrypoint_memory: want.memory,
    };
    if h.block_on(client.submit(&submit)).map_err(ray_err)? == Submitted::Existing {
        // The same stage on the same inputs was submitted before (a killed client, or an earlier
        // attempt): follow it while it runs, take its outputs if it succeeded and they are still
        // staged; otherwise start it afresh.
        let before = h.block_on(client.job(&id)).map_err(ray_err)?;
        let reusable = match &before {
            Some(j) if !j.status.is_terminal() => true,
            Some(j) if j.status == Status::Succeeded => {
                job.stage.all_outs().count() == 0 || h.block_on(remote.staged(&format!("{id}-0"))).is_ok()
            }
            _ => false,
        };
        if reusable {
            append(job, &format!("kairo: attached to Ray job {id}, submitted earlier for the same inputs\n"));
        } else {
            h.block_on(client.delete(&id)).map_err(ray_err)?;
            h.block_on(client.submit(&submit)).map_err(ray_err)?;
        }
    }
    let outcome = follow(&client, &id, h, job.interrupted, &mut |text| append(job, text))?;
    let code = match outcome.status {
        Status::Succeeded => 0,
        Status::Stopped => 130,
        _ => outcome.driver_exit_code.unwrap_or(1),
    };
    if code != 0 {
        if let Some(m) = outcome
            .message
            .filter(|m| !m.is_empty() && outcome.status == Status::Failed && outcome.driver_exit_code.is_none())
        {
            // Ray could not start it (runtime env, supervisor): its words, in the log.
            append(job, &format!("ray: {m}\n"));
        }
        return Ok(code);
    }
    // Put the outputs in place, verified against what the job said it sent.
    let log = job.log.lock().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
    for (i, o) in job.stage.all_outs().enumerate() {
        let name = format!("{id}-{i}");
        let report = log
            .lines()
            .filter_map(|l| l.strip_prefix("KAIRO-OUTPUT "))
            .filter_map(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            .find(|r| r["path"] == o.path.as_str())
            .ok_or_else(|| PipelineError::Other(format!("the Ray job did not report output `{}`", o.path)))?;
        let bytes = h.block_on(remote.staged(&name))?;
        let sha = sha256_hex(&bytes);
        if report["sha256"].as_str() != Some(sha.as_str()) {
            return Err(PipelineError::Other(format!(
                "output `{}` arrived damaged from the Ray job (SHA-256 {sha}, the job sent {})",
                o.path, report["sha256"]
            )));
        }
        let dest = job.workdir.join(&o.path);
        if report["kind"] == "dir" {
            std::fs::create_dir_all(&dest).map_err(PipelineError::io(&dest))?;
            let mut archive = tar::Archive::new(&bytes[..]);
            for entry in archive.entries().map_err(PipelineError::io(&dest))? {
                let mut entry = entry.map_err(PipelineError::io(&dest))?;
                // Only files under the output: never absolute paths or `..`.
                if !entry.unpack_in(&dest).map_err(PipelineError::io(&dest))? {
                    return Err(PipelineError::Other(format!(
                        "output `{}` from the Ray job holds a path outside it",
                        o.path
                    )));
                }
            }
        } else {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(PipelineError::io(parent))?;
            }
            std::fs::write(&dest, &bytes).map_err(PipelineError::io(&dest))?;
        }
        h.block_on(remote.unstage(&name))?;
    }
    Ok(0)
}

fn pointer_kind(kind: &str) -> kairo_core::pointer::PointerKind {
    if kind == "dir" {
        kairo_core::pointer::PointerKind::Dir
    } else {
        kairo_core::pointer::PointerKind::File
    }
}

/// Lowercase hex SHA-256, as the job scripts print it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn append(job: &Job<'_>, text: &str) {
    if let Ok(mut l) = job.log.lock() {
        l.extend_from_slice(text.as_bytes());
    }
    for line in text.lines() {
        (job.on_line)(line);
    }
}

/// Poll job `id` to its end, handing new output to `on_output` as it comes; when
/// `interrupted` turns true (Ctrl-C), the job is stopped and followed to its end.
pub fn follow(
    client: &Client,
    id: &str,
    h: &tokio::runtime::Handle,
    interrupted: &dyn Fn() -> bool,
    on_output: &mut dyn FnMut(&str),
) -> Result<kairo_ray::Job> {
    let mut seen = 0usize;
    let mut stopping = false;
    let mut polls = 0u32;
    loop {
        let state = h.block_on(client.job(id)).map_err(ray_err)?.ok_or_else(|| {
            PipelineError::Other(format!(
                "the Ray cluster at {} forgot job {id} (was the head restarted?)",
                client.address()
            ))
        })?;
        let end = state.status.is_terminal();
        if end || polls.is_multiple_of(LOGS_EVERY) {
            if let Ok(text) = h.block_on(client.logs(id)) {
                if text.len() > seen && text.is_char_boundary(seen) {
                    on_output(&text[seen..]);
                    seen = text.len();
                }
            }
        }
        polls = polls.wrapping_add(1);
        if end {
            return Ok(state);
        }
        if interrupted() && !stopping {
            stopping = true;
            h.block_on(client.stop(id)).map_err(ray_err)?;
        }
        std::thread::sleep(POLL);
    }
}

/// The stage's dependencies split into code (git-tracked files, with the params files and the
/// lockfile) and data (everything else, as the versions the run recorded).
fn split_dependencies(job: &Job<'_>) -> Result<(Vec<String>, Vec<PathVersion>)> {
    let tracked = kairo_data::git::tracked_files(job.project.root())?;
    let mut code: Vec<String> = Vec::new();
    let mut data = Vec::new();
    for d in job.deps {
        let under: Vec<&String> =
            tracked.iter().filter(|t| **t == d.path || t.starts_with(&format!("{}/", d.path))).collect();
        if under.is_empty() || d.dataset {
            data.push(d.clone());
        } else {
            code.extend(under.into_iter().cloned());
        }
    }
    for p in &job.stage.params {
        if !code.contains(&p.file) && job.workdir.join(&p.file).is_file() {
            code.push(p.file.clone());
        }
    }
    if let EnvSpec::Python { lockfile } = &job.stage.env {
        if !code.contains(lockfile) {
            code.push(lockfile.clone());
        }
    }
    code.sort();
    code.dedup();
    Ok((code, data))
}
