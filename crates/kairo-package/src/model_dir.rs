//! A model directory: one registered version as files, for `kairo serve --model-dir` (the
//! entrypoint of a model image) and anything else that ships a model without its project.
//!
//! - `model.onnx` — the version's ONNX bytes;
//! - `kairo-model.json` — name, version, description, when it was registered, its servable
//!   facts (signature, metrics, reference profile, importance, in the stored shapes of
//!   [`kairo_store::artifact_document`]) and its lineage.
//!
//! [`install`] registers such a directory into a store (a fresh one, for a container) under the
//! same name and version number, checking every size before reading and the ONNX bytes against
//! the hash the document names.

use std::path::Path;

use kairo_core::serving::VersionArtifact;
use kairo_core::Hash;
use kairo_store::registry::NewModelVersion;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::{io, PackageError, Result};

pub const DOCUMENT: &str = "kairo-model.json";
pub const ONNX: &str = "model.onnx";
/// The largest `kairo-model.json` read (profiles of wide data run to a few MiB).
pub const MAX_DOCUMENT: u64 = 64 << 20;
/// The largest ONNX file read.
pub const MAX_ONNX: u64 = 4 << 30;

/// One version as it is packaged.
#[derive(Debug, Clone)]
pub struct Packaged {
    pub name: String,
    pub version: i64,
    pub description: String,
    pub created_ms: i64,
    pub artifact: VersionArtifact,
    /// `run`, `commit`, `dirty`, `data` (path → hash), `environment` (hash), `source`.
    pub lineage: Value,
}

/// `kairo-model.json`: keys sorted, so the same version always gives the same bytes.
pub fn document(p: &Packaged) -> Result<Vec<u8>> {
    let artifact = kairo_store::artifact_document(&p.artifact).map_err(|e| PackageError::Invalid(e.to_string()))?;
    let doc = json!({
        "kairo_model": 1,
        "name": p.name,
        "version": p.version,
        "description": p.description,
        "created_ms": p.created_ms,
        "artifact": artifact,
        "lineage": p.lineage,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| PackageError::Invalid(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path).map_err(io(path.display()))?.len();
    if size > limit {
        return Err(PackageError::Invalid(format!(
            "{}: {size} bytes, more than the {limit} a {what} may have",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io(path.display()))
}

/// Read a model directory: the document and the ONNX bytes, checked against each other.
pub fn read(dir: &Path) -> Result<(Packaged, Vec<u8>)> {
    let doc_path = dir.join(DOCUMENT);
    if !doc_path.is_file() {
        return Err(PackageError::Invalid(format!(
            "{} is not a model directory: it has no {DOCUMENT} (write one with `kairo models package NAME:VERSION --out-dir DIR`)",
            dir.display()
        )));
    }
    let text = bounded(&doc_path, MAX_DOCUMENT, "model document")?;
    let bad = |why: String| PackageError::Invalid(format!("{}: {why}", doc_path.display()));
    let doc: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if doc["kairo_model"] != 1 {
        return Err(bad("not a Kairo model document of format 1 (`kairo_model`: 1)".into()));
    }
    let name = doc["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| bad("`name` is missing".into()))?;
    let version =
        doc["version"].as_i64().filter(|v| *v >= 1).ok_or_else(|| bad("`version` must be 1 or more".into()))?;
    let artifact =
        kairo_store::artifact_from_document(name, version, &doc["artifact"]).map_err(|e| bad(e.to_string()))?;
    let onnx_path = dir.join(ONNX);
    let onnx = bounded(&onnx_path, MAX_ONNX.min(artifact.size), "model of this document")?;
    if onnx.len() as u64 != artifact.size || Hash::of(&onnx) != artifact.object {
        return Err(PackageError::Invalid(format!(
            "{}: its content is not the model {DOCUMENT} names (hash {}, {} bytes): the directory was altered",
            onnx_path.display(),
            artifact.object.short(),
            artifact.size
        )));
    }
    let packaged = Packaged {
        name: name.to_string(),
        version,
        description: doc["description"].as_str().unwrap_or_default().to_string(),
        created_ms: doc["created_ms"].as_i64().unwrap_or_default(),
        artifact,
        lineage: doc["lineage"].clone(),
    };
    Ok((packaged, onnx))
}

/// A registered version of `project` as it is packaged: its bytes (verified by the store), its
/// facts and its lineage — the run that produced it, that run's commit, data and environment.
pub async fn from_store(
    project: &kairo_data::Project,
    md: &Metadata,
    name: &str,
    version: i64,
) -> Result<(Packaged, Vec<u8>)> {
    let registry = |e: kairo_registry::RegistryError| PackageError::Invalid(e.to_string());
    let v = md.model_version(name, version).await.map_err(|e| PackageError::Invalid(e.to_string()))?;
    let artifact = kairo_registry::artifact_of(md, name, version).await.map_err(registry)?;
    let onnx = kairo_registry::version_bytes(project, &artifact).map_err(registry)?;
    let mut lineage = json!({"source": v.source, "run": v.run_id});
    if let Some(run) = &v.run_id {
        if let Ok(r) = md.run(run).await {
            lineage["commit"] = json!(r.git.commit);
            lineage["dirty"] = json!(r.git.dirty.is_some());
            lineage["environment"] = json!(format!("blake3:{}", r.env.hash.to_hex()));
            let data: serde_json::Map<String, Value> =
                r.deps.iter().map(|d| (d.path.clone(), json!(format!("blake3:{}", d.hash.to_hex())))).collect();
            lineage["data"] = Value::Object(data);
            lineage["stage"] = json!(r.stage);
        }
    }
    let p = Packaged {
        name: name.to_string(),
        version,
        description: v.description.clone(),
        created_ms: v.creation_ms,
        artifact,
        lineage,
    };
    Ok((p, onnx))
}

/// Write a model directory (the files [`read`] reads).
pub fn write(dir: &Path, p: &Packaged, onnx: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir.display()))?;
    std::fs::write(dir.join(ONNX), onnx).map_err(io(dir.join(ONNX).display()))?;
    std::fs::write(dir.join(DOCUMENT), document(p)?).map_err(io(dir.join(DOCUMENT).display()))
}

/// Register a model directory's version in `md` (objects into `objects`) under its own name
/// and number; a version already there (a restart on the same state) is left as it is.
pub async fn install(
    dir: &Path,
    objects: &kairo_store::LocalObjects,
    md: &Metadata,
    actor: &str,
) -> Result<(String, i64)> {
    let (p, onnx) = read(dir)?;
    let store = |e: kairo_store::StoreError| PackageError::Invalid(format!("installing {}: {e}", dir.display()));
    if md.version_artifact(&p.name, p.version).await.ok().flatten().is_some_and(|a| a.object == p.artifact.object) {
        return Ok((p.name, p.version));
    }
    let object = objects.put_bytes(&onnx).map_err(store)?;
    debug_assert_eq!(object, p.artifact.object);
    if md.registered_model(&p.name).await.is_err() {
        md.create_registered_model(&p.name, &p.description, &[], actor).await.map_err(store)?;
    }
    md.continue_numbering_after(&p.name, p.version - 1).await.map_err(store)?;
    let new = NewModelVersion {
        name: p.name.clone(),
        source: format!("model-dir:{}", dir.display()),
        run_id: None,
        model_id: None,
        run_link: p.lineage["run"].as_str().unwrap_or_default().to_string(),
        description: p.description.clone(),
        tags: Vec::new(),
        user_id: actor.to_string(),
    };
    let registered = md.register_version(&new, &p.artifact).await.map_err(store)?;
    if registered.version != p.version {
        return Err(PackageError::Invalid(format!(
            "{} is version {} but the store already numbers {} past it (got {}): use a fresh --state-dir",
            dir.display(),
            p.version,
            p.name,
            registered.version
        )));
    }
    Ok((p.name, p.version))
}

/// The project `kairo serve --model-dir` serves from: made in `state` (or a new directory
/// under $TMPDIR), with the model directory's version installed under its own name and number.
pub async fn serve_project(dir: &Path, state: Option<&Path>) -> Result<(kairo_data::Project, String, i64)> {
    let state = state
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("kairo-serve-{}", std::process::id())));
    std::fs::create_dir_all(&state).map_err(io(format!("--state-dir {}", state.display())))?;
    let data = |e: kairo_data::DataError| PackageError::Invalid(format!("--state-dir {}: {e}", state.display()));
    let report = kairo_data::Project::init(&state).await.map_err(data)?;
    let project = kairo_data::Project::discover(&report.root).map_err(data)?;
    let md = project.metadata().await.map_err(data)?;
    let objects = project.objects().map_err(data)?;
    let installed = install(dir, &objects, &md, kairo_core::actor::ROLLOUT_GUARD).await;
    md.close().await;
    let (name, version) = installed?;
    Ok((project, name, version))
}
