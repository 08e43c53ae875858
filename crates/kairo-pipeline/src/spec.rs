//! The `stages:` section of `kairo.yaml`: parsed into [`Stage`]s, `foreach` groups expanded,
//! and every mistake reported as `kairo.yaml:LINE:COL: what is wrong`. Positions come from the
//! parser's spans: syntax and type errors carry them, and the spans of each stage's name, paths,
//! params and env are kept so that errors found later (a missing dependency, overlapping
//! outputs, an unknown param) point at what the user wrote.

use crate::error::{PipelineError, Result};
use crate::params;
use kairo_core::config::CONFIG_FILE;
use kairo_core::yaml::{self, Spanned};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// The default params file, as in DVC.
pub const PARAMS_FILE: &str = "params.yaml";

/// One stage after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    /// A list `cmd` is joined with ` && ` (stops at the first failure).
    pub cmd: String,
    pub deps: Vec<String>,
    pub params: Vec<ParamRef>,
    pub outs: Vec<Out>,
    pub metrics: Vec<Out>,
    pub env: EnvSpec,
    /// Run on every `kairo run` (also implied by having no dependencies and no models, as in DVC).
    pub always_changed: bool,
    /// Where the command runs: `None` follows `ray.default` in kairo.yaml.
    pub executor: Option<Executor>,
    /// What a Ray job of this stage reserves.
    pub resources: Resources,
    /// Registered models the stage reads (`NAME@ALIAS`, `NAME:VERSION`, `NAME`): the stage is
    /// stale when one of them now resolves to another version (an alias moved).
    pub models: Vec<String>,
    /// Made from a `predict:` block: it runs here (its command reads the project's registry and
    /// store), whatever `ray.default` says.
    pub predict: bool,
}

/// Where a stage's command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    Local,
    Ray,
}

/// `resources: {num_cpus, num_gpus, memory}` of a stage (for Ray's `entrypoint_*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub num_cpus: Option<f64>,
    pub num_gpus: Option<f64>,
    /// Bytes.
    pub memory: Option<u64>,
}

impl Stage {
    /// Outputs and metrics files: everything the stage writes.
    pub fn all_outs(&self) -> impl Iterator<Item = &Out> {
        self.outs.iter().chain(self.metrics.iter())
    }

    /// False when any output opts out of the store: such a stage never uses the run cache.
    pub fn cacheable(&self) -> bool {
        self.all_outs().all(|o| o.cache)
    }
}

/// A parameter the stage reads: one dotted key of a file, or the whole file (`key: None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParamRef {
    pub file: String,
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub path: String,
    /// Keep the previous output while the command runs (default: removed first).
    pub persist: bool,
    /// Store in the object store (default). `false` disables the run cache for the stage.
    pub cache: bool,
}

/// How the stage's process is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSpec {
    /// The host as it is; the fingerprint records OS, architecture and the interpreters used.
    Host,
    /// A virtual environment built from a lockfile (`requirements*.txt`, `uv.lock`, `pylock.toml`).
    Python { lockfile: String },
    /// A container image pinned by digest, run with docker or podman.
    Image { reference: String },
}

impl EnvSpec {
    pub fn label(&self) -> String {
        match self {
            EnvSpec::Host => "host".into(),
            EnvSpec::Python { lockfile } => format!("python:{lockfile}"),
            EnvSpec::Image { reference } => format!("image:{reference}"),
        }
    }

    /// The inverse of [`EnvSpec::label`] (for re-executing a recorded run).
    pub fn from_label(label: &str) -> Option<Self> {
        match label.split_once(':') {
            None if label == "host" => Some(EnvSpec::Host),
            Some(("python", f)) => Some(EnvSpec::Python { lockfile: f.into() }),
            Some(("image", r)) => Some(EnvSpec::Image { reference: r.into() }),
            _ => None,
        }
    }
}

/// The parsed pipeline, stages in file order.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
    /// Where each stage (by name before `@`) was written, to point at it in later errors.
    spans: HashMap<String, StageSpans>,
}

/// A 1-based line and column in kairo.yaml.
type Pos = (usize, usize);

/// Where the parts of one stage are in kairo.yaml, from the parser's spans.
#[derive(Debug, Clone, Default)]
struct StageSpans {
    /// The stage's name under `stages:`.
    at: Pos,
    /// The value of each field written (`cmd`, `deps`, `env`, `foreach`, `do`, ...).
    fields: Vec<(&'static str, Pos)>,
    /// Each path, param key and env value written, with its field.
    values: Vec<(&'static str, String, Pos)>,
}

impl StageSpans {
    fn record(name: &Spanned<String>, raw: &RawStage) -> Self {
        let mut s = StageSpans { at: yaml::position(name.referenced).unwrap_or((1, 1)), ..Default::default() };
        if let Some(c) = &raw.cmd {
            s.field("cmd", c);
        }
        for d in &raw.deps {
            s.value("deps", d, d.value.clone());
        }
        for p in &raw.params {
            match &p.value {
                RawParam::Key(k) => s.value("params", p, k.clone()),
                RawParam::File(map) => {
                    for (file, keys) in map {
                        s.value("params", p, file.clone());
                        for k in keys.iter().flatten() {
                            s.value("params", p, k.clone());
                        }
                    }
                }
            }
        }
        for (field, outs) in [("outs", &raw.outs), ("metrics", &raw.metrics)] {
            for o in outs {
                match &o.value {
                    RawOut::Path(path) => s.value(field, o, path.clone()),
                    RawOut::WithOptions(map) => map.keys().for_each(|path| s.value(field, o, path.clone())),
                }
            }
        }
        if let Some(e) = &raw.env {
            s.field("env", e);
            match &e.value {
                RawEnv::Name(n) => s.value("env", e, n.clone()),
                RawEnv::Map(m) => m.python.iter().chain(&m.image).for_each(|v| s.value("env", e, v.clone())),
            }
        }
        if let Some(f) = &raw.foreach {
            s.field("foreach", f);
            if let Foreach::Ref(r) = &f.value {
                s.value("foreach", f, r.clone());
            }
        }
        if let Some(d) = &raw.do_ {
            s.field("do", d);
        }
        if let Some(e) = &raw.executor {
            s.field("executor", e);
        }
        if let Some(p) = &raw.predict {
            s.field("predict", p);
            s.value("predict", p, p.value.model.clone());
        }
        for m in &raw.models {
            s.value("models", m, m.value.clone());
        }
        s
    }

    fn field<T>(&mut self, field: &'static str, v: &Spanned<T>) {
        if let Some(pos) = yaml::position(v.referenced) {
            if !self.fields.iter().any(|(f, _)| *f == field) {
                self.fields.push((field, pos));
            }
        }
    }

    fn value<T>(&mut self, field: &'static str, v: &Spanned<T>, text: String) {
        if let Some(pos) = yaml::position(v.referenced) {
            self.field(field, v);
            self.values.push((field, text, pos));
        }
    }

    /// Where `needle` (a value as written or as normalized, or a field name) is, preferring
    /// `field`; else the field, a `foreach` stage's `do:` template, or the stage's name.
    fn find(&self, field: Option<&str>, needle: Option<&str>) -> Pos {
        let field_pos = |f: &str| self.fields.iter().find(|(name, _)| *name == f).map(|(_, pos)| *pos);
        if let Some(n) = needle {
            let written = |text: &str| {
                let t = text.trim_end_matches('/');
                text == n || t.strip_prefix("./").unwrap_or(t) == n
            };
            let found = self
                .values
                .iter()
                .find(|(f, text, _)| field.is_none_or(|want| want == *f) && written(text))
                .or_else(|| self.values.iter().find(|(_, text, _)| written(text)));
            if let Some((_, _, pos)) = found {
                return *pos;
            }
            if let Some(pos) = field_pos(n) {
                return pos;
            }
        }
        field.and_then(field_pos).or_else(|| field_pos("do")).unwrap_or(self.at)
    }
}

impl Pipeline {
    /// Parse the stages of `kairo.yaml` (whose text is `text`) in project `root`.
    pub fn parse(root: &Path, text: &str) -> Result<Self> {
        let file: File = yaml::from_str(text).map_err(|e| yaml_error(CONFIG_FILE, &e))?;
        let mut pipeline = Pipeline::default();
        let mut params_cache = params::Files::new(root);
        for (name, raw) in file.stages.map(|s| s.0).unwrap_or_default() {
            pipeline.spans.entry(name.value.clone()).or_insert_with(|| StageSpans::record(&name, &raw));
            let name = name.value;
            check_name(&pipeline, &name)?;
            match (raw.foreach.as_ref().map(|f| f.value.clone()), raw.do_.as_ref().map(|d| d.value.clone())) {
                (None, None) => {
                    let stage = pipeline.build(&name, &name, raw)?;
                    pipeline.stages.push(stage);
                }
                (Some(items), Some(template)) => {
                    if raw.cmd.is_some() || raw.predict.is_some() || !raw.deps.is_empty() || !raw.outs.is_empty() {
                        return Err(pipeline.error(&name, None, "a `foreach` stage puts its fields under `do:`"));
                    }
                    let items = match items {
                        Foreach::Ref(s) => match template_ref(&s) {
                            Some(key) => {
                                let v = params_cache
                                    .value(PARAMS_FILE, key)
                                    .map_err(|m| pipeline.error(&name, Some(&s), &m))?;
                                match v {
                                    Value::Array(items) => Foreach::List(items),
                                    // A params map comes in key order (the params file is read untyped).
                                    Value::Object(map) => Foreach::Map(map.into_iter().collect()),
                                    _ => {
                                        return Err(pipeline.error(
                                            &name,
                                            Some(&s),
                                            &format!("`foreach`: param `{key}` is not a list or a map"),
                                        ))
                                    }
                                }
                            }
                            None => {
                                return Err(pipeline.error(
                                    &name,
                                    Some("foreach"),
                                    "`foreach` must be a list, a map or `${params.key}`",
                                ))
                            }
                        },
                        items => items,
                    };
                    for (suffix, vars) in
                        expand_items(&items).map_err(|m| pipeline.error(&name, Some("foreach"), &m))?
                    {
                        let full = format!("{name}@{suffix}");
                        let value = substitute(&template, &vars).map_err(|m| pipeline.error(&name, Some("do"), &m))?;
                        let raw: RawStage = serde_json::from_value(value).map_err(|e| {
                            pipeline.error(&name, Some("do"), &format!("stages.{name}.do: {}", hint(&e.to_string())))
                        })?;
                        if raw.foreach.is_some() || raw.do_.is_some() {
                            return Err(pipeline.error(&name, Some("do"), "`foreach` cannot be nested"));
                        }
                        let stage = pipeline.build(&full, &name, raw)?;
                        pipeline.stages.push(stage);
                    }
                }
                (Some(_), None) => {
                    return Err(pipeline.error(&name, Some("foreach"), "`foreach` needs a `do:` template"))
                }
                (None, Some(_)) => return Err(pipeline.error(&name, Some("do"), "`do` needs a `foreach:` list")),
            }
        }
        Ok(pipeline)
    }

    /// A pipeline of given stages (to re-execute a recorded run whose stage may be gone).
    pub fn from_stages(stages: Vec<Stage>) -> Self {
        Pipeline { stages, spans: HashMap::new() }
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    fn build(&self, name: &str, base: &str, mut raw: RawStage) -> Result<Stage> {
        let mut models = Vec::new();
        let predict = match raw.predict.take().map(|p| p.value) {
            Some(_) if raw.cmd.is_some() => {
                return Err(self.error(
                    base,
                    Some("predict"),
                    &format!(
                        "stage `{name}` has both `cmd` and `predict`: a predict stage runs `kairo predict` itself"
                    ),
                ))
            }
            Some(p) => Some(self.predict(base, p)?),
            None => None,
        };
        let mut cmd = match (raw.cmd.map(|c| c.value), &predict) {
            (_, Some(p)) => p.cmd.clone(),
            (Some(Cmd::One(c)), None) => c,
            (Some(Cmd::Many(cs)), None) => cs.join(" && "),
            (None, None) => String::new(),
        };
        if cmd.trim().is_empty() {
            return Err(self.error(base, None, &format!("stage `{name}` has no `cmd` (or `predict:`)")));
        }
        let mut deps = Vec::new();
        if let Some(p) = &predict {
            deps.push(p.input.clone());
            models.push(p.model.clone());
        }
        for d in raw.deps {
            let d = self.path(base, &d.value, "dependency")?;
            if !deps.contains(&d) {
                deps.push(d);
            }
        }
        for m in raw.models {
            if let Err(e) = kairo_registry::ModelRef::parse(&m.value) {
                return Err(self.error_in(base, Some("models"), Some(&m.value), &format!("stage `{name}`: {e}")));
            }
            if !models.contains(&m.value) {
                models.push(m.value);
            }
        }
        let mut params = Vec::new();
        for p in raw.params {
            match p.value {
                RawParam::Key(key) => params.push(ParamRef { file: PARAMS_FILE.into(), key: Some(key) }),
                RawParam::File(map) => {
                    for (file, keys) in map {
                        let file = self.path(base, &file, "params file")?;
                        match keys {
                            None => params.push(ParamRef { file, key: None }),
                            Some(keys) => {
                                params.extend(keys.into_iter().map(|k| ParamRef { file: file.clone(), key: Some(k) }))
                            }
                        }
                    }
                }
            }
        }
        let mut outs = self.outs(base, raw.outs)?;
        if let Some(p) = &predict {
            outs.insert(0, Out { path: p.out.clone(), persist: false, cache: true });
        }
        let metrics = self.outs(base, raw.metrics)?;
        let env = match raw.env.map(|e| e.value) {
            None => EnvSpec::Host,
            Some(RawEnv::Name(n)) if n == "host" => EnvSpec::Host,
            Some(RawEnv::Name(n)) => {
                return Err(self.error(
                    base,
                    Some(&n),
                    &format!(
                        "unknown env `{n}`: use `host`, `{{python: requirements.txt}}` or `{{image: NAME@sha256:...}}`"
                    ),
                ))
            }
            Some(RawEnv::Map(m)) => match (m.python, m.image) {
                (Some(lockfile), None) => EnvSpec::Python { lockfile: self.path(base, &lockfile, "lockfile")? },
                (None, Some(reference)) => {
                    if !crate::env::is_pinned_image(&reference) {
                        return Err(self.error(base, Some(&reference), &format!(
                            "image `{reference}` is not pinned: write it as NAME@sha256:<64 hex digits> so the environment cannot change under the same name"
                        )));
                    }
                    EnvSpec::Image { reference }
                }
                _ => return Err(self.error(base, Some("env"), "`env` takes exactly one of `python:` or `image:`")),
            },
        };
        let mut seen = std::collections::HashSet::new();
        for o in outs.iter().chain(metrics.iter()) {
            if !seen.insert(o.path.clone()) {
                return Err(self.error(
                    base,
                    Some(&o.path),
                    &format!("stage `{name}` lists output `{}` twice", o.path),
                ));
            }
            if deps.contains(&o.path) {
                return Err(self.error(
                    base,
                    Some(&o.path),
                    &format!("`{}` is both a dependency and an output of stage `{name}`", o.path),
                ));
            }
        }
        let executor = match raw.executor.as_ref().map(|e| e.value.as_str()) {
            None => None,
            Some("local") => Some(Executor::Local),
            // The command runs here (it reads the registry and the store); its rows are scored
            // by Ray tasks.
            Some("ray") if predict.is_some() => {
                cmd.push_str(" --executor ray");
                Some(Executor::Local)
            }
            Some("ray") => Some(Executor::Ray),
            Some(other) => {
                return Err(self.error(
                    base,
                    Some("executor"),
                    &format!("unknown executor `{other}`: use `local` or `ray`"),
                ))
            }
        };
        let resources = match raw.resources {
            None => Resources::default(),
            Some(r) => {
                let bad = |what: &str| self.error(base, Some("resources"), what);
                for (key, v) in [("num_cpus", r.num_cpus), ("num_gpus", r.num_gpus)] {
                    if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                        return Err(bad(&format!("resources.{key} must be a number of at least 0")));
                    }
                }
                let memory = match r.memory {
                    None => None,
                    Some(text) => Some(parse_bytes(&text).ok_or_else(|| {
                        bad(&format!("resources.memory `{text}` is not a size (e.g. 4GiB, 512MiB, 2000000000)"))
                    })?),
                };
                Resources { num_cpus: r.num_cpus, num_gpus: r.num_gpus, memory }
            }
        };
        Ok(Stage {
            name: name.to_string(),
            cmd,
            deps,
            params,
            outs,
            metrics,
            env,
            always_changed: raw.always_changed,
            executor,
            resources,
            models,
            predict: predict.is_some(),
        })
    }

    /// A `predict:` block: the `kairo predict` command it runs, checked as far as can be
    /// without the registry (the model reference's form, the paths, the options).
    fn predict(&self, base: &str, p: RawPredict) -> Result<PredictStage> {
        let bad = |needle: &str, m: &str| self.error_in(base, Some("predict"), Some(needle), m);
        kairo_registry::ModelRef::parse(&p.model).map_err(|e| bad(&p.model, &format!("predict.model: {e}")))?;
        let input = self.path(base, &p.input, "dependency")?;
        let out = self.path(base, &p.out, "output")?;
        if input == out {
            return Err(bad(&p.out, &format!("predict: `{out}` is both the input and the output")));
        }
        let mut cmd = vec!["kairo".to_string(), "predict".into(), shell_word(&p.model)];
        cmd.extend(["--input".into(), shell_word(&input), "--out".into(), shell_word(&out)]);
        for c in &p.id_columns {
            if c.is_empty() {
                return Err(bad("id_columns", "predict.id_columns: a column name cannot be empty"));
            }
            cmd.extend(["--id-column".into(), shell_word(c)]);
        }
        if let Some(f) = &p.format {
            if f != "parquet" && f != "csv" {
                return Err(bad(f, &format!("predict.format `{f}`: use `parquet` or `csv`")));
            }
            cmd.extend(["--format".into(), f.clone()]);
        }
        if let Some(e) = &p.on_error {
            if e != "fail" && e != "skip" {
                return Err(bad(e, &format!("predict.on_error `{e}`: use `fail` or `skip`")));
            }
            cmd.extend(["--on-error".into(), e.clone()]);
        }
        if let Some(n) = p.batch_rows {
            if n == 0 {
                return Err(bad("batch_rows", "predict.batch_rows must be at least 1"));
            }
            cmd.extend(["--batch-rows".into(), n.to_string()]);
        }
        if p.explain {
            cmd.push("--explain".into());
        }
        if p.log == Some(false) {
            cmd.push("--no-log".into());
        }
        Ok(PredictStage { cmd: cmd.join(" "), model: p.model, input, out })
    }

    fn outs(&self, base: &str, raw: Vec<Spanned<RawOut>>) -> Result<Vec<Out>> {
        let mut out = Vec::new();
        for o in raw {
            match o.value {
                RawOut::Path(p) => out.push(Out { path: self.path(base, &p, "output")?, persist: false, cache: true }),
                RawOut::WithOptions(map) => {
                    for (p, opts) in map {
                        let opts = opts.unwrap_or_default();
                        out.push(Out {
                            path: self.path(base, &p, "output")?,
                            persist: opts.persist,
                            cache: opts.cache.unwrap_or(true),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Validate a project-relative path written in a stage.
    fn path(&self, stage: &str, p: &str, what: &str) -> Result<String> {
        let trimmed = p.trim_end_matches('/');
        let bad = trimmed.is_empty()
            || trimmed.starts_with('/')
            || trimmed.split('/').any(|c| c == ".." || c.is_empty())
            || trimmed.starts_with(".kairo")
            || trimmed.starts_with(".git/")
            || trimmed == ".git";
        if bad {
            let field = match what {
                "dependency" => "deps",
                "output" => "outs",
                "params file" => "params",
                _ => "env",
            };
            return Err(self.error_in(
                stage,
                Some(field),
                Some(p),
                &format!("{what} `{p}` must be a relative path inside the project"),
            ));
        }
        Ok(trimmed.strip_prefix("./").unwrap_or(trimmed).to_string())
    }

    /// An error pointing at `needle` inside stage `stage` (or at the stage itself).
    pub fn error(&self, stage: &str, needle: Option<&str>, message: &str) -> PipelineError {
        self.error_in(stage, None, needle, message)
    }

    /// An error pointing at `needle` under the stage's `field` (e.g. a path in `deps:`).
    pub fn error_in(&self, stage: &str, field: Option<&str>, needle: Option<&str>, message: &str) -> PipelineError {
        let base = stage.split('@').next().unwrap_or(stage);
        let (line, column) = self.spans.get(base).map_or((1, 1), |s| s.find(field, needle));
        PipelineError::Spec { file: CONFIG_FILE.into(), line, column, message: message.to_string() }
    }
}

fn check_name(p: &Pipeline, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(p.error(
            name,
            None,
            &format!("stage name `{name}` may only use letters, digits, `_`, `-` and `.`"),
        ));
    }
    if p.stages.iter().any(|s| s.name == name || s.name.split('@').next() == Some(name)) {
        return Err(p.error(name, None, &format!("stage `{name}` is defined twice")));
    }
    Ok(())
}

fn yaml_error(file: &str, e: &yaml::Error) -> PipelineError {
    let (line, column) = e.location().unwrap_or((1, 1));
    PipelineError::Spec { file: file.into(), line, column, message: hint(e.message()) }
}

/// A deserializer's message with untagged-enum noise replaced by what the field accepts.
fn hint(message: &str) -> String {
    let hints = [
        ("untagged enum Cmd", "`cmd` must be a string or a list of strings"),
        ("untagged enum RawOut", "an output must be a path or `{path: {persist: bool, cache: bool}}`"),
        ("untagged enum RawParam", "a param must be a key (`train.lr`) or `{file.yaml: [keys]}`"),
        ("untagged enum RawEnv", "`env` must be `host`, `{python: LOCKFILE}` or `{image: NAME@sha256:...}`"),
    ];
    for (needle, hint) in hints {
        if let Some(i) = message.find("data did not match any variant of ") {
            if message.contains(needle) {
                return format!("{}{hint}", &message[..i]);
            }
        }
    }
    message.to_string()
}

/// `${a.b}` → `a.b`.
fn template_ref(s: &str) -> Option<&str> {
    s.trim().strip_prefix("${")?.strip_suffix('}').map(str::trim)
}

/// The items of a `foreach`: (name suffix, variables for `${item...}` / `${key}`).
/// One `foreach` item: the stage-name suffix and the template variables.
type ForeachItem = (String, BTreeMap<String, Value>);

fn expand_items(items: &Foreach) -> std::result::Result<Vec<ForeachItem>, String> {
    let mut out = Vec::new();
    match items {
        Foreach::List(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let suffix = match item {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => i.to_string(),
                };
                out.push((suffix, BTreeMap::from([("item".to_string(), item.clone())])));
            }
        }
        Foreach::Map(map) => {
            for (key, v) in map {
                let key = key.clone();
                out.push((
                    key.clone(),
                    BTreeMap::from([("item".to_string(), v.clone()), ("key".to_string(), Value::String(key))]),
                ));
            }
        }
        Foreach::Ref(_) => return Err("`foreach` must be a list or a map".into()),
    }
    if out.is_empty() {
        return Err("`foreach` is empty".into());
    }
    Ok(out)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Replace `${item}`, `${item.x.y}` and `${key}` in every string of `template`.
fn substitute(template: &Value, vars: &BTreeMap<String, Value>) -> std::result::Result<Value, String> {
    Ok(match template {
        Value::String(s) => Value::String(substitute_str(s, vars)?),
        Value::Array(seq) => {
            Value::Array(seq.iter().map(|v| substitute(v, vars)).collect::<std::result::Result<_, _>>()?)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(substitute_str(k, vars)?, substitute(v, vars)?);
            }
            Value::Object(out)
        }
        v => v.clone(),
    })
}

fn substitute_str(s: &str, vars: &BTreeMap<String, Value>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
        let expr = after[..end].trim();
        let mut parts = expr.split('.');
        let root = parts.next().unwrap_or_default();
        let mut value = vars.get(root).ok_or_else(|| {
            format!("`${{{expr}}}`: only `${{item}}`, `${{item.field}}` and `${{key}}` are known here")
        })?;
        for part in parts {
            value = value.get(part).ok_or_else(|| format!("`${{{expr}}}`: the item has no field `{part}`"))?;
        }
        out.push_str(&scalar_text(value).ok_or_else(|| format!("`${{{expr}}}` is not a scalar"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    stages: Option<Ordered<RawStage>>,
}

/// A YAML map read in file order, with where each key was written.
struct Ordered<T>(Vec<(Spanned<String>, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of stage names to stages")
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Spanned<String>, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    cmd: Option<Spanned<Cmd>>,
    #[serde(default)]
    deps: Vec<Spanned<String>>,
    #[serde(default)]
    params: Vec<Spanned<RawParam>>,
    #[serde(default)]
    outs: Vec<Spanned<RawOut>>,
    #[serde(default)]
    metrics: Vec<Spanned<RawOut>>,
    env: Option<Spanned<RawEnv>>,
    #[serde(default)]
    always_changed: bool,
    foreach: Option<Spanned<Foreach>>,
    #[serde(rename = "do")]
    do_: Option<Spanned<Value>>,
    #[allow(dead_code)]
    desc: Option<String>,
    executor: Option<Spanned<String>>,
    resources: Option<RawResources>,
    /// Batch scoring: the stage runs `kairo predict` (see [`RawPredict`]).
    predict: Option<Spanned<RawPredict>>,
    /// Registered models the command reads.
    #[serde(default)]
    models: Vec<Spanned<String>>,
}

/// `predict: {model, input, out, id_columns, format, on_error, batch_rows, explain, log}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredict {
    model: String,
    input: String,
    out: String,
    #[serde(default)]
    id_columns: Vec<String>,
    format: Option<String>,
    on_error: Option<String>,
    batch_rows: Option<usize>,
    #[serde(default)]
    explain: bool,
    /// Feed the scored rows to the model's prediction log (default true).
    log: Option<bool>,
}

/// A `predict:` block made into a stage's command, input, output and model.
struct PredictStage {
    cmd: String,
    model: String,
    input: String,
    out: String,
}

/// `text` as one shell word: as is when it needs no quoting, else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '=' | ','));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    /// `4GiB`, `512MiB`, `2G`, or bytes.
    memory: Option<serde_json::Value>,
}

/// `4GiB`, `512MiB`, `2GB`, `1.5G`, or a number of bytes.
fn parse_bytes(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let text = v.as_str()?.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = n * scale;
    (0.0..1e18).contains(&bytes).then_some(bytes as u64)
}

/// A `foreach`: a list, a map (kept in file order) or `${params.key}`.
#[derive(Clone)]
enum Foreach {
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
    Ref(String),
}

impl<'de> Deserialize<'de> for Foreach {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Foreach;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list, a map or `${params.key}`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Foreach, E> {
                Ok(Foreach::Ref(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Foreach, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Foreach::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Foreach, A::Error> {
                let mut items = Vec::new();
                while let Some((k, v)) = map.next_entry::<Value, Value>()? {
                    let key = scalar_text(&k)
                        .ok_or_else(|| serde::de::Error::custom("`foreach` map keys must be scalars"))?;
                    items.push((key, v));
                }
                Ok(Foreach::Map(items))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Cmd {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawParam {
    Key(String),
    File(BTreeMap<String, Option<Vec<String>>>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawOut {
    Path(String),
    WithOptions(BTreeMap<String, Option<OutOptions>>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutOptions {
    #[serde(default)]
    persist: bool,
    cache: Option<bool>,
    #[allow(dead_code)]
    desc: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEnv {
    Name(String),
    Map(EnvMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvMap {
    python: Option<String>,
    image: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        Pipeline::parse(Path::new("/nonexistent"), text)
    }

    #[test]
    fn stages_in_file_order_with_defaults() {
        let p = parse("stages:\n  b:\n    cmd: echo b\n  a:\n    cmd: [echo a, echo c]\n    deps: [x]\n    outs: [y, {z: {persist: true}}]\n    params: [train.lr, {p.json: null}]\n").unwrap();
        assert_eq!(p.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        let a = p.stage("a").unwrap();
        assert_eq!(a.cmd, "echo a && echo c");
        assert_eq!(a.outs[1], Out { path: "z".into(), persist: true, cache: true });
        assert_eq!(a.params[0], ParamRef { file: "params.yaml".into(), key: Some("train.lr".into()) });
        assert_eq!(a.params[1], ParamRef { file: "p.json".into(), key: None });
        assert_eq!(a.env, EnvSpec::Host);
    }

    #[test]
    fn executor_and_resources() {
        let p = parse("stages:\n  t:\n    cmd: x\n    executor: ray\n    resources: {num_cpus: 2, num_gpus: 0.5, memory: 4GiB}\n  l:\n    cmd: y\n").unwrap();
        let t = p.stage("t").unwrap();
        assert_eq!(t.executor, Some(Executor::Ray));
        assert_eq!(t.resources, Resources { num_cpus: Some(2.0), num_gpus: Some(0.5), memory: Some(4 << 30) });
        assert_eq!(p.stage("l").unwrap().executor, None, "follows ray.default");
        for (bad, says) in [
            ("executor: slurm", "unknown executor `slurm`"),
            ("resources: {num_cpus: -1}", "num_cpus must be a number of at least 0"),
            ("resources: {memory: lots}", "is not a size"),
            ("resources: {disk: 1}", "disk"),
        ] {
            let err = parse(&format!("stages:\n  t:\n    cmd: x\n    {bad}\n")).unwrap_err().to_string();
            assert!(err.contains(says) && err.starts_with("kairo.yaml:"), "{bad}: {err}");
        }
        for (text, bytes) in [("512MiB", 512 << 20), ("2G", 2_000_000_000), ("1.5GiB", 3 << 29), ("100", 100)] {
            assert_eq!(parse_bytes(&serde_json::json!(text)), Some(bytes), "{text}");
        }
        assert_eq!(parse_bytes(&serde_json::json!(7)), Some(7));
        assert_eq!(parse_bytes(&serde_json::json!("5 parsecs")), None);
    }

    #[test]
    fn a_predict_stage_on_ray_runs_here_and_scores_there() {
        let p =
            parse("stages:\n  s:\n    predict: {model: m@champion, input: a.csv, out: b.parquet}\n    executor: ray\n")
                .unwrap();
        let s = p.stage("s").unwrap();
        assert_eq!(s.cmd, "kairo predict m@champion --input a.csv --out b.parquet --executor ray");
        assert_eq!(s.executor, Some(Executor::Local));
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let err = parse("version: 1\nstages:\n  train:\n    cmd: x\n    outz: [a]\n").unwrap_err().to_string();
        assert!(err.starts_with("kairo.yaml:5:"), "{err}");
        assert!(err.contains("outz"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_paths_are_located() {
        let err = parse("stages:\n  train:\n    cmd: x\n    deps: 3\n").unwrap_err().to_string();
        assert!(err.starts_with("kairo.yaml:4:"), "{err}");
        let err = parse("stages:\n  train:\n    cmd: x\n    deps: [ok, ../secret]\n").unwrap_err().to_string();
        assert_eq!(err, "kairo.yaml:4:16: dependency `../secret` must be a relative path inside the project");
        let err = parse("stages:\n  train:\n    deps: [a]\n").unwrap_err().to_string();
        assert!(err.starts_with("kairo.yaml:2:3: stage `train` has no `cmd`"), "{err}");
        let err = parse("stages:\n  t:\n    cmd: x\n    env: {image: python:3.12}\n").unwrap_err().to_string();
        assert!(err.contains("not pinned") && err.starts_with("kairo.yaml:4:"), "{err}");
    }

    #[test]
    fn errors_point_at_the_value_from_the_parsers_spans() {
        // The same text earlier in the stage (a comment, `cmd`) is not what the error is about.
        let err =
            parse("stages:\n  t:\n    # was python:3.12\n    cmd: echo python:3.12\n    env: {image: python:3.12}\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("kairo.yaml:5:10: image `python:3.12` is not pinned"), "{err}");
        // Normalized paths (`./data/` → `data`) are found as written.
        let p = parse("stages:\n  a:\n    cmd: a\n    outs:\n      - \"./data/\"\n  b:\n    cmd: b\n    outs: [{data/x: {persist: true}}]\n")
            .unwrap();
        let err = p.error_in("a", Some("outs"), Some("data"), "m").to_string();
        assert_eq!(err, "kairo.yaml:5:9: m");
        let err = p.error_in("b", Some("outs"), Some("data/x"), "m").to_string();
        assert_eq!(err, "kairo.yaml:8:12: m");
        // Not written anywhere: the field, then the stage's name.
        assert_eq!(p.error_in("b", Some("outs"), Some("nope"), "m").to_string(), "kairo.yaml:8:12: m");
        assert_eq!(p.error_in("b", Some("deps"), Some("nope"), "m").to_string(), "kairo.yaml:6:3: m");
        // Stages expanded from `foreach` point at their `do:` template.
        let err = parse("stages:\n  fit:\n    foreach: [1]\n    do:\n      cmd: x\n      deps: [\"../${item}\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kairo.yaml:5:7: dependency `../1`"), "{err}");
    }

    #[test]
    fn foreach_expands_items_and_maps() {
        let p = parse("stages:\n  fit:\n    foreach: [1, 2]\n    do:\n      cmd: train --seed ${item}\n      outs: [\"model-${item}.bin\"]\n  ev:\n    foreach: {small: {n: 1}, big: {n: 9}}\n    do:\n      cmd: eval ${key} ${item.n}\n").unwrap();
        let names: Vec<_> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fit@1", "fit@2", "ev@small", "ev@big"]);
        assert_eq!(p.stages[1].outs[0].path, "model-2.bin");
        assert_eq!(p.stages[3].cmd, "eval big 9");
        let err = parse("stages:\n  fit:\n    foreach: [1]\n    do:\n      cmd: x ${itme}\n").unwrap_err().to_string();
        assert!(err.contains("itme"), "{err}");
    }

    #[test]
    fn env_labels_round_trip() {
        for e in [
            EnvSpec::Host,
            EnvSpec::Python { lockfile: "req.txt".into() },
            EnvSpec::Image { reference: "a@sha256:00".into() },
        ] {
            assert_eq!(EnvSpec::from_label(&e.label()), Some(e));
        }
    }
}
