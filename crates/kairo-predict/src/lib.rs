//! Batch scoring (`kairo predict`): a registered version scores a CSV or Parquet file (or a
//! directory of them) with the runtime and the input decoding `kairo serve` uses, so the same
//! rows score bit for bit as they do online ([`kairo_serve::invocations::TableDecoder`]).
//!
//! The input is read batch by batch (only the feature and id columns), batches are scored on
//! every core, and the output is written in input order beside its destination and renamed
//! into place when complete ([`output::Staged`]). Every call is a run (stage `predict`): the
//! model version (its bytes' hash, and the alias it was resolved from), the input's hash (the
//! dataset version when it is tracked), the output's hash, the row counts and the duration —
//! so `kairo lineage scores.parquet` finds the model and the data that made the scores.

pub mod input;
pub mod log;
pub mod output;
mod ray;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, UInt32Array};
use kairo_core::run::{EnvFingerprint, PathVersion, Run, RunStatus};
use kairo_core::Hash;
use kairo_data::Project;
use kairo_registry::ModelRef;
use kairo_runtime::{Model, Tensor};
use kairo_serve::invocations::TableDecoder;
use kairo_store::Metadata;
use rayon::prelude::*;

use input::{Batch, Reader, Rows};
use output::{Columns, OutFormat, Writer};

/// Rows per batch unless asked otherwise: big enough to amortise a model run (a logistic
/// regression over 1M rows scores as fast with 16,384 as with 65,536), small enough that the
/// batches in flight stay a few MB (peak RSS 139 MB vs 186 MB on the same input).
pub const DEFAULT_BATCH_ROWS: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Registry(#[from] kairo_registry::RegistryError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    /// The input does not fit the model or cannot be read: names the file (and column, row).
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Output(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The Ray cluster, the remote its tasks reach, or a shard that failed there.
    #[error("{0}")]
    Ray(String),
    /// Ctrl-C stopped it (a Ray job is stopped first); nothing was written.
    #[error("{0}")]
    Interrupted(String),
}

impl PredictError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PredictError + '_ {
        move |source| PredictError::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = PredictError> = std::result::Result<T, E>;

/// Where the rows are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// In this process, on every core.
    Local,
    /// As tasks of one job on the project's Ray cluster (`ray:` in kairo.yaml), one per shard
    /// of the input (a file, or a Parquet file's row groups), through the project's remote.
    Ray,
}

/// What to do with a row that cannot be scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop at the first such row; no output appears.
    Fail,
    /// Leave it out of the output and list it, with the reason, in `OUT.skipped.csv`.
    Skip,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// `NAME@ALIAS`, `NAME:VERSION` or `NAME` (its latest version).
    pub model: String,
    pub input: PathBuf,
    pub out: PathBuf,
    /// Columns copied from the input to the output, first, to join the scores back.
    pub id_columns: Vec<String>,
    pub format: OutFormat,
    pub on_error: OnError,
    pub batch_rows: usize,
    /// Also write each row's per-feature contributions (and the bias), as `kairo serve` gives
    /// them with `"contributions": true`.
    pub explain: bool,
    /// Feed the scored rows to the model's prediction log (its monitors see them).
    pub log: bool,
    pub executor: Executor,
    /// The command line, for the run record.
    pub command: String,
}

/// What a scoring run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub run_id: String,
    pub model: String,
    pub version: i64,
    /// The alias the version was resolved from, when one was named.
    pub alias: Option<String>,
    pub model_hash: Hash,
    pub input: String,
    pub input_hash: Hash,
    /// Whether the input is a tracked dataset (its hash is then the dataset version).
    pub input_dataset: bool,
    pub files: usize,
    pub executor: Executor,
    /// On Ray: how many tasks the input was split into.
    pub shards: Option<usize>,
    pub output: String,
    pub output_hash: Hash,
    pub format: OutFormat,
    pub rows: u64,
    pub scored: u64,
    pub skipped: u64,
    /// Where the skipped rows and their reasons are, when rows were skipped.
    pub skipped_file: Option<String>,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Rows added to the model's prediction log (under deployment `model`), 0 with `--no-log`.
    pub logged: u64,
}

/// Hears of rows as they are scored.
pub trait Progress: Sync {
    fn total(&self, rows: Option<u64>);
    fn scored(&self, rows: u64);
    /// The model starts (`true`) or ends (`false`) loading: its file, the decoded protobuf and
    /// the built model pass through memory one after another, so a binary may return freed
    /// memory to the OS eagerly meanwhile.
    fn loading(&self, _active: bool) {}
    /// Whether the user asked to stop (Ctrl-C): a Ray job is then stopped.
    fn interrupted(&self) -> bool {
        false
    }
}

/// Silence.
pub struct Quiet;

impl Progress for Quiet {
    fn total(&self, _: Option<u64>) {}
    fn scored(&self, _: u64) {}
}

/// A version resolved and loaded for scoring.
struct Loaded {
    name: String,
    version: i64,
    alias: Option<String>,
    hash: Hash,
    model: Model,
    explainer: Option<kairo_runtime::explain::Explainer>,
    /// The model's privacy policy for its prediction log (with logging on).
    redactor: Option<kairo_serve::privacy::Redactor>,
}

async fn load(project: &Project, md: &Metadata, reference: &str, explain: bool, log: bool) -> Result<Loaded> {
    let r = ModelRef::parse(reference)?;
    // In a pipeline stage: the version the stage was judged against, even if the alias moved since.
    let version = match kairo_registry::pins::pinned(reference, r.name()) {
        Some(v) => v,
        None => r.resolve(md).await?,
    };
    let name = r.name().to_string();
    let alias = match &r {
        ModelRef::Alias(_, a) => Some(a.clone()),
        _ => None,
    };
    let artifact = kairo_registry::artifact_of(md, &name, version).await?;
    let bytes = kairo_registry::version_bytes(project, &artifact)?;
    let what = format!("model '{name}' version {version}");
    let profile = artifact.profile.as_ref().and_then(|p| p.current());
    let redactor = |model: &Model| -> Result<Option<kairo_serve::privacy::Redactor>> {
        if !log {
            return Ok(None);
        }
        // kairo.yaml's policy for the model, as `kairo serve` applies it before logging.
        let (spec, key) = Project::privacy(project.config(), &name);
        kairo_serve::privacy::Redactor::compile(&name, &spec, model.signature(), profile, key).map_err(|m| {
            PredictError::Input(format!(
                "{m} (the scores go to the prediction log under it; --no-log does not log them)"
            ))
        })
    };
    if !explain {
        let model = kairo_registry::load_model_to_score(bytes, &what)?;
        let redactor = redactor(&model)?;
        return Ok(Loaded { name, version, alias, hash: artifact.object, model, explainer: None, redactor });
    }
    let model = kairo_registry::load_model(&bytes, &what)?;
    let redactor = redactor(&model)?;
    let explainer = kairo_registry::profile::explainer(&model, profile).ok_or_else(|| {
        PredictError::Input(format!(
            "{what} has no contribution data for --explain (models written by `kairo train` have it; a tree \
             ensemble gets it when registered with --profile-data)"
        ))
    })?;
    Ok(Loaded { name, version, alias, hash: artifact.object, model, explainer: Some(explainer), redactor })
}

/// What is read: the input as named, or a tracked path's earlier version (`PATH@VERSION`)
/// copied out of the store into a scratch directory that goes when this does.
struct Source {
    path: PathBuf,
    /// For `PATH@VERSION`: the dataset version, as the run records it.
    version: Option<PathVersion>,
    scratch: Option<PathBuf>,
}

impl Source {
    async fn of(project: &Project, input: &Path) -> Result<Source> {
        let as_named = Source { path: input.to_path_buf(), version: None, scratch: None };
        let text = input.to_string_lossy();
        let Some((path, spec)) = text.rsplit_once('@') else { return Ok(as_named) };
        if input.exists() || path.is_empty() || spec.is_empty() || spec.contains('/') {
            return Ok(as_named);
        }
        let cwd = std::env::current_dir().map_err(PredictError::io(input))?;
        let rel = project.relative(&cwd, Path::new(path)).map_err(|_| {
            PredictError::Input(format!("{text}: `{path}` is not inside the project, so it has no versions"))
        })?;
        let (_, tree) = kairo_data::history::resolve(project, &rel, spec).await?;
        let tmp = project.root().join(".kairo/tmp");
        // Copies a killed `kairo predict` left behind (`predict-PID`, `predict-PID-ray`).
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid =
                name.strip_prefix("predict-").and_then(|p| p.split('-').next()).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Project::kairo_alive(pid) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let scratch = tmp.join(format!("predict-{}", std::process::id()));
        let name = Path::new(&rel).file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "input".into());
        let copy = scratch.join(name);
        let mut source = Source { path: copy.clone(), version: None, scratch: Some(scratch.clone()) };
        std::fs::create_dir_all(&scratch).map_err(PredictError::io(&scratch))?;
        let objects = project.objects()?;
        let mut cache = project.stat_cache();
        kairo_data::checkout::materialise(&objects, &mut cache, &copy, &rel, &tree, true, &Default::default())
            .map_err(|e| {
                PredictError::Input(format!(
                    "{text}: {e} (the version's files must be in the local store: `kairo data pull`)"
                ))
            })?;
        let kind = if tree.kind() == kairo_core::pointer::PointerKind::Dir { "dir" } else { "file" };
        source.version = Some(PathVersion { path: rel, hash: tree.hash(), kind: kind.into(), size: 0, dataset: true });
        Ok(source)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A path as the run records it: project-relative when inside the project, else absolute.
fn recorded(project: &Project, path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| project.root().to_path_buf());
    project
        .relative(&cwd, path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| cwd.join(path)).to_string_lossy().into_owned())
}

/// The input's version, as the run records it (at `path`): the tracked dataset's, or the hash
/// of its files' bytes (a directory: of each file's path and hash), read in chunks so memory
/// stays flat whatever their size.
fn input_version(project: &Project, input: &Path, files: &[PathBuf], path: String) -> Result<PathVersion> {
    let version =
        |hash, dataset, kind: &str| PathVersion { path: path.clone(), hash, kind: kind.into(), size: 0, dataset };
    if !Path::new(&path).is_absolute() && project.read_pointer(&path)?.is_some() {
        // The recorded version only when the data is still that version; edited since
        // `data add`, it is the current content's hash (in the same scheme), not a version.
        let kind = if input.is_dir() { "dir" } else { "file" };
        let status = kairo_data::status::status(project, std::slice::from_ref(&path))?;
        if let Some(s) = status.first() {
            match (&s.state, s.current) {
                (kairo_data::status::State::Unchanged, _) => return Ok(version(s.recorded, true, kind)),
                (_, Some(current)) => return Ok(version(current, false, kind)),
                _ => {}
            }
        }
    }
    if input.is_file() {
        return Ok(version(kairo_store::objects::hash_file_streaming(input)?, false, "file"));
    }
    let mut listing = String::new();
    for f in files {
        let rel = f.strip_prefix(input).unwrap_or(f);
        listing.push_str(&format!("{}\0{}\n", rel.to_string_lossy(), kairo_store::objects::hash_file_streaming(f)?));
    }
    Ok(version(Hash::of(listing.as_bytes()), false, "dir"))
}

/// Which input columns feed the model: by input name when every input is a column, else
/// (a model with one `[N, k]` input) every column that is not an id, in file order.
fn feature_columns(names: &[String], ids: &[String], model: &Model, file: &Path) -> Result<Vec<String>> {
    let sig = model.signature();
    if sig.inputs.iter().all(|s| names.contains(&s.name)) {
        return Ok(sig.inputs.iter().map(|s| s.name.clone()).collect());
    }
    if sig.inputs.len() != 1 {
        let missing: Vec<&str> =
            sig.inputs.iter().filter(|s| !names.contains(&s.name)).map(|s| s.name.as_str()).collect();
        return Err(PredictError::Input(format!(
            "{}: no column '{}' (the model's inputs are {}; the file's columns: {})",
            file.display(),
            missing[0],
            sig.inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            names.join(", ")
        )));
    }
    let spec = &sig.inputs[0];
    let features: Vec<String> = names.iter().filter(|n| !ids.contains(n)).cloned().collect();
    if let Some(&k) = spec.shape.get(1).filter(|k| **k > 0) {
        if features.len() as i64 != k {
            return Err(PredictError::Input(format!(
                "{}: the model's input '{}' takes {k} values per row, and the file has {} columns besides the \
                 id columns ({}); pass --id-column for each column that is not a feature",
                file.display(),
                spec.name,
                features.len(),
                features.join(", ")
            )));
        }
    }
    Ok(features)
}

/// One batch scored: the rows kept (indices into the batch) with the model's outputs, and the
/// rows left out with why.
struct Scored {
    kept: Vec<u32>,
    outputs: Vec<Tensor>,
    /// `[rows, targets, features + 1]`, with `--explain`.
    contributions: Option<Tensor>,
    skipped: Vec<(u32, String)>,
    /// The kept rows as a prediction-log segment written aside in the store (committed with
    /// others, so the store syncs once per group, not per batch), when logging.
    segment: Option<(kairo_store::Staged, kairo_store::serving::Segment)>,
}

/// Where a row is, for messages: `data.csv row 17`.
fn place(files: &[PathBuf], batch: &Batch, i: usize) -> String {
    format!("{} row {}", files[batch.file].display(), batch.first_row + i as u64)
}

/// What scoring a batch needs besides the batch.
struct Plan<'a> {
    features: &'a [String],
    model: &'a Model,
    explainer: Option<&'a kairo_runtime::explain::Explainer>,
    files: &'a [PathBuf],
    on_error: OnError,
    /// The id columns (after the features in each batch).
    ids: &'a [String],
    log: Option<(&'a log::LogPlan, &'a kairo_store::LocalObjects)>,
    /// The number of the first file in the whole input (a shard's files are some of it).
    first_file: usize,
}

/// Rows decoded into the model's inputs: the rows that fit, and their tensors (None for none).
type Decoded = (Vec<u32>, Option<HashMap<String, Tensor>>);

impl Plan<'_> {
    fn decode(&self, batch: &Batch, rows: &[u32], skipped: &mut Vec<(u32, String)>) -> Result<Decoded> {
        let sig = self.model.signature();
        let mut decoder =
            TableDecoder::new(self.features, sig).map_err(|e| PredictError::Input(e.message().to_string()))?;
        // Every row of a batch whose features are all float columns without nulls: a column
        // at a time (the same values; see `TableDecoder::push_numeric_columns`).
        if rows.len() == batch.len() {
            if let Some(columns) = batch.numbers(self.features.len()) {
                if decoder.push_numeric_columns(&columns, rows.len()) {
                    let tensors = decoder.finish(sig).map_err(|e| PredictError::Input(e.message().to_string()))?;
                    return Ok((rows.to_vec(), Some(tensors)));
                }
            }
        }
        let mut kept = Vec::with_capacity(rows.len());
        for &i in rows {
            let cells = (0..self.features.len()).map(|c| batch.cell(c, i as usize));
            match decoder.push_row(cells) {
                Ok(()) => kept.push(i),
                Err(e) => {
                    let why = match self.features.get(e.column) {
                        Some(col) => format!("column '{col}': {}", e.message),
                        None => e.message,
                    };
                    match self.on_error {
                        OnError::Fail => {
                            return Err(PredictError::Input(format!("{}, {why}", place(self.files, batch, i as usize))))
                        }
                        OnError::Skip => skipped.push((i, why)),
                    }
                }
            }
        }
        if kept.is_empty() {
            return Ok((kept, None));
        }
        let tensors = decoder.finish(sig).map_err(|e| PredictError::Input(e.message().to_string()))?;
        Ok((kept, Some(tensors)))
    }

    fn score(&self, batch: &Batch) -> Result<Scored> {
        let all: Vec<u32> = (0..batch.len() as u32).collect();
        let mut skipped = Vec::new();
        let (kept, tensors) = self.decode(batch, &all, &mut skipped)?;
        let Some(tensors) = tensors else {
            return Ok(Scored { kept, outputs: Vec::new(), contributions: None, skipped, segment: None });
        };
        let contributions = self.explain(&tensors, batch)?;
        let logged = self.log.map(|_| tensors.clone());
        let e = match self.model.infer(tensors) {
            Ok(outputs) => return self.scored(batch, kept, outputs, contributions, skipped, logged),
            Err(e) => e,
        };
        if self.on_error == OnError::Fail {
            return Err(PredictError::Model(format!(
                "{} to {}: {e}",
                place(self.files, batch, kept[0] as usize),
                batch.first_row + u64::from(*kept.last().expect("not empty"))
            )));
        }
        // Find the rows the model refuses: each alone.
        let mut good = Vec::new();
        for &i in &kept {
            let (one, tensors) = self.decode(batch, &[i], &mut skipped)?;
            if let Some(t) = tensors {
                match self.model.infer(t) {
                    Ok(_) => good.extend(one),
                    Err(e) => skipped.push((i, e.to_string())),
                }
            }
        }
        skipped.sort_by_key(|(i, _)| *i);
        if good.is_empty() {
            return Ok(Scored { kept: good, outputs: Vec::new(), contributions: None, skipped, segment: None });
        }
        let (kept, tensors) = self.decode(batch, &good, &mut skipped)?;
        let tensors = tensors.expect("these rows decoded before");
        let contributions = self.explain(&tensors, batch)?;
        let logged = self.log.map(|_| tensors.clone());
        let outputs = self.model.infer(tensors).map_err(|e| PredictError::Model(e.to_string()))?;
        self.scored(batch, kept, outputs, contributions, skipped, logged)
    }

    /// A batch scored; with logging, its rows encoded as a prediction-log segment.
    fn scored(
        &self,
        batch: &Batch,
        kept: Vec<u32>,
        outputs: Vec<Tensor>,
        contributions: Option<Tensor>,
        skipped: Vec<(u32, String)>,
        inputs: Option<HashMap<String, Tensor>>,
    ) -> Result<Scored> {
        let (Some((plan, objects)), Some(inputs)) = (self.log, inputs) else {
            return Ok(Scored { kept, outputs, contributions, skipped, segment: None });
        };
        let sig = self.model.signature();
        let mut inputs: Vec<(String, Tensor)> = inputs.into_iter().collect();
        inputs.sort_by_key(|(n, _)| sig.inputs.iter().position(|s| &s.name == n));
        let named = sig.outputs.iter().map(|s| s.name.clone()).zip(outputs.iter().cloned()).collect();
        let row_ids = if self.ids.is_empty() {
            kept.iter()
                .map(|&i| {
                    format!("{}:{}:{}", plan.run_id, self.first_file + batch.file, batch.first_row + u64::from(i))
                })
                .collect()
        } else {
            let columns = id_columns(batch, self.ids, self.features.len(), &kept);
            (0..kept.len())
                .map(|r| columns.iter().map(|(_, a)| output::text(a, r)).collect::<Vec<_>>().join("/"))
                .collect()
        };
        let encoded = plan.encode(inputs, named, row_ids).map_err(PredictError::Output)?;
        let staged = objects.stage_bytes(&encoded.bytes)?;
        let segment = plan.segment(staged.hash, &encoded);
        Ok(Scored { kept, outputs, contributions, skipped, segment: Some((staged, segment)) })
    }

    /// The rows' contributions, with `--explain`.
    fn explain(&self, tensors: &HashMap<String, Tensor>, batch: &Batch) -> Result<Option<Tensor>> {
        let Some(explainer) = self.explainer else { return Ok(None) };
        explainer
            .contributions(tensors)
            .map(Some)
            .map_err(|e| PredictError::Model(format!("{} onwards: contributions: {e}", place(self.files, batch, 0))))
    }
}

/// The id columns of the kept rows.
fn id_columns(batch: &Batch, ids: &[String], features: usize, kept: &[u32]) -> Vec<(String, ArrayRef)> {
    ids.iter()
        .enumerate()
        .map(|(k, name)| {
            let col = features + k;
            let array: ArrayRef = match &batch.rows {
                Rows::Arrow(b) => {
                    let indices = UInt32Array::from(kept.to_vec());
                    arrow_select_take(b.column(col), &indices)
                }
                Rows::Csv(records) => {
                    let mut s = StringBuilder::new();
                    for &i in kept {
                        s.append_value(records[i as usize].get(batch.positions[col]).unwrap_or(""));
                    }
                    Arc::new(s.finish())
                }
            };
            (name.clone(), array)
        })
        .collect()
}

/// The rows `indices` of `array` (all of them, in order, costs no copy).
fn arrow_select_take(array: &ArrayRef, indices: &UInt32Array) -> ArrayRef {
    if indices.len() == array.len() && indices.values().iter().enumerate().all(|(i, v)| *v as usize == i) {
        return array.clone();
    }
    arrow_select::take::take(array.as_ref(), indices, None).expect("indices are rows of the batch")
}

/// Score `req.input` with `req.model` into `req.out`, recorded as a run.
pub async fn predict(project: &Project, md: &Metadata, req: &Request, progress: &dyn Progress) -> Result<Report> {
    let started = Instant::now();
    let started_at = kairo_core::time::now_string();
    if req.batch_rows == 0 {
        return Err(PredictError::Input("--batch-rows must be at least 1".into()));
    }
    progress.loading(true);
    let loaded = load(project, md, &req.model, req.explain, req.log).await;
    progress.loading(false);
    let loaded = loaded?;
    let source = Source::of(project, &req.input).await?;
    let (files, format) = input::files(&source.path)?;
    let out_abs = std::path::absolute(&req.out).map_err(PredictError::io(&req.out))?;
    for f in &files {
        if std::path::absolute(f).ok().as_deref() == Some(out_abs.as_path()) {
            return Err(PredictError::Input(format!("{} is both the input and the output", req.out.display())));
        }
    }
    let (features, mut reader) = open_input(&files, format, req, &loaded.model, None)?;
    let total = reader.check(&req.id_columns)?;
    progress.total(total);
    if req.executor == Executor::Ray {
        if req.explain {
            return Err(PredictError::Input(
                "--explain is not available with --executor ray yet: score locally for contributions".into(),
            ));
        }
        if req.log && loaded.redactor.is_some() {
            return Err(PredictError::Input(format!(
                "models.{}.privacy applies to its prediction log, and its key stays on this machine: pass --no-log \
                 with --executor ray, or score locally",
                loaded.name
            )));
        }
    }

    let input = match source.version.clone() {
        Some(version) => version,
        None => input_version(project, &req.input, &files, recorded(project, &req.input))?,
    };
    let output_path = recorded(project, &req.out);
    let mut run = new_run(project.root(), req, &loaded, input.clone(), &output_path, started_at);
    // Inside a pipeline stage that names this model (a `predict:` stage, or `models:`), the
    // stage's run is the record — it holds the model version, the input and the output — and
    // the counts are logged on it. A stage that runs `kairo predict` without naming the model
    // gets this run recorded as usual.
    let stage_run = std::env::var("KAIRO_RUN_ID").ok().filter(|id| {
        !id.is_empty()
            && std::env::var_os("KAIRO_STAGE").is_some()
            && kairo_registry::pins::pinned(&req.model, &loaded.name).is_some()
    });
    if stage_run.is_none() {
        md.start_run(&run).await?;
    }
    let log_plan = req.log.then(|| log::LogPlan {
        name: loaded.name.clone(),
        version: loaded.version,
        run_id: stage_run.clone().unwrap_or_else(|| run.id.clone()),
        redactor: loaded.redactor.clone(),
    });
    let objects = project.objects()?;
    let logging = log_plan.as_ref().map(|plan| (plan, &objects));

    let mut shards = None;
    let outcome = match req.executor {
        Executor::Local => score_all(&mut reader, &features, &loaded, req, logging, progress, None),
        Executor::Ray => {
            let artifact = kairo_registry::artifact_of(md, &loaded.name, loaded.version).await?;
            let bytes = kairo_registry::version_bytes(project, &artifact)?;
            let job = ray::Job {
                project,
                req,
                model: format!("{}:{}", loaded.name, loaded.version),
                model_bytes: bytes,
                files: &files,
                input: &source.path,
                format,
                run_id: log_plan.as_ref().map(|p| p.run_id.clone()).unwrap_or_else(|| run.id.clone()),
                objects: &objects,
                progress,
            };
            tokio::task::block_in_place(|| ray::score(&job, &tokio::runtime::Handle::current())).map(|(counts, n)| {
                shards = Some(n);
                counts
            })
        }
    }
    .and_then(|counts| {
        let hash = kairo_store::objects::hash_file_streaming(&req.out)?;
        Ok((counts, hash))
    });
    let ((rows, scored, skipped, segments), output_hash) = match outcome {
        Ok(done) => done,
        Err(e) => {
            run.status =
                if matches!(e, PredictError::Interrupted(_)) { RunStatus::Interrupted } else { RunStatus::Failed };
            run.ended_at = Some(kairo_core::time::now_string());
            run.message = Some(e.to_string());
            if stage_run.is_none() {
                md.finish_run(&run, &[]).await?;
            }
            return Err(e);
        }
    };
    // The output is in place: now the monitors may see its rows (one transaction).
    md.add_segments(&segments).await?;
    let logged: u64 = segments.iter().map(|s| s.rows as u64).sum();
    let size = std::fs::metadata(&req.out).map(|m| m.len()).unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    run.status = RunStatus::Succeeded;
    run.ended_at = Some(kairo_core::time::now_string());
    run.outs =
        vec![PathVersion { path: output_path.clone(), hash: output_hash, kind: "file".into(), size, dataset: false }];
    run.metrics = BTreeMap::from([
        ("rows".to_string(), rows as f64),
        ("rows_scored".to_string(), scored as f64),
        ("rows_skipped".to_string(), skipped as f64),
        ("rows_logged".to_string(), logged as f64),
        ("seconds".to_string(), seconds),
    ]);
    run.exit_code = Some(0);
    match &stage_run {
        None => {
            md.finish_run(&run, &[]).await?;
        }
        Some(id) => {
            run.id = id.clone();
            let params = vec![
                ("model".to_string(), req.model.clone()),
                ("model_version".to_string(), loaded.version.to_string()),
                ("model_hash".to_string(), loaded.hash.to_hex()),
            ];
            let now = kairo_core::time::now_millis();
            let metrics = run
                .metrics
                .iter()
                .map(|(k, v)| kairo_core::tracking::MetricPoint {
                    key: k.clone(),
                    value: *v,
                    timestamp: now,
                    step: 0,
                    model_id: None,
                    dataset_name: None,
                    dataset_digest: None,
                })
                .collect();
            md.log_batch(id, &kairo_store::tracking::Batch { metrics, params, tags: Vec::new() }).await?;
        }
    }
    let skipped_file = (skipped > 0).then(|| recorded(project, &skipped_path(&req.out)));
    Ok(Report {
        run_id: run.id,
        model: loaded.name,
        version: loaded.version,
        alias: loaded.alias,
        model_hash: loaded.hash,
        input: input.path,
        input_hash: input.hash,
        input_dataset: input.dataset,
        files: files.len(),
        executor: req.executor,
        shards,
        output: output_path,
        output_hash,
        format: req.format,
        rows,
        scored,
        skipped,
        skipped_file,
        seconds,
        rows_per_second: if seconds > 0.0 { scored as f64 / seconds } else { 0.0 },
        logged,
    })
}

/// `scores.parquet` → `scores.parquet.skipped.csv`.
pub fn skipped_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".skipped.csv");
    out.with_file_name(name)
}

fn new_run(
    project_root: &Path,
    req: &Request,
    loaded: &Loaded,
    input: PathVersion,
    output_path: &str,
    started_at: String,
) -> Run {
    let mut run = Run::tracked(
        kairo_core::run::new_run_id(),
        "predict".into(),
        Project::actor(),
        Project::hostname(),
        started_at,
    );
    run.trigger = "manual".into();
    run.git = kairo_data::git::state(project_root);
    run.executor = match req.executor {
        Executor::Local => "local".into(),
        Executor::Ray => "ray".into(),
    };
    run.pid = std::process::id();
    run.cmd = req.command.clone();
    run.deps = vec![input, PathVersion::model(&loaded.name, loaded.version, loaded.hash)];
    let mut params = BTreeMap::new();
    params.insert("model".to_string(), serde_json::json!(req.model));
    params.insert("version".to_string(), serde_json::json!(loaded.version));
    if let Some(a) = &loaded.alias {
        params.insert("alias".to_string(), serde_json::json!(a));
    }
    params.insert("on_error".to_string(), serde_json::json!(req.on_error));
    if !req.id_columns.is_empty() {
        params.insert("id_columns".to_string(), serde_json::json!(req.id_columns));
    }
    run.params = BTreeMap::from([("predict".to_string(), params)]);
    run.env = EnvFingerprint {
        spec: format!("kairo {}", env!("CARGO_PKG_VERSION")),
        hash: Hash::of(env!("CARGO_PKG_VERSION").as_bytes()),
        key: BTreeMap::new(),
        facts: BTreeMap::new(),
    };
    run.out_paths = vec![output_path.to_string()];
    run
}

/// The columns to read of `files` for `model` (features, then id columns), checked against the
/// first file's header, and a reader of them (of row groups `row_groups` only, when given).
fn open_input(
    files: &[PathBuf],
    format: input::Format,
    req: &Request,
    model: &Model,
    row_groups: Option<std::ops::Range<usize>>,
) -> Result<(Vec<String>, Reader)> {
    let names = input::header(&files[0], format)?.names;
    if let Some(missing) = req.id_columns.iter().find(|c| !names.contains(c)) {
        return Err(PredictError::Input(format!(
            "{}: no id column '{missing}' (its columns: {})",
            files[0].display(),
            names.join(", ")
        )));
    }
    let features = feature_columns(&names, &req.id_columns, model, &files[0])?;
    for id in &req.id_columns {
        if features.contains(id) {
            return Err(PredictError::Input(format!(
                "'{id}' is a feature of the model; it cannot also be an id column"
            )));
        }
    }
    let mut columns = features.clone();
    columns.extend(req.id_columns.iter().cloned());
    let mut reader = Reader::new(files.to_vec(), format, columns, req.batch_rows);
    if let Some(groups) = row_groups {
        reader.only_row_groups(groups)?;
    }
    Ok((features, reader))
}

/// What scoring did: rows read, scored and skipped, and the prediction-log segments written.
type Counts = (u64, u64, u64, Vec<kairo_store::serving::Segment>);

/// Where a shard of a larger input stands in it, for `kairo predict --model-file`: what the
/// tasks of `--executor ray` run, with no project and no run of their own.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The model's ONNX file (the version `Request::model`, `NAME:VERSION`, names).
    pub model_file: PathBuf,
    /// The run the shard is part of (its rows' request ids in the prediction log).
    pub run_id: String,
    /// Only these row groups of the (one, Parquet) input.
    pub row_groups: Option<std::ops::Range<usize>>,
    /// The number of the shard's first file in the whole input.
    pub first_file: usize,
    /// With logging: where the prediction-log segments go (a store; listed in the report).
    pub segments: Option<PathBuf>,
}

impl Shard {
    /// Row groups as `--row-groups` takes them: `A..B`.
    pub fn row_groups_arg(groups: &std::ops::Range<usize>) -> String {
        format!("{}..{}", groups.start, groups.end)
    }

    /// `--row-groups A..B` read back.
    pub fn parse_row_groups(text: &str) -> Result<std::ops::Range<usize>> {
        let bad = || PredictError::Input(format!("--row-groups `{text}`: expected A..B (row group numbers from 0)"));
        let (from, to) = text.split_once("..").ok_or_else(bad)?;
        Ok(from.parse().map_err(|_| bad())?..to.parse().map_err(|_| bad())?)
    }
}

/// What a shard did (printed as JSON by `kairo predict --model-file … --json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardReport {
    pub rows: u64,
    pub scored: u64,
    pub skipped: u64,
    pub segments: Vec<ShardSegment>,
}

/// A prediction-log segment a shard wrote: its object in the shard's store, rows and time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardSegment {
    pub object: String,
    pub rows: i64,
    pub time_ms: i64,
}

/// Score a shard: `req.input` with the model in `shard.model_file` into `req.out` (nothing
/// written when no row could be scored; the skipped rows still are).
pub fn score_shard(req: &Request, shard: &Shard, progress: &dyn Progress) -> Result<ShardReport> {
    let Some((name, version)) = req.model.rsplit_once(':').and_then(|(n, v)| Some((n, v.parse::<i64>().ok()?))) else {
        return Err(PredictError::Input(format!(
            "--model-file needs the version as NAME:VERSION, not '{}'",
            req.model
        )));
    };
    if req.explain {
        return Err(PredictError::Input("--explain is not available with --model-file".into()));
    }
    progress.loading(true);
    let bytes = std::fs::read(&shard.model_file).map_err(PredictError::io(&shard.model_file));
    let model = bytes.and_then(|b| {
        let hash = Hash::of(&b);
        Ok((kairo_registry::load_model_to_score(b, &format!("{}", shard.model_file.display()))?, hash))
    });
    progress.loading(false);
    let (model, hash) = model?;
    let loaded = Loaded { name: name.to_string(), version, alias: None, hash, model, explainer: None, redactor: None };
    let (files, format) = input::files(&req.input)?;
    let (features, mut reader) = open_input(&files, format, req, &loaded.model, shard.row_groups.clone())?;
    progress.total(reader.check(&req.id_columns)?);
    let store = match &shard.segments {
        Some(dir) => Some(kairo_store::LocalObjects::open(dir, dir.join("tmp"))?.with_durability(false)),
        None => None,
    };
    let plan = log::LogPlan { name: loaded.name.clone(), version, run_id: shard.run_id.clone(), redactor: None };
    let logging = store.as_ref().map(|objects| (&plan, objects));
    let (rows, scored, skipped, segments) =
        score_all(&mut reader, &features, &loaded, req, logging, progress, Some(shard.first_file))?;
    let segments = segments
        .into_iter()
        .map(|s| ShardSegment { object: s.object.to_hex(), rows: s.rows, time_ms: s.start_ms })
        .collect();
    Ok(ShardReport { rows, scored, skipped, segments })
}

/// Read, score on every core and write in order; the output and the skipped-rows file appear
/// only when everything went through. With `logging`, each batch's rows are also stored as a
/// prediction-log segment, returned to be indexed. Returns (rows read, scored, skipped, segments).
/// No row scored is an error, except in a shard (`Some(its first file's number)`): the output
/// is then not written.
fn score_all(
    reader: &mut Reader,
    features: &[String],
    loaded: &Loaded,
    req: &Request,
    logging: Option<(&log::LogPlan, &kairo_store::LocalObjects)>,
    progress: &dyn Progress,
    shard: Option<usize>,
) -> Result<Counts> {
    let mut segments = Vec::new();
    // Segments written aside, committed (one sync) a group at a time.
    const COMMIT_SEGMENTS: usize = 64;
    let mut pending = Vec::new();
    let files = reader.files().to_vec();
    let output_names: Vec<String> = loaded.model.signature().outputs.iter().map(|s| s.name.clone()).collect();
    let in_flight = rayon::current_num_threads().max(1);
    let mut writer: Option<Writer> = None;
    let mut skipped_log: Option<SkippedLog> = None;
    let plan = Plan {
        features,
        model: &loaded.model,
        explainer: loaded.explainer.as_ref(),
        files: &files,
        on_error: req.on_error,
        ids: &req.id_columns,
        log: logging,
        first_file: shard.unwrap_or(0),
    };
    let (mut rows, mut scored, mut skipped) = (0u64, 0u64, 0u64);
    loop {
        let mut group = Vec::with_capacity(in_flight);
        while group.len() < in_flight {
            match reader.next_batch()? {
                Some(b) => group.push(b),
                None => break,
            }
        }
        if group.is_empty() {
            break;
        }
        let results: Vec<Result<Scored>> = group.par_iter().map(|batch| plan.score(batch)).collect();
        for (batch, result) in group.iter().zip(results) {
            let mut s = result?;
            if let (Some((staged, segment)), Some((_, objects))) = (s.segment.take(), logging) {
                pending.push(staged);
                segments.push(segment);
                if pending.len() >= COMMIT_SEGMENTS {
                    objects.commit(std::mem::take(&mut pending))?;
                }
            }
            rows += batch.len() as u64;
            scored += s.kept.len() as u64;
            skipped += s.skipped.len() as u64;
            for (i, why) in &s.skipped {
                let mut record =
                    vec![files[batch.file].display().to_string(), (batch.first_row + u64::from(*i)).to_string()];
                record.extend(
                    id_columns(batch, &req.id_columns, features.len(), &[*i]).iter().map(|(_, a)| output::text(a, 0)),
                );
                record.push(why.clone());
                let log = match &mut skipped_log {
                    Some(log) => log,
                    None => skipped_log.insert(SkippedLog::create(&req.out, &req.id_columns)?),
                };
                log.add(&record)?;
            }
            if s.kept.is_empty() {
                progress.scored(batch.len() as u64);
                continue;
            }
            let mut outputs = output::output_columns(&output_names, s.outputs, s.kept.len())?;
            if let (Some(c), Some(e)) = (s.contributions, &loaded.explainer) {
                outputs.extend(output::contribution_columns(&e.columns(), c)?);
            }
            let columns = Columns { ids: id_columns(batch, &req.id_columns, features.len(), &s.kept), outputs };
            if writer.is_none() {
                writer = Some(Writer::create(&req.out, req.format, &columns)?);
            }
            writer.as_mut().expect("created above").write(columns)?;
            progress.scored(batch.len() as u64);
        }
    }
    if let Some((_, objects)) = logging {
        objects.commit(pending)?;
    }
    if writer.is_none() && shard.is_some() {
        // A shard where nothing could be scored: only the list of skipped rows.
        if let Some(log) = skipped_log {
            log.publish()?;
        }
        return Ok((rows, 0, skipped, segments));
    }
    publish(writer, skipped_log, rows, req)?;
    Ok((rows, scored, skipped, segments))
}

/// Put the output and the list of skipped rows in place; when nothing was scored, only the
/// list (which says why), and an error.
fn publish(writer: Option<Writer>, skipped_log: Option<SkippedLog>, rows: u64, req: &Request) -> Result<()> {
    let Some(writer) = writer else {
        if let Some(log) = skipped_log {
            log.publish()?;
        }
        return Err(PredictError::Input(if rows == 0 {
            format!("{} has no rows to score", req.input.display())
        } else {
            format!("none of the {rows} rows could be scored; see the reasons in {}", skipped_path(&req.out).display())
        }));
    };
    writer.finish()?;
    match skipped_log {
        Some(log) => log.publish()?,
        // An earlier run's list of skipped rows does not describe this output.
        None => match std::fs::remove_file(skipped_path(&req.out)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PredictError::Io { path: skipped_path(&req.out), source: e })
            }
            _ => {}
        },
    }
    Ok(())
}

/// The rows left out and why, written as they are found (memory stays flat however many
/// there are) beside the output, and renamed into place with it.
struct SkippedLog {
    staged: output::Staged,
    writer: csv::Writer<std::io::BufWriter<std::fs::File>>,
}

impl SkippedLog {
    fn create(out: &Path, ids: &[String]) -> Result<SkippedLog> {
        let (staged, file) = output::Staged::new(&skipped_path(out))?;
        let mut log = SkippedLog { staged, writer: csv::Writer::from_writer(std::io::BufWriter::new(file)) };
        let mut header = vec!["file".to_string(), "row".to_string()];
        header.extend(ids.iter().cloned());
        header.push("reason".into());
        log.add(&header)?;
        Ok(log)
    }

    fn add(&mut self, record: &[String]) -> Result<()> {
        self.writer
            .write_record(record)
            .map_err(|e| PredictError::Output(format!("{}: {e}", self.staged.dest().display())))
    }

    fn publish(self) -> Result<()> {
        let dest = self.staged.dest().to_path_buf();
        let failed = |e: String| PredictError::Output(format!("{}: {e}", dest.display()));
        let buffered = self.writer.into_inner().map_err(|e| failed(e.to_string()))?;
        let file = buffered.into_inner().map_err(|e| failed(e.error().to_string()))?;
        self.staged.publish(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_groups_travel_as_text_and_back() {
        assert_eq!(Shard::parse_row_groups(&Shard::row_groups_arg(&(3..7))).unwrap(), 3..7);
        for bad in ["3", "a..b", "3..", "..4", "3-7"] {
            let err = Shard::parse_row_groups(bad).unwrap_err().to_string();
            assert!(err.contains("expected A..B"), "{bad}: {err}");
        }
    }

    #[test]
    fn skipped_rows_go_beside_the_output() {
        assert_eq!(skipped_path(Path::new("out/scores.parquet")), PathBuf::from("out/scores.parquet.skipped.csv"));
    }
}
