//! Parameter files (`params.yaml`, or any YAML/JSON file): read once per command, looked up by
//! dotted key. Only the named keys matter to a stage, as in DVC.

use crate::spec::ParamRef;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Param values of a stage: file → dotted key → value.
pub type ParamValues = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// Parsed params files of one project, loaded on first use.
pub struct Files {
    root: PathBuf,
    loaded: HashMap<String, std::result::Result<Value, String>>,
}

impl Files {
    pub fn new(root: &Path) -> Self {
        Files { root: root.to_path_buf(), loaded: HashMap::new() }
    }

    fn file(&mut self, file: &str) -> std::result::Result<&Value, String> {
        let root = &self.root;
        let loaded = self.loaded.entry(file.to_string()).or_insert_with(|| {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("params file `{file}` does not exist"),
                _ => format!("cannot read params file `{file}`: {e}"),
            })?;
            kairo_core::yaml::from_str(&text).map_err(|e| format!("params file `{file}` is not valid YAML/JSON: {e}"))
        });
        loaded.as_ref().map_err(Clone::clone)
    }

    /// The value at dotted `key` of `file`.
    pub fn value(&mut self, file: &str, key: &str) -> std::result::Result<Value, String> {
        let mut v = self.file(file)?;
        for part in key.split('.') {
            v = match v {
                Value::Object(m) => m.get(part),
                Value::Array(s) => part.parse::<usize>().ok().and_then(|i| s.get(i)),
                _ => None,
            }
            .ok_or_else(|| format!("param `{key}` is not in `{file}`"))?;
        }
        Ok(v.clone())
    }

    /// The values a stage reads, keyed by file then dotted key (a whole-file param contributes
    /// every leaf).
    pub fn values(&mut self, refs: &[ParamRef]) -> std::result::Result<ParamValues, String> {
        let mut out = ParamValues::new();
        for r in refs {
            let entry = out.entry(r.file.clone()).or_default();
            match &r.key {
                Some(key) => {
                    let v = self.value(&r.file, key)?;
                    entry.insert(key.clone(), v);
                }
                None => {
                    let v = self.file(&r.file)?.clone();
                    flatten("", &v, entry);
                }
            }
        }
        Ok(out)
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Set dotted keys in the YAML/JSON file at `path` (used to re-create a run's exact params).
/// Comments are not preserved; only call this on a scratch copy.
pub fn write_values(path: &Path, values: &BTreeMap<String, serde_json::Value>) -> std::io::Result<()> {
    let mut doc: Value = match std::fs::read_to_string(path) {
        Ok(text) => kairo_core::yaml::from_str(&text).map_err(std::io::Error::other)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Default::default()),
        Err(e) => return Err(e),
    };
    for (key, value) in values {
        let mut node = &mut doc;
        for part in key.split('.') {
            if !matches!(node, Value::Object(_)) {
                *node = Value::Object(Default::default());
            }
            let Value::Object(m) = node else { unreachable!("just made a mapping") };
            node = m.entry(part.to_string()).or_insert(Value::Null);
        }
        *node = value.clone();
    }
    let is_json = path.extension().is_some_and(|e| e == "json");
    let text = if is_json {
        serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?
    } else {
        kairo_core::yaml::to_string(&doc).map_err(std::io::Error::other)?
    };
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_whole_files_and_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("params.yaml"), "train:\n  lr: 0.1\n  layers: [8, 4]\nseed: 7\n").unwrap();
        let mut f = Files::new(dir.path());
        assert_eq!(f.value("params.yaml", "train.lr").unwrap(), Value::from(0.1));
        assert_eq!(f.value("params.yaml", "train.layers.1").unwrap(), Value::from(4));
        assert!(f.value("params.yaml", "train.lrr").unwrap_err().contains("train.lrr"));
        assert!(f.value("nope.yaml", "a").unwrap_err().contains("does not exist"));
        let all = f.values(&[ParamRef { file: "params.yaml".into(), key: None }]).unwrap();
        assert_eq!(all["params.yaml"].keys().collect::<Vec<_>>(), ["seed", "train.layers", "train.lr"]);

        let p = dir.path().join("params.yaml");
        write_values(&p, &BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.5))])).unwrap();
        let mut f = Files::new(dir.path());
        assert_eq!(f.value("params.yaml", "train.lr").unwrap(), Value::from(0.5));
        assert_eq!(f.value("params.yaml", "seed").unwrap(), Value::from(7));
    }
}
