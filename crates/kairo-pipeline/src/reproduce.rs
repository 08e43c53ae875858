//! `kairo reproduce RUN`: re-execute a recorded run from exactly its inputs — its commit in a
//! temporary git worktree, its dependency bytes from the store, its param values, the same
//! environment spec — record a new run linked to the original, and compare the outputs.

use crate::error::{PipelineError, Result};
use crate::params;
use crate::query::{self, MetricChange};
use crate::runner::{self, Console, Interrupt, RunOptions, Runner};
use crate::spec::{EnvSpec, Executor, Out, ParamRef, Pipeline, Stage};
use crate::state;
use kairo_core::run::{Run, RunStatus};
use kairo_core::Hash;
use kairo_data::{checkout, tree, Project};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Per output: is the re-execution bit-identical to the original?
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputCheck {
    pub path: String,
    pub original: Hash,
    pub reproduced: Option<Hash>,
    pub identical: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReproduceReport {
    pub original: String,
    pub run: Run,
    pub outputs: Vec<OutputCheck>,
    pub metrics: Vec<MetricChange>,
    /// Where it ran (kept only with `keep`).
    pub workdir: PathBuf,
    pub warnings: Vec<String>,
}

impl ReproduceReport {
    pub fn identical(&self) -> bool {
        self.run.status == RunStatus::Succeeded && self.outputs.iter().all(|o| o.identical)
    }
}

pub fn reproduce(
    project: &Project,
    run_id: &str,
    keep: bool,
    trigger: String,
    handle: tokio::runtime::Handle,
    interrupt: &Interrupt,
    console: &dyn Console,
) -> Result<ReproduceReport> {
    let md = handle.block_on(project.metadata())?;
    let original = handle.block_on(md.run(run_id))?;
    handle.block_on(md.close());
    if original.status == RunStatus::Running {
        return Err(PipelineError::Other(format!("run {} is still running", original.id)));
    }
    let commit = original.git.commit.clone().ok_or_else(|| {
        PipelineError::Other(format!(
            "run {} was not made in a git commit, so its code cannot be checked out",
            original.id
        ))
    })?;
    let mut warnings = Vec::new();
    if original.git.dirty.is_some() {
        warnings.push(
            "the original run had uncommitted changes: declared dependencies are restored byte for byte from the store, other uncommitted files are not".into(),
        );
    }
    let stage = stage_of(&original)?;

    let workdir = project.root().join(".kairo/tmp").join(format!("reproduce-{}", runner::new_run_id()));
    let out = Command::new("git")
        .args(["worktree", "add", "--detach"])
        .arg(&workdir)
        .arg(&commit)
        .current_dir(project.root())
        .output()
        .map_err(|e| PipelineError::Other(format!("git worktree add: {e}")))?;
    if !out.status.success() {
        return Err(PipelineError::Other(format!(
            "cannot check out commit {commit} of run {}: {}",
            original.id,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let result = (|| -> Result<ReproduceReport> {
        materialise_inputs(project, &original, &workdir)?;
        let pipeline = Pipeline::from_stages(vec![stage.clone()]);
        let opts = RunOptions {
            targets: Vec::new(),
            force: true,
            dry_run: false,
            jobs: 1,
            trigger,
            no_wait: false,
            actor: None,
        };
        let runner = Runner::new(project, &pipeline, opts, handle.clone(), interrupt, console)?;
        let cache = Mutex::new(project.stat_cache());
        let fp = crate::env::Fingerprinter::new(project.root());
        let workdir_params = Mutex::new(params::Files::new(&workdir));
        let sources = runner::Sources { cache: &cache, params: &workdir_params, fingerprinter: &fp, models: None };
        let inputs = runner::inputs_at(project, &workdir, &stage, &sources, None, None)?;
        if inputs.env.hash != original.env.hash {
            let changed: Vec<&String> =
                inputs.env.key.iter().filter(|(k, v)| original.env.key.get(*k) != Some(*v)).map(|(k, _)| k).collect();
            warnings.push(format!(
                "the environment differs from the original's ({}); outputs may differ for that reason",
                changed.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let key = state::cache_key(&stage, &inputs);
        let run = runner.execute(&stage, inputs, key, Some(original.id.clone()), &workdir)?;
        let outputs = original
            .outs
            .iter()
            .map(|o| {
                let reproduced = run.outs.iter().find(|n| n.path == o.path).map(|n| n.hash);
                OutputCheck {
                    path: o.path.clone(),
                    original: o.hash,
                    reproduced,
                    identical: reproduced == Some(o.hash),
                }
            })
            .collect();
        let metrics = query::diff(&original, &run).metrics;
        Ok(ReproduceReport { original: original.id.clone(), run, outputs, metrics, workdir: workdir.clone(), warnings })
    })();
    if !keep {
        let _ = Command::new("git")
            .args(["worktree", "remove", "--force"])
            .arg(&workdir)
            .current_dir(project.root())
            .output();
        let _ = std::fs::remove_dir_all(&workdir);
        let _ = Command::new("git").args(["worktree", "prune"]).current_dir(project.root()).output();
    }
    result
}

/// The stage as the run recorded it.
fn stage_of(run: &Run) -> Result<Stage> {
    let env = EnvSpec::from_label(&run.env.spec)
        .ok_or_else(|| PipelineError::Other(format!("run {} has an unknown environment `{}`", run.id, run.env.spec)))?;
    let out = |p: &String| Out {
        path: p.clone(),
        persist: run.persist.contains(p),
        cache: run.outs.iter().any(|o| &o.path == p) || run.status != RunStatus::Succeeded,
    };
    Ok(Stage {
        name: run.stage.clone(),
        cmd: run.cmd.clone(),
        deps: run.deps.iter().filter(|d| d.kind != kairo_core::run::MODEL_KIND).map(|d| d.path.clone()).collect(),
        params: run
            .params
            .iter()
            .flat_map(|(file, kv)| kv.keys().map(move |k| ParamRef { file: file.clone(), key: Some(k.clone()) }))
            .collect(),
        outs: run.out_paths.iter().filter(|p| !run.metrics_files.contains(p)).map(out).collect(),
        metrics: run.metrics_files.iter().map(out).collect(),
        env,
        always_changed: false,
        // Reproduced where it ran: a run on Ray is reproduced on Ray (resources as configured now).
        executor: Some(if run.executor == "ray" { Executor::Ray } else { Executor::Local }),
        resources: Default::default(),
        // The versions the run read, pinned (`models/NAME:VERSION` → `NAME:VERSION`).
        models: run
            .deps
            .iter()
            .filter(|d| d.kind == kairo_core::run::MODEL_KIND)
            .filter_map(|d| d.path.strip_prefix("models/").map(str::to_string))
            .collect(),
        predict: false,
    })
}

/// Put the run's dependency versions and param values into `workdir`.
fn materialise_inputs(project: &Project, run: &Run, workdir: &Path) -> Result<()> {
    let objects = project.objects()?;
    let mut cache = project.stat_cache();
    for d in run.deps.iter().filter(|d| d.kind != kairo_core::run::MODEL_KIND) {
        let target = tree::load(&objects, &d.path, state::kind_of(&d.kind), d.hash, d.size)?;
        for (p, node) in target.files_with_paths() {
            if !objects.contains(&node.hash()) {
                return Err(PipelineError::Other(format!(
                    "dependency `{}` (version {}) is not in the local store: file `{p}` is missing (try `kairo data pull`)",
                    d.path,
                    d.hash.short()
                )));
            }
        }
        let abs = workdir.join(&d.path);
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(PipelineError::io(parent))?;
        }
        checkout::materialise(&objects, &mut cache, &abs, &d.path, &target, true, &Default::default())?;
    }
    for (file, values) in &run.params {
        let mut current = params::Files::new(workdir);
        let same = values.iter().all(|(k, v)| {
            current
                .values(&[ParamRef { file: file.clone(), key: Some(k.clone()) }])
                .ok()
                .and_then(|m| m.get(file).and_then(|f| f.get(k)).cloned())
                .as_ref()
                == Some(v)
        });
        if !same {
            let path = workdir.join(file);
            params::write_values(&path, values).map_err(PipelineError::io(&path))?;
        }
    }
    Ok(())
}
