//! A stage's inputs as they are now (dependency versions, param values, environment), its cache
//! key, and the reasons it is stale compared with its `kairo.lock` entry.

use crate::error::Result;
use crate::lockfile::LockEntry;
use crate::params::ParamValues;
use crate::spec::Stage;
use kairo_core::pointer::PointerKind;
use kairo_core::run::{EnvFingerprint, PathVersion};
use kairo_core::Hash;
use kairo_data::scan::{self, Mode};
use kairo_data::{DataError, NoProgress, Project};
use kairo_store::{LocalObjects, StatCache};
use std::path::Path;

/// What a stage would read if it ran now.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub deps: Vec<PathVersion>,
    /// Dependencies that do not exist.
    pub missing: Vec<String>,
    pub params: ParamValues,
    pub env: EnvFingerprint,
    /// The model versions the stage's `models` resolve to now.
    pub models: Vec<ModelDep>,
}

/// A model reference of a stage, resolved: the version it names now and that version's bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDep {
    /// As the stage writes it: `churn@champion`, `churn:3`, `churn`.
    pub reference: String,
    pub name: String,
    pub version: i64,
    /// The ONNX bytes' hash.
    pub hash: Hash,
}

impl ModelDep {
    /// Resolve `reference` in the registry.
    pub async fn resolve(md: &kairo_store::Metadata, reference: &str) -> Result<ModelDep> {
        let failed =
            |e: kairo_registry::RegistryError| crate::error::PipelineError::Other(format!("model `{reference}`: {e}"));
        let r = kairo_registry::ModelRef::parse(reference).map_err(failed)?;
        let version = r.resolve(md).await.map_err(failed)?;
        let artifact = kairo_registry::artifact_of(md, r.name(), version).await.map_err(failed)?;
        Ok(ModelDep { reference: reference.to_string(), name: r.name().to_string(), version, hash: artifact.object })
    }

    /// As a run records it among its dependencies.
    pub fn as_dependency(&self) -> PathVersion {
        PathVersion::model(&self.name, self.version, self.hash)
    }
}

/// The version of `rel` under `base`: a tracked dataset's pointer, or the file/directory hashed
/// (through the stat cache). With `store`, file contents and manifests are also stored.
pub fn version_of(
    project: &Project,
    base: &Path,
    rel: &str,
    cache: &mut StatCache,
    store: Option<&LocalObjects>,
) -> Result<Option<PathVersion>> {
    if base == project.root() {
        if let Some(p) = project.read_pointer(rel)? {
            return Ok(Some(PathVersion {
                path: rel.into(),
                hash: p.hash,
                kind: kind_name(p.kind).into(),
                size: p.size,
                dataset: true,
            }));
        }
    }
    // What a run stores follows the same link rules as `kairo data add` (within the run's
    // directory, never into the store); hashing alone follows any link.
    let links = match store {
        Some(_) => scan::Links::within(base, &project.store_dir(), false)?,
        None => scan::Links::Anywhere,
    };
    let walked = match scan::walk_with(&base.join(rel), &links) {
        Ok(w) => w,
        Err(DataError::PathMissing(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mode = match store {
        Some(objects) => Mode::Store(objects),
        None => Mode::Hash,
    };
    let root = scan::scan(&walked, None, cache, mode, &NoProgress)?.root;
    Ok(Some(PathVersion {
        path: rel.into(),
        hash: root.hash(),
        kind: kind_name(root.kind()).into(),
        size: root.size(),
        dataset: false,
    }))
}

pub fn kind_name(k: PointerKind) -> &'static str {
    match k {
        PointerKind::File => "file",
        PointerKind::Dir => "dir",
    }
}

pub fn kind_of(name: &str) -> PointerKind {
    if name == "dir" {
        PointerKind::Dir
    } else {
        PointerKind::File
    }
}

/// The run-cache key: everything that determines the outputs.
pub fn cache_key(stage: &Stage, inputs: &Inputs) -> Hash {
    let deps: Vec<(&str, String)> = inputs.deps.iter().map(|d| (d.path.as_str(), d.hash.to_hex())).collect();
    let outs: Vec<(&str, bool, bool)> = stage.all_outs().map(|o| (o.path.as_str(), o.persist, o.cache)).collect();
    let mut canonical = serde_json::json!({
        "cmd": stage.cmd, "deps": deps, "params": inputs.params, "env": inputs.env.hash.to_hex(), "outs": outs,
    });
    if !inputs.models.is_empty() {
        // Only then: the keys of stages without models stay what they were.
        let models: Vec<(&str, String)> =
            inputs.models.iter().map(|m| (m.reference.as_str(), m.hash.to_hex())).collect();
        canonical["models"] = serde_json::json!(models);
    }
    Hash::of(canonical.to_string().as_bytes())
}

/// Why the stage must run, in words; empty when it is up to date.
pub fn reasons(
    stage: &Stage,
    lock: Option<&LockEntry>,
    inputs: &Inputs,
    outs_now: &[(String, Option<Hash>)],
) -> Vec<String> {
    let mut why = Vec::new();
    for m in &inputs.missing {
        why.push(format!("dependency `{m}` is missing"));
    }
    let Some(lock) = lock else {
        why.push("never run".into());
        return why;
    };
    // Registered models count as dependencies: a stage that reads only a model is stale when
    // the reference resolves to another version, not on every run.
    if stage.always_changed || (stage.deps.is_empty() && stage.models.is_empty()) {
        why.push(if stage.always_changed {
            "always_changed is set".into()
        } else {
            "has no dependencies (always runs)".into()
        });
    }
    if lock.cmd != stage.cmd {
        why.push("cmd changed".into());
    }
    for d in &inputs.deps {
        match lock.deps.iter().find(|l| l.path == d.path) {
            Some(l) if l.hash == d.hash => {}
            Some(_) => why.push(format!("dep `{}` changed", d.path)),
            None => why.push(format!("dep `{}` added", d.path)),
        }
    }
    for l in &lock.deps {
        if !stage.deps.contains(&l.path) {
            why.push(format!("dep `{}` removed", l.path));
        }
    }
    for (file, values) in &inputs.params {
        let old = lock.params.get(file);
        for (k, v) in values {
            match old.and_then(|o| o.get(k)) {
                Some(ov) if ov == v => {}
                Some(ov) => why.push(format!("param `{k}` changed ({ov} -> {v})")),
                None => why.push(format!("param `{k}` added")),
            }
        }
    }
    for (file, values) in &lock.params {
        for k in values.keys() {
            if !inputs.params.get(file).is_some_and(|v| v.contains_key(k)) {
                why.push(format!("param `{k}` removed"));
            }
        }
    }
    if lock.env.hash != inputs.env.hash {
        let mut changed: Vec<&str> = inputs
            .env
            .key
            .iter()
            .filter(|(k, v)| lock.env.key.get(*k) != Some(v))
            .map(|(k, _)| k.as_str())
            .chain(lock.env.key.keys().filter(|k| !inputs.env.key.contains_key(*k)).map(String::as_str))
            .collect();
        changed.dedup();
        if lock.env.spec != inputs.env.spec {
            why.push(format!("environment changed ({} -> {})", lock.env.spec, inputs.env.spec));
        } else {
            why.push(format!("environment changed ({})", changed.join(", ")));
        }
    }
    for m in &inputs.models {
        match lock.models.iter().find(|l| l.reference == m.reference) {
            Some(l) if l.version == m.version && l.hash == m.hash => {}
            Some(l) if l.version != m.version => why.push(format!(
                "model `{}` now resolves to version {} (was version {})",
                m.reference, m.version, l.version
            )),
            Some(_) => why.push(format!("model `{}` version {} changed", m.reference, m.version)),
            None => why.push(format!("model `{}` added", m.reference)),
        }
    }
    for l in &lock.models {
        if !stage.models.contains(&l.reference) {
            why.push(format!("model `{}` removed", l.reference));
        }
    }
    for (path, now) in outs_now {
        match (lock.outs.iter().find(|o| &o.path == path), now) {
            (_, None) => why.push(format!("output `{path}` missing")),
            (Some(l), Some(h)) if l.hash != *h => why.push(format!("output `{path}` modified")),
            (None, Some(_)) => why.push(format!("output `{path}` added")),
            _ => {}
        }
    }
    why
}
