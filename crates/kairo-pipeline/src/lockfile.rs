//! `kairo.lock`: for each stage, the inputs and outputs of its last successful run, committed
//! to git like `dvc.lock`. Written only by `kairo run`, under a lock, read-modify-write, so two
//! processes finishing different stages both land.

use crate::error::{PipelineError, Result};
use crate::params::ParamValues;
use kairo_core::run::PathVersion;
use kairo_core::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const LOCK_FILE: &str = "kairo.lock";
const SCHEMA: &str = "kairo-lock/1";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub schema: String,
    #[serde(default)]
    pub stages: BTreeMap<String, LockEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    pub cmd: String,
    pub env: LockEnv,
    #[serde(default)]
    pub deps: Vec<PathVersion>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: ParamValues,
    #[serde(default)]
    pub outs: Vec<PathVersion>,
    /// The run that produced these outputs.
    pub run: String,
    pub key: Hash,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEnv {
    pub spec: String,
    pub hash: Hash,
    #[serde(default)]
    pub key: BTreeMap<String, String>,
}

impl LockFile {
    pub fn read(root: &Path) -> Result<LockFile> {
        let path = root.join(LOCK_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(LockFile::default()),
            Ok(text) => {
                let lock: LockFile = serde_yaml::from_str(&text).map_err(|e| PipelineError::LockFile(e.to_string()))?;
                if lock.schema != SCHEMA {
                    return Err(PipelineError::LockFile(format!("schema `{}` is not `{SCHEMA}`", lock.schema)));
                }
                Ok(lock)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::default()),
            Err(e) => Err(PipelineError::Io { path, source: e }),
        }
    }

    /// Set the entry of `stage`, dropping stages no longer in the pipeline (`keep`).
    pub fn update(root: &Path, stage: &str, entry: LockEntry, keep: &[String]) -> Result<()> {
        let locks = root.join(".kairo/locks");
        std::fs::create_dir_all(&locks).map_err(PipelineError::io(&locks))?;
        let _guard = kairo_store::lock::StoreLock::exclusive(&locks.join("kairo.lock.lock"))?;
        let mut lock = LockFile::read(root)?;
        lock.schema = SCHEMA.to_string();
        lock.stages.insert(stage.to_string(), entry);
        lock.stages.retain(|name, _| keep.contains(name));
        let text = serde_yaml::to_string(&lock).map_err(|e| PipelineError::LockFile(e.to_string()))?;
        let path = root.join(LOCK_FILE);
        let tmp = root.join(format!(".{LOCK_FILE}.tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(PipelineError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(PipelineError::io(&path))
    }
}
