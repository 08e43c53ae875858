//! Directory manifests: one per directory, naming each child by content hash. A dataset
//! version of a directory is the hash of its root manifest, so the versions form a Merkle tree
//! and an unchanged subtree keeps its hash.

use crate::Hash;
use serde::{Deserialize, Serialize};

/// Tag written into every manifest so a manifest object is recognisable on its own.
pub const MANIFEST_FORMAT: &str = "kairo-manifest/1";
/// How every manifest's canonical bytes begin: enough to tell a manifest from other objects.
pub const MANIFEST_PREFIX: &str = r#"{"format":"kairo-manifest/1","#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
}

/// One child of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub hash: Hash,
    /// Bytes in the file, or in every file below the directory.
    pub size: u64,
    /// 1 for a file; files below a directory.
    pub files: u64,
    /// The owner-execute bit of a file, restored on checkout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    entries: Vec<Entry>,
}

/// Why bytes are not a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a Kairo manifest: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("manifest format `{0}` is not supported (expected `{MANIFEST_FORMAT}`)")]
    Format(String),
    #[error("manifest entries are not sorted and unique at `{0}`")]
    Order(String),
}

/// The children of one directory, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// Build from entries in any order; names must be unique.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Manifest { entries }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes())).ok().map(|i| &self.entries[i])
    }

    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    pub fn total_files(&self) -> u64 {
        self.entries.iter().map(|e| e.files).sum()
    }

    /// The canonical bytes: compact JSON with entries sorted by name, fields in a fixed order.
    /// Same entries, same bytes. Written by hand because it runs for every directory on every
    /// scan; `parse` reads it back with serde.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(64 + self.entries.len() * 140);
        out.extend_from_slice(br#"{"format":""#);
        out.extend_from_slice(MANIFEST_FORMAT.as_bytes());
        out.extend_from_slice(br#"","entries":["#);
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"name":"#);
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &e.name);
            let kind = match e.kind {
                EntryKind::File => "file",
                EntryKind::Dir => "dir",
            };
            let _ = write!(out, r#","type":"{kind}","hash":"{}","size":{},"files":{}"#, e.hash, e.size, e.files);
            if e.exec {
                out.extend_from_slice(br#","exec":true"#);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    pub fn hash(&self) -> Hash {
        Hash::of(&self.to_bytes())
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let doc: Document = serde_json::from_slice(bytes)?;
        if doc.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(doc.format));
        }
        for pair in doc.entries.windows(2) {
            if pair[0].name.as_bytes() >= pair[1].name.as_bytes() {
                return Err(ManifestError::Order(pair[1].name.clone()));
            }
        }
        Ok(Manifest { entries: doc.entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            hash: Hash::of(content),
            size: content.len() as u64,
            files: 1,
            exec: false,
        }
    }

    #[test]
    fn canonical_regardless_of_input_order() {
        let a = Manifest::new(vec![file("b", b"2"), file("a", b"1")]);
        let b = Manifest::new(vec![file("a", b"1"), file("b", b"2")]);
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(a.hash(), b.hash());
        let parsed = Manifest::parse(&a.to_bytes()).unwrap();
        assert_eq!(parsed, a);
        assert_eq!(parsed.get("b").unwrap().size, 1);
        assert!(parsed.get("c").is_none());
    }

    #[test]
    fn hand_written_bytes_equal_serde_output() {
        let mut exec = file("run \"me\".sh", b"#!");
        exec.exec = true;
        let dir =
            Entry { name: "sub".into(), kind: EntryKind::Dir, hash: Hash::of(b"m"), size: 7, files: 3, exec: false };
        let m = Manifest::new(vec![exec, dir, file("ü", b"x")]);
        let doc = Document { format: MANIFEST_FORMAT.into(), entries: m.entries().to_vec() };
        assert_eq!(m.to_bytes(), serde_json::to_vec(&doc).unwrap());
        assert!(m.to_bytes().starts_with(MANIFEST_PREFIX.as_bytes()));
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn rejects_unsorted_and_foreign_documents() {
        let bad = br#"{"format":"kairo-manifest/1","entries":[
            {"name":"b","type":"file","hash":"0000000000000000000000000000000000000000000000000000000000000000","size":1,"files":1},
            {"name":"a","type":"file","hash":"0000000000000000000000000000000000000000000000000000000000000000","size":1,"files":1}]}"#;
        assert!(matches!(Manifest::parse(bad), Err(ManifestError::Order(_))));
        assert!(matches!(Manifest::parse(br#"{"format":"x","entries":[]}"#), Err(ManifestError::Format(_))));
        assert!(Manifest::parse(b"not json").is_err());
    }
}
