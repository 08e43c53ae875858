//! Pointer files (`PATH.kairo`): the small, human-readable record of a tracked path's
//! dataset version, meant to be committed to git.

use crate::Hash;
use serde::{Deserialize, Serialize};

pub const POINTER_FORMAT: &str = "kairo-pointer/1";
/// Suffix appended to a tracked path to name its pointer file.
pub const POINTER_SUFFIX: &str = ".kairo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointerKind {
    File,
    Dir,
}

/// What a pointer file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    pub format: String,
    /// The tracked path, relative to the pointer file's directory (its file name).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: PointerKind,
    /// Object hash of a file, or root manifest hash of a directory: the dataset version id.
    pub hash: Hash,
    pub size: u64,
    pub files: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    #[error("{0}")]
    Syntax(#[from] crate::yaml::Error),
    #[error("pointer format `{0}` is not supported (expected `{POINTER_FORMAT}`)")]
    Format(String),
}

impl Pointer {
    pub fn new(path: String, kind: PointerKind, hash: Hash, size: u64, files: u64) -> Self {
        Pointer { format: POINTER_FORMAT.to_string(), path, kind, hash, size, files }
    }

    pub fn render(&self) -> String {
        let kind = match self.kind {
            PointerKind::File => "file",
            PointerKind::Dir => "dir",
        };
        format!(
            "# Kairo data pointer: commit this file to git; `kairo data checkout` restores the data.\n\
             format: {}\npath: {}\ntype: {kind}\nhash: {}\nsize: {}\nfiles: {}\n",
            self.format,
            yaml_string(&self.path),
            self.hash,
            self.size,
            self.files
        )
    }

    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let p: Pointer = crate::yaml::from_str(text)?;
        if p.format != POINTER_FORMAT {
            return Err(PointerError::Format(p.format));
        }
        Ok(p)
    }
}

/// Quote a string for YAML when it would otherwise be read back as something else.
fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        && !s.starts_with(['-', '.'])
        // YAML 1.1 readers (PyYAML, so DVC-style tools) take these for booleans.
        && !["y", "n", "yes", "no", "on", "off"].contains(&s.to_ascii_lowercase().as_str())
        && crate::yaml::from_str::<serde_json::Value>(s).ok() == Some(serde_json::Value::String(s.to_string()));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        for name in ["data", "weird name: yes", "123", "true", ".hidden", "ünï", "yes", "Off", "null", "~"] {
            let p = Pointer::new(name.into(), PointerKind::Dir, Hash::of(b"x"), 10, 2);
            let text = p.render();
            assert_eq!(Pointer::parse(&text).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn corrupt_pointer_is_an_error_with_location() {
        let err = Pointer::parse("format: kairo-pointer/1\npath: [unclosed\n").unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
        let err = Pointer::parse("format: kairo-pointer/1\npath: d\ntype: dir\nhash: nothex\nsize: 1\nfiles: 1\n")
            .unwrap_err();
        assert!(err.to_string().contains("BLAKE3"), "{err}");
    }
}
