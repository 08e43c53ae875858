//! `kairo.lock`: for each stage, the inputs and outputs of its last successful run, committed
//! to git like `dvc.lock`. Written only by `kairo run`, under a lock, read-modify-write, so two
//! processes finishing different stages both land.

use crate::error::{PipelineError, Result};
use crate::params::ParamValues;
use kairo_core::run::PathVersion;
use kairo_core::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// The registered model versions the stage read, by the reference it names them with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<crate::state::ModelDep>,
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

/// Identifies one version of kairo.lock on disk: every write is a rename of a new file.
type Stamp = (u64, u64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| (m.ino(), m.size(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
}

/// kairo.lock as this process last read or wrote it. Re-parsed only when the file on disk is
/// a different one (another process wrote it), so checking 100 stages parses it once.
pub struct LockCache {
    root: PathBuf,
    inner: Mutex<(Option<Stamp>, LockFile)>,
}

impl LockCache {
    pub fn open(root: &Path) -> Result<Self> {
        let st = stamp(&root.join(LOCK_FILE));
        let lock = LockFile::read(root)?;
        Ok(LockCache { root: root.to_path_buf(), inner: Mutex::new((st, lock)) })
    }

    fn refreshed(&self) -> Result<std::sync::MutexGuard<'_, (Option<Stamp>, LockFile)>> {
        let mut inner = self.inner.lock().map_err(|_| PipelineError::Other("kairo.lock cache poisoned".into()))?;
        let now = stamp(&self.root.join(LOCK_FILE));
        if now != inner.0 {
            *inner = (now, LockFile::read(&self.root)?);
        }
        Ok(inner)
    }

    /// The stage's entry as kairo.lock has it now.
    pub fn entry(&self, stage: &str) -> Result<Option<LockEntry>> {
        Ok(self.refreshed()?.1.stages.get(stage).cloned())
    }

    /// Set the entry of `stage`, dropping stages no longer in the pipeline (`keep`). Holds the
    /// file lock from the read to the rename, so concurrent writers never lose each other's entries.
    pub fn update(&self, stage: &str, entry: LockEntry, keep: &[String]) -> Result<()> {
        let locks = self.root.join(".kairo/locks");
        std::fs::create_dir_all(&locks).map_err(PipelineError::io(&locks))?;
        let _guard = kairo_store::lock::StoreLock::exclusive(&locks.join("kairo.lock.lock"))?;
        let mut inner = self.refreshed()?;
        let lock = &mut inner.1;
        lock.schema = SCHEMA.to_string();
        lock.stages.insert(stage.to_string(), entry);
        lock.stages.retain(|name, _| keep.contains(name));
        let text = kairo_core::yaml::to_string(&*lock).map_err(|e| PipelineError::LockFile(e.to_string()))?;
        let path = self.root.join(LOCK_FILE);
        let tmp = self.root.join(format!(".{LOCK_FILE}.tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(PipelineError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(PipelineError::io(&path))?;
        inner.0 = stamp(&path);
        Ok(())
    }
}

impl LockFile {
    pub fn read(root: &Path) -> Result<LockFile> {
        let path = root.join(LOCK_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(LockFile::default()),
            Ok(text) => {
                let lock: LockFile =
                    kairo_core::yaml::from_str(&text).map_err(|e| PipelineError::LockFile(e.to_string()))?;
                if lock.schema != SCHEMA {
                    return Err(PipelineError::LockFile(format!("schema `{}` is not `{SCHEMA}`", lock.schema)));
                }
                Ok(lock)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::default()),
            Err(e) => Err(PipelineError::Io { path, source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kairo.lock as Kairo writes it: serde_yaml's block layout, strings quoted where a YAML
    /// 1.1 reader (PyYAML, so DVC-style tools) would take them for something else.
    const WRITTEN: &str = r#"schema: kairo-lock/1
stages:
  train:
    cmd: python train.py --epochs 10 --learning-rate 0.001 --batch-size 64 --output models/model.onnx --metrics metrics.json
    env:
      spec: python:requirements.txt
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      key:
        empty: ""
        os: linux
        python: "3.11.2"
    deps:
    - path: data/train.csv
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      type: file
      size: 12
    - path: "yes"
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      type: dir
      size: 0
      dataset: true
    params:
      params.yaml:
        big: 1.0e+20
        layers:
        - 8
        - 4
        lr: 0.1
        name: "null"
        note: |-
          line1
          line2
    outs: []
    run: 019af1c2d3e47a1b8c9d0e1f2a3b4c5d
    key: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
"#;

    /// The same lock as Kairo wrote it with serde_yaml (before serde-saphyr): only the quoting
    /// differs (`path: yes` was a boolean to PyYAML, `1e20` a string).
    const WRITTEN_BY_SERDE_YAML: &str = r#"schema: kairo-lock/1
stages:
  train:
    cmd: python train.py --epochs 10 --learning-rate 0.001 --batch-size 64 --output models/model.onnx --metrics metrics.json
    env:
      spec: python:requirements.txt
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      key:
        empty: ''
        os: linux
        python: 3.11.2
    deps:
    - path: data/train.csv
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      type: file
      size: 12
    - path: yes
      hash: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
      type: dir
      size: 0
      dataset: true
    params:
      params.yaml:
        big: 1e20
        layers:
        - 8
        - 4
        lr: 0.1
        name: 'null'
        note: |-
          line1
          line2
    outs: []
    run: 019af1c2d3e47a1b8c9d0e1f2a3b4c5d
    key: af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
"#;

    #[test]
    fn lock_files_keep_their_format_and_old_ones_still_read() {
        let lock: LockFile = kairo_core::yaml::from_str(WRITTEN).unwrap();
        assert_eq!(kairo_core::yaml::to_string(&lock).unwrap(), WRITTEN);
        let old: LockFile = kairo_core::yaml::from_str(WRITTEN_BY_SERDE_YAML).unwrap();
        assert_eq!(kairo_core::yaml::to_string(&old).unwrap(), WRITTEN);
        let e = &old.stages["train"];
        assert_eq!(e.deps[1].path, "yes");
        assert_eq!(e.params["params.yaml"]["note"], "line1\nline2");
        assert_eq!(e.params["params.yaml"]["big"], 1e20);
    }
}
