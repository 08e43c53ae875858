//! `kairo run` and `kairo status`: decide per stage whether it is stale and why, restore from
//! the run cache or execute it (independent stages in parallel), and record every execution as
//! a run.
//!
//! Concurrency: each stage holds a lock per output while it checks and runs, so a second
//! `kairo run` waits for (or, with `no_wait`, refuses) exactly the outputs being written and then
//! finds them up to date. Nothing repo-wide is held across a command.

use crate::dag::Dag;
use crate::env::{self, Fingerprinter};
use crate::error::{PipelineError, Result};
use crate::lockfile::{LockCache, LockEntry, LockEnv};
use crate::params;
use crate::ray;
use crate::spec::{Executor, Pipeline, Stage};
use crate::state::{self, Inputs, ModelDep};
use crate::usage;
use kairo_core::run::{GitState, Run, RunStatus};
use kairo_core::{time, Hash};
use kairo_data::{checkout, git, tree, Project};
use kairo_store::lock::StoreLock;
use kairo_store::{LocalObjects, Metadata, StatCache};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How `kairo run` was asked to behave.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub trigger: String,
    /// Refuse instead of waiting when another process holds a stage's output.
    pub no_wait: bool,
    /// Who the runs are recorded as; the user (`Project::actor`) when none. The closed loop
    /// runs as `automation:NAME`.
    pub actor: Option<String>,
}

/// What happened to one stage.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    UpToDate,
    WouldRun,
    Restored {
        from_run: String,
    },
    Ran {
        status: RunStatus,
        exit_code: Option<i32>,
    },
    /// Not run because an upstream stage failed (or the run was interrupted).
    Skipped {
        because: String,
    },
    /// Could not be run (missing dependency, environment error, output locked).
    Error,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StageOutcome {
    pub stage: String,
    #[serde(flatten)]
    pub action: Action,
    pub reasons: Vec<String>,
    pub run_id: Option<String>,
    pub message: Option<String>,
}

impl StageOutcome {
    /// Whether downstream stages may proceed.
    fn ok(&self) -> bool {
        match &self.action {
            Action::UpToDate | Action::WouldRun | Action::Restored { .. } => true,
            Action::Ran { status, .. } => *status == RunStatus::Succeeded && self.message.is_none(),
            _ => false,
        }
    }

    pub fn failed(&self) -> bool {
        !self.ok()
    }
}

/// Where stage output and notes go (the CLI prints; tests may collect).
pub trait Console: Sync {
    fn note(&self, stage: &str, message: &str);
    fn line(&self, stage: &str, line: &str);
}

/// Set by Ctrl-C (or SIGTERM): no new stages start, running ones get SIGINT.
#[derive(Default)]
pub struct Interrupt {
    flag: AtomicBool,
    groups: Mutex<Vec<i32>>,
}

impl Interrupt {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(groups) = self.groups.lock() {
            for &g in groups.iter() {
                if let Some(pid) = rustix::process::Pid::from_raw(g) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::INT);
                }
            }
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn register(&self, pid: i32) {
        if let Ok(mut g) = self.groups.lock() {
            g.push(pid);
        }
        // A signal that arrived between the check and the spawn still reaches the child.
        if self.is_set() {
            self.trigger();
        }
    }

    fn unregister(&self, pid: i32) {
        if let Ok(mut g) = self.groups.lock() {
            g.retain(|&x| x != pid);
        }
    }
}

/// Shared state of one `kairo run`.
pub struct Runner<'a> {
    project: &'a Project,
    pipeline: &'a Pipeline,
    dag: Dag,
    objects: LocalObjects,
    cache: Mutex<StatCache>,
    fingerprinter: Fingerprinter,
    params: Mutex<params::Files>,
    lock: LockCache,
    handle: tokio::runtime::Handle,
    metadata: Mutex<Option<Metadata>>,
    git: Mutex<Option<GitState>>,
    interrupt: &'a Interrupt,
    console: &'a dyn Console,
    opts: RunOptions,
}

impl<'a> Runner<'a> {
    pub fn new(
        project: &'a Project,
        pipeline: &'a Pipeline,
        opts: RunOptions,
        handle: tokio::runtime::Handle,
        interrupt: &'a Interrupt,
        console: &'a dyn Console,
    ) -> Result<Self> {
        let dag = Dag::build(pipeline)?;
        Ok(Runner {
            project,
            pipeline,
            dag,
            objects: project.objects()?,
            cache: Mutex::new(project.stat_cache()),
            fingerprinter: Fingerprinter::new(project.root()),
            params: Mutex::new(params::Files::new(project.root())),
            lock: LockCache::open(project.root())?,
            handle,
            metadata: Mutex::new(None),
            git: Mutex::new(None),
            interrupt,
            console,
            opts,
        })
    }

    /// Process the selected stages; returns one outcome per stage in topological order.
    pub fn run(&self) -> Result<Vec<StageOutcome>> {
        let selected = self.dag.select(self.pipeline, &self.opts.targets)?;
        let outcomes: Mutex<BTreeMap<usize, StageOutcome>> = Mutex::new(BTreeMap::new());
        let jobs = self.opts.jobs.max(1);
        let running = AtomicU64::new(0);
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        std::thread::scope(|scope| -> Result<()> {
            let mut started = vec![false; self.pipeline.stages.len()];
            loop {
                // Start every stage whose upstream is settled, up to `jobs` at a time.
                for &i in &selected {
                    if started[i] || running.load(Ordering::SeqCst) as usize >= jobs {
                        continue;
                    }
                    let mut done = outcomes.lock().map_err(poisoned)?;
                    let ups: Vec<usize> =
                        self.dag.upstream[i].iter().copied().filter(|u| selected.contains(u)).collect();
                    if !ups.iter().all(|u| done.contains_key(u)) {
                        continue;
                    }
                    started[i] = true;
                    let stage = &self.pipeline.stages[i];
                    if let Some(&up) = ups.iter().find(|u| done.get(u).is_some_and(|o| o.failed())) {
                        let because = format!("upstream stage `{}` did not succeed", self.pipeline.stages[up].name);
                        done.insert(i, skipped(stage, because));
                        continue;
                    }
                    if self.interrupt.is_set() {
                        done.insert(i, skipped(stage, "interrupted".into()));
                        continue;
                    }
                    let upstream_runs: Vec<String> = ups
                        .iter()
                        .filter(|u| done.get(u).is_some_and(|o| matches!(o.action, Action::WouldRun)))
                        .map(|&u| self.pipeline.stages[u].name.clone())
                        .collect();
                    drop(done);
                    running.fetch_add(1, Ordering::SeqCst);
                    let tx = tx.clone();
                    let (outcomes, running) = (&outcomes, &running);
                    scope.spawn(move || {
                        let outcome = self.process(stage, &upstream_runs).unwrap_or_else(|e| StageOutcome {
                            stage: stage.name.clone(),
                            action: Action::Error,
                            reasons: Vec::new(),
                            run_id: None,
                            message: Some(e.to_string()),
                        });
                        if let Ok(mut o) = outcomes.lock() {
                            o.insert(i, outcome);
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        let _ = tx.send(i);
                    });
                }
                if outcomes.lock().map_err(poisoned)?.len() == selected.len() || running.load(Ordering::SeqCst) == 0 {
                    break;
                }
                // Wait for a running stage to finish, then look for newly ready ones.
                let _ = rx.recv();
            }
            Ok(())
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.save()?;
        }
        self.fingerprinter.save();
        if let Ok(Some(md)) = self.metadata.lock().map(|m| m.clone()) {
            self.handle.block_on(md.close());
        }
        let mut outcomes = outcomes.into_inner().map_err(poisoned)?;
        Ok(selected.iter().filter_map(|i| outcomes.remove(i)).collect())
    }

    /// Everything about one stage, from the staleness check to the recorded run.
    fn process(&self, stage: &Stage, upstream_runs: &[String]) -> Result<StageOutcome> {
        let _locks = if self.opts.dry_run { Vec::new() } else { self.lock_outputs(stage)? };
        let inputs = self.inputs(stage, false)?;
        let outs_now = self.outs_now(stage)?;
        let mut reasons = state::reasons(stage, self.current_lock_entry(stage)?.as_ref(), &inputs, &outs_now);
        if self.opts.dry_run {
            // A missing input that a stage about to run will write is not a problem yet.
            let produced =
                |d: &str| self.pipeline.stages.iter().any(|s| s.all_outs().any(|o| crate::dag::overlaps(d, &o.path)));
            let pending: Vec<&String> =
                inputs.missing.iter().filter(|m| produced(m) && !upstream_runs.is_empty()).collect();
            reasons.retain(|r| !pending.iter().any(|m| *r == format!("dependency `{m}` is missing")));
        }
        reasons.extend(upstream_runs.iter().map(|u| format!("upstream stage `{u}` will run")));
        if self.opts.force {
            reasons.insert(0, "forced".into());
        }
        let outcome = |action, reasons, run_id, message| StageOutcome {
            stage: stage.name.clone(),
            action,
            reasons,
            run_id,
            message,
        };
        if reasons.is_empty() {
            return Ok(outcome(Action::UpToDate, reasons, None, None));
        }
        if self.opts.dry_run {
            return Ok(outcome(Action::WouldRun, reasons, None, None));
        }
        if !inputs.missing.is_empty() {
            let m = &inputs.missing[0];
            let e = self.pipeline.error_in(
                &stage.name,
                Some("deps"),
                Some(m),
                &format!("stage `{}`: dependency `{m}` does not exist and no stage produces it", stage.name),
            );
            return Ok(outcome(Action::Error, reasons, None, Some(e.to_string())));
        }
        let key = state::cache_key(stage, &inputs);
        if stage.cacheable() && !self.opts.force {
            if let Some(run) = self.restore(stage, &key)? {
                self.console.note(&stage.name, &format!("restored outputs from run {} (same inputs)", run.id));
                self.write_lock(stage, &inputs, &run, key)?;
                return Ok(outcome(Action::Restored { from_run: run.id.clone() }, reasons, Some(run.id), None));
            }
        }
        self.console.note(&stage.name, &format!("running ({})", reasons.join("; ")));
        let run = self.execute(stage, inputs.clone(), key, None, self.project.root())?;
        if run.status == RunStatus::Succeeded && run.cacheable {
            self.write_lock(stage, &inputs, &run, key)?;
        }
        let message = run.message.clone().filter(|_| run.status != RunStatus::Succeeded || !run.cacheable);
        Ok(outcome(Action::Ran { status: run.status, exit_code: run.exit_code }, reasons, Some(run.id), message))
    }

    /// The entry as on disk now (another process may have just written it).
    fn current_lock_entry(&self, stage: &Stage) -> Result<Option<LockEntry>> {
        self.lock.entry(&stage.name)
    }

    fn lock_outputs(&self, stage: &Stage) -> Result<Vec<StoreLock>> {
        let dir = self.project.root().join(".kairo/locks");
        std::fs::create_dir_all(&dir).map_err(PipelineError::io(&dir))?;
        let mut held = Vec::new();
        for out in stage.all_outs() {
            let path = dir.join(format!("out-{}.lock", &Hash::of(out.path.as_bytes()).to_hex()[..24]));
            match StoreLock::try_exclusive(&path)? {
                Some(l) => held.push(l),
                None if self.opts.no_wait => {
                    return Err(PipelineError::Other(format!(
                        "stage `{}`: output `{}` is being written by another `kairo run`; try again when it finishes",
                        stage.name, out.path
                    )))
                }
                None => {
                    self.console.note(
                        &stage.name,
                        &format!("waiting: output `{}` is being written by another `kairo run`", out.path),
                    );
                    held.push(StoreLock::exclusive(&path)?);
                }
            }
        }
        Ok(held)
    }

    /// The stage's inputs now; with `store`, dependency contents are also put in the store so a
    /// run can later be reproduced from exactly these bytes.
    fn inputs(&self, stage: &Stage, store: bool) -> Result<Inputs> {
        inputs_at(
            self.project,
            self.project.root(),
            stage,
            &self.sources(),
            store.then_some(&self.objects),
            Some(self.pipeline),
        )
    }

    fn sources(&self) -> Sources<'_> {
        Sources { cache: &self.cache, params: &self.params, fingerprinter: &self.fingerprinter, models: Some(self) }
    }

    fn outs_now(&self, stage: &Stage) -> Result<Vec<(String, Option<Hash>)>> {
        let mut out = Vec::new();
        for o in stage.all_outs() {
            let mut cache = self.cache.lock().map_err(poisoned)?;
            let v = state::version_of(self.project, self.project.root(), &o.path, &mut cache, None)?;
            out.push((o.path.clone(), v.map(|v| v.hash)));
        }
        Ok(out)
    }

    fn metadata(&self) -> Result<Metadata> {
        let mut guard = self.metadata.lock().map_err(poisoned)?;
        if let Some(md) = guard.as_ref() {
            return Ok(md.clone());
        }
        let md = self.handle.block_on(self.project.metadata())?;
        // The database is opened only when something runs or is restored: that is also when
        // runs orphaned by a killed kairo are worth settling. A no-op check never opens it.
        let _ = self.handle.block_on(recover_orphans(self.project, &md));
        *guard = Some(md.clone());
        Ok(md)
    }

    fn git_state(&self) -> Result<GitState> {
        let mut guard = self.git.lock().map_err(poisoned)?;
        if guard.is_none() {
            *guard = Some(git_state(self.project.root()));
        }
        Ok(guard.clone().unwrap_or_default())
    }

    /// A succeeded run with the same key whose outputs are all still in the store, put back.
    fn restore(&self, stage: &Stage, key: &Hash) -> Result<Option<Run>> {
        let md = self.metadata()?;
        for run in self.handle.block_on(md.cached_runs(key))? {
            let trees: Option<Vec<_>> = run
                .outs
                .iter()
                .map(|o| {
                    tree::load(&self.objects, &o.path, state::kind_of(&o.kind), o.hash, o.size)
                        .ok()
                        .filter(|t| t.files_with_paths().iter().all(|(_, n)| self.objects.contains(&n.hash())))
                })
                .collect();
            let Some(trees) = trees else { continue };
            if run.outs.len() != stage.all_outs().count() {
                continue;
            }
            let mut cache = self.cache.lock().map_err(poisoned)?;
            for (o, t) in run.outs.iter().zip(trees) {
                let abs = self.project.abs(&o.path);
                if let Some(parent) = abs.parent() {
                    std::fs::create_dir_all(parent).map_err(PipelineError::io(parent))?;
                }
                checkout::materialise(&self.objects, &mut cache, &abs, &o.path, &t, true, &Default::default())?;
            }
            return Ok(Some(run));
        }
        Ok(None)
    }

    fn write_lock(&self, stage: &Stage, inputs: &Inputs, run: &Run, key: Hash) -> Result<()> {
        let entry = LockEntry {
            cmd: stage.cmd.clone(),
            env: LockEnv { spec: inputs.env.spec.clone(), hash: inputs.env.hash, key: inputs.env.key.clone() },
            deps: inputs.deps.clone(),
            params: inputs.params.clone(),
            outs: run.outs.clone(),
            models: inputs.models.clone(),
            run: run.id.clone(),
            key,
        };
        let keep: Vec<String> = self.pipeline.stages.iter().map(|s| s.name.clone()).collect();
        {
            // Stored outputs belong in the store, not in git (as DVC does).
            let _wt = self.project.lock_worktree()?;
            for o in stage.all_outs().filter(|o| o.cache) {
                kairo_data::gitignore::ignore_tracked(self.project.root(), &o.path)?;
            }
        }
        self.lock.update(&stage.name, entry, &keep)
    }

    /// Execute `stage` in `workdir` (the project root, or a reproduction worktree) and record
    /// the run. Returns the finished run; failures of the command are a failed run, not an error.
    pub fn execute(
        &self,
        stage: &Stage,
        inputs: Inputs,
        key: Hash,
        reproduces: Option<String>,
        workdir: &Path,
    ) -> Result<Run> {
        let stored =
            inputs_at(self.project, workdir, stage, &self.sources(), Some(&self.objects), Some(self.pipeline))?;
        let on_ray = self.executor_of(stage) == Executor::Ray;
        let git = if workdir == self.project.root() { self.git_state()? } else { git_state(workdir) };
        let mut run = Run {
            id: new_run_id(),
            stage: stage.name.clone(),
            status: RunStatus::Running,
            trigger: self.opts.trigger.clone(),
            actor: self.opts.actor.clone().unwrap_or_else(Project::actor),
            host: Project::hostname(),
            pid: std::process::id(),
            executor: if on_ray { "ray" } else { "local" }.into(),
            git,
            cmd: stage.cmd.clone(),
            wdir: String::new(),
            deps: stored.deps.iter().cloned().chain(stored.models.iter().map(ModelDep::as_dependency)).collect(),
            params: inputs.params.clone(),
            env: inputs.env.clone(),
            out_paths: stage.all_outs().map(|o| o.path.clone()).collect(),
            persist: stage.all_outs().filter(|o| o.persist).map(|o| o.path.clone()).collect(),
            metrics_files: stage.metrics.iter().map(|m| m.path.clone()).collect(),
            outs: Vec::new(),
            metrics: BTreeMap::new(),
            cache_key: key,
            cacheable: false,
            exit_code: None,
            started_at: time::now_string(),
            ended_at: None,
            log: None,
            reproduces,
            message: None,
            cpu_ms: None,
        };
        let md = self.metadata()?;
        for o in stage.all_outs() {
            let abs = workdir.join(&o.path);
            if !o.persist {
                remove_path(&abs)?;
            }
            if let Some(parent) = abs.parent() {
                std::fs::create_dir_all(parent).map_err(PipelineError::io(parent))?;
            }
        }
        let mut pass =
            vec![("KAIRO_RUN_ID".to_string(), run.id.clone()), ("KAIRO_STAGE".to_string(), stage.name.clone())];
        // With a tracking server up, the stage's own `mlflow.log_*` calls land on this run.
        if let Some(url) = self.project.running_server() {
            pass.push(("MLFLOW_TRACKING_URI".to_string(), url));
            pass.push(("MLFLOW_RUN_ID".to_string(), run.id.clone()));
        }
        if !stored.models.is_empty() {
            let pins = stored.models.iter().map(|m| (m.reference.as_str(), m.name.as_str(), m.version));
            let by_name = run.reproduces.is_some();
            pass.push((kairo_registry::pins::ENV.to_string(), kairo_registry::pins::encode(pins, by_name)));
        }
        // A Ray job sets up its environment on the cluster (runtime_env), not here.
        let launch = if on_ray {
            None
        } else {
            match env::prepare(self.project.root(), stage, &inputs.env, workdir, &pass) {
                Ok(l) => Some(l),
                Err(e) => {
                    // Not even started: record the failure so the attempt is visible.
                    run.message = Some(e.to_string());
                    self.handle.block_on(md.start_run(&run))?;
                    return self.finish(run, RunStatus::Failed, &md, &[]);
                }
            }
        };
        self.handle.block_on(md.start_run(&run))?;

        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let exit = match &launch {
            Some(launch) => self
                .spawn_and_wait(stage, launch, &pass, workdir, &log)
                .map(|(code, cpu)| {
                    run.cpu_ms = cpu;
                    code
                })
                .map_err(|e| format!("could not start the command: {e}")),
            None => {
                let interrupted = || self.interrupt.is_set();
                let on_line = |line: &str| self.console.line(&stage.name, line);
                let job = ray::Job {
                    project: self.project,
                    stage,
                    run_id: &run.id,
                    key: &key,
                    workdir,
                    deps: &stored.deps,
                    objects: &self.objects,
                    handle: &self.handle,
                    interrupted: &interrupted,
                    on_line: &on_line,
                    log: &log,
                };
                ray::run(&job).map_err(|e| e.to_string())
            }
        };
        let log_bytes = log.lock().map(|l| l.clone()).unwrap_or_default();
        let mut pins = Vec::new();
        let staged = self.objects.stage_bytes(&log_bytes)?;
        run.log = Some(staged.hash);
        pins.push(staged.hash);
        self.objects.commit(vec![staged])?;
        pins.extend(run.deps.iter().filter(|d| !d.dataset).map(|d| d.hash));

        let code = match exit {
            Ok(code) => code,
            Err(e) => {
                run.message = Some(e);
                return self.finish(run, RunStatus::Failed, &md, &pins);
            }
        };
        run.exit_code = Some(code);
        if self.interrupt.is_set() {
            run.message = Some("interrupted (Ctrl-C); outputs are not cached".into());
            return self.finish(run, RunStatus::Interrupted, &md, &pins);
        }
        if code != 0 {
            run.message = Some(format!("command exited with code {code}{}", log_tail(&log_bytes)));
            return self.finish(run, RunStatus::Failed, &md, &pins);
        }
        // Hash the dependencies again: a change during the run makes its outputs untrustworthy.
        let after = inputs_at(self.project, workdir, stage, &self.sources(), None, Some(self.pipeline))?;
        let changed: Vec<String> = stored
            .deps
            .iter()
            .filter(|d| !after.deps.iter().any(|a| a.path == d.path && a.hash == d.hash))
            .map(|d| d.path.clone())
            .chain(after.missing.iter().cloned())
            .chain(stored.models.iter().filter(|m| !after.models.contains(m)).map(|m| {
                format!(
                    "model {} (now version {})",
                    m.reference,
                    after.models.iter().find(|a| a.reference == m.reference).map_or(0, |a| a.version)
                )
            }))
            .collect();
        for o in stage.all_outs() {
            let store = o.cache.then_some(&self.objects);
            let mut cache = self.cache.lock().map_err(poisoned)?;
            match state::version_of(self.project, workdir, &o.path, &mut cache, store)? {
                Some(v) => run.outs.push(v),
                None => {
                    drop(cache);
                    run.message = Some(format!("the command succeeded but did not produce output `{}`", o.path));
                    return self.finish(run, RunStatus::Failed, &md, &pins);
                }
            }
        }
        pins.extend(run.outs.iter().filter(|_| stage.cacheable()).map(|o| o.hash));
        for m in &stage.metrics {
            read_metrics(&workdir.join(&m.path), &mut run.metrics);
        }
        if changed.is_empty() {
            run.cacheable = stage.cacheable();
        } else {
            run.message = Some(format!(
                "dependency {} changed while the stage ran; its outputs are not cached and kairo.lock is not updated",
                changed.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        self.finish(run, RunStatus::Succeeded, &md, &pins)
    }

    /// Where `stage` runs: its own `executor:`, else Ray when kairo.yaml says `ray: {default: true}`.
    fn executor_of(&self, stage: &Stage) -> Executor {
        if stage.predict {
            return Executor::Local;
        }
        stage.executor.unwrap_or_else(|| {
            if self.project.config().ray.as_ref().is_some_and(|r| r.default) {
                Executor::Ray
            } else {
                Executor::Local
            }
        })
    }

    fn finish(&self, mut run: Run, status: RunStatus, md: &Metadata, pins: &[Hash]) -> Result<Run> {
        run.status = status;
        run.ended_at = Some(time::now_string());
        self.handle.block_on(md.finish_run(&run, pins))?;
        Ok(run)
    }

    fn spawn_and_wait(
        &self,
        stage: &Stage,
        launch: &env::Launch,
        pass: &[(String, String)],
        workdir: &Path,
        log: &Arc<Mutex<Vec<u8>>>,
    ) -> std::io::Result<(i32, Option<u64>)> {
        let mut cmd = Command::new(&launch.program);
        if let Some(path) = path_with_this_kairo() {
            cmd.env("PATH", path);
        }
        cmd.args(&launch.args)
            .current_dir(workdir)
            .envs(pass.iter().cloned())
            .envs(launch.vars.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id() as i32;
        self.interrupt.register(pid);
        let streams: Vec<Box<dyn Read + Send>> = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        let status = std::thread::scope(|scope| {
            for stream in streams {
                let log = Arc::clone(log);
                let console = self.console;
                let name = stage.name.as_str();
                scope.spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut line = Vec::new();
                    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                        if let Ok(mut l) = log.lock() {
                            l.extend_from_slice(&line);
                        }
                        console.line(name, String::from_utf8_lossy(&line).trim_end_matches('\n'));
                        line.clear();
                    }
                });
            }
            // Wait for the exit without reaping, so its CPU times can still be read.
            let cpu = usage::cpu_ms_at_exit(pid);
            child.wait().map(|s| (s, cpu))
        });
        self.interrupt.unregister(pid);
        let (status, cpu) = status?;
        use std::os::unix::process::ExitStatusExt;
        Ok((status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)), cpu))
    }
}

/// Runs left `running` by a kairo process on this host that no longer exists: mark them failed.
/// A stage that ran on Ray is reconciled with the cluster's job list first: the run records
/// what became of its job, and keeps the job's output as its log.
pub async fn recover_orphans(project: &Project, md: &Metadata) -> Result<()> {
    let mut orphans = Vec::new();
    for run in md.running_runs(&Project::hostname()).await? {
        // Runs created by tracking clients are the client's to end, not a kairo process's.
        if run.executor != "local" && run.executor != "ray" {
            continue;
        }
        if !Project::kairo_alive(run.pid) {
            orphans.push(run);
        }
    }
    let on_ray: Vec<&Run> = orphans.iter().filter(|r| r.executor == "ray").collect();
    let mut settled = if on_ray.is_empty() { Default::default() } else { ray::reconcile(project, &on_ray).await };
    for mut run in orphans {
        let mut pins = Vec::new();
        match settled.remove(&run.id) {
            Some(s) => {
                run.message =
                    Some(format!("the kairo process (pid {}) ended while its Ray job ran; {}", run.pid, s.what));
                run.status = s.status;
                if let Some(log) = s.log {
                    let objects = project.objects()?;
                    let staged = objects.stage_bytes(&log)?;
                    run.log = Some(staged.hash);
                    pins.push(staged.hash);
                    objects.commit(vec![staged])?;
                }
            }
            None => {
                run.message = Some(format!("the kairo process (pid {}) ended without finishing this run", run.pid));
                run.status = RunStatus::Failed;
            }
        }
        run.ended_at = Some(time::now_string());
        md.finish_run(&run, &pins).await?;
    }
    Ok(())
}

/// `PATH` with the directory of this `kairo` first, so that a stage's `kairo ...` (a
/// `predict:` stage's command) runs the same kairo as `kairo run`. None when this process is
/// not a `kairo` binary (a test harness).
fn path_with_this_kairo() -> Option<std::ffi::OsString> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_stem()? != "kairo" {
        return None;
    }
    let mut paths = vec![exe.parent()?.to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).ok()
}

/// Resolves the registered-model references of stages (opening the database only then).
pub(crate) trait ResolveModels: Sync {
    fn resolve_model(&self, reference: &str) -> Result<ModelDep>;
}

impl ResolveModels for Runner<'_> {
    fn resolve_model(&self, reference: &str) -> Result<ModelDep> {
        let md = self.metadata()?;
        self.handle.block_on(ModelDep::resolve(&md, reference))
    }
}

/// What reading a stage's inputs needs: the stat cache, the params files, the fingerprinter,
/// and the registry for its `models` (without it they are not resolved).
#[derive(Clone, Copy)]
pub(crate) struct Sources<'a> {
    pub cache: &'a Mutex<StatCache>,
    pub params: &'a Mutex<params::Files>,
    pub fingerprinter: &'a Fingerprinter,
    pub models: Option<&'a dyn ResolveModels>,
}

/// Inputs of `stage` with paths resolved under `base`.
pub(crate) fn inputs_at(
    project: &Project,
    base: &Path,
    stage: &Stage,
    sources: &Sources<'_>,
    store: Option<&LocalObjects>,
    pipeline: Option<&Pipeline>,
) -> Result<Inputs> {
    let Sources { cache, params, fingerprinter, models: registry } = *sources;
    let mut deps = Vec::new();
    let mut missing = Vec::new();
    for d in &stage.deps {
        let mut cache = cache.lock().map_err(poisoned)?;
        match state::version_of(project, base, d, &mut cache, store)? {
            Some(v) => deps.push(v),
            None => missing.push(d.clone()),
        }
    }
    let values = if base == project.root() {
        params.lock().map_err(poisoned)?.values(&stage.params)
    } else {
        params::Files::new(base).values(&stage.params)
    };
    let params = values.map_err(|m| {
        let message = format!("stage `{}`: {m}", stage.name);
        match pipeline {
            Some(p) => {
                let needle =
                    stage.params.iter().find_map(|r| r.key.as_deref().filter(|k| m.contains(*k))).unwrap_or("params");
                p.error_in(&stage.name, Some("params"), Some(needle), &message)
            }
            None => PipelineError::Other(message),
        }
    })?;
    let env = fingerprinter.fingerprint_in(stage, base)?;
    let mut models = Vec::new();
    if let Some(registry) = registry {
        for reference in &stage.models {
            let m = registry.resolve_model(reference).map_err(|e| match pipeline {
                Some(p) => {
                    p.error_in(&stage.name, Some("models"), Some(reference), &format!("stage `{}`: {e}", stage.name))
                }
                None => e,
            })?;
            models.push(m);
        }
    }
    Ok(Inputs { deps, missing, params, env, models })
}

fn skipped(stage: &Stage, because: String) -> StageOutcome {
    StageOutcome {
        stage: stage.name.clone(),
        action: Action::Skipped { because },
        reasons: Vec::new(),
        run_id: None,
        message: None,
    }
}

fn poisoned<T>(_: T) -> PipelineError {
    PipelineError::Other("a worker thread panicked".into())
}

fn remove_path(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(PipelineError::io(path)),
        Ok(_) => std::fs::remove_file(path).map_err(PipelineError::io(path)),
        Err(_) => Ok(()),
    }
}

pub(crate) fn log_tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(10)..];
    format!("; last lines of its output:\n  {}", tail.join("\n  "))
}

/// Numeric leaves of a JSON/YAML metrics file as `dotted.key` → value. Unreadable files add nothing.
pub fn read_metrics(path: &Path, into: &mut BTreeMap<String, f64>) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    let Ok(value) = kairo_core::yaml::from_str::<serde_json::Value>(&text) else { return };
    fn walk(prefix: &str, v: &serde_json::Value, into: &mut BTreeMap<String, f64>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let key = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
                    walk(&key, child, into);
                }
            }
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    into.insert(prefix.to_string(), f);
                }
            }
            serde_json::Value::Bool(b) => {
                into.insert(prefix.to_string(), if *b { 1.0 } else { 0.0 });
            }
            _ => {}
        }
    }
    walk("", &value, into);
}

/// Commit, branch, and a hash of uncommitted changes (tracked diffs plus untracked files).
pub fn git_state(dir: &Path) -> GitState {
    git::state(dir)
}

pub use kairo_core::run::new_run_id;
