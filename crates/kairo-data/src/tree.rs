//! A dataset version in memory: files and directories with their hashes, loaded from the
//! manifests in the store or built by a scan of the work tree; and the difference of two.

use crate::error::{DataError, Result};
use kairo_core::manifest::{Entry, EntryKind, Manifest};
use kairo_core::pointer::{Pointer, PointerKind};
use kairo_core::Hash;
use kairo_store::{LocalObjects, StoreError};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { hash: Hash, size: u64, exec: bool },
    Dir { hash: Hash, manifest: Manifest, children: BTreeMap<String, Node> },
}

impl Node {
    pub fn hash(&self) -> Hash {
        match self {
            Node::File { hash, .. } | Node::Dir { hash, .. } => *hash,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Node::File { size, .. } => *size,
            Node::Dir { manifest, .. } => manifest.total_size(),
        }
    }

    pub fn files(&self) -> u64 {
        match self {
            Node::File { .. } => 1,
            Node::Dir { manifest, .. } => manifest.total_files(),
        }
    }

    pub fn kind(&self) -> PointerKind {
        match self {
            Node::File { .. } => PointerKind::File,
            Node::Dir { .. } => PointerKind::Dir,
        }
    }

    /// The manifest entry describing this node under `name`.
    pub fn entry(&self, name: &str) -> Entry {
        match self {
            Node::File { hash, size, exec } => {
                Entry { name: name.to_string(), kind: EntryKind::File, hash: *hash, size: *size, files: 1, exec: *exec }
            }
            Node::Dir { hash, manifest, .. } => Entry {
                name: name.to_string(),
                kind: EntryKind::Dir,
                hash: *hash,
                size: manifest.total_size(),
                files: manifest.total_files(),
                exec: false,
            },
        }
    }

    /// Every file below this node as (relative path, node); a file node yields itself with "".
    pub fn files_with_paths(&self) -> Vec<(String, &Node)> {
        let mut out = Vec::new();
        self.collect_files("", &mut out);
        out
    }

    fn collect_files<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Node)>) {
        match self {
            Node::File { .. } => out.push((prefix.to_string(), self)),
            Node::Dir { children, .. } => {
                for (name, child) in children {
                    child.collect_files(&join(prefix, name), out);
                }
            }
        }
    }

    /// Every object the version needs: file contents and directory manifests.
    pub fn object_hashes(&self, out: &mut Vec<Hash>) {
        out.push(self.hash());
        if let Node::Dir { children, .. } = self {
            for child in children.values() {
                child.object_hashes(out);
            }
        }
    }
}

pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Load the version a pointer names from the local store; a missing object is a `NeedPull`.
pub fn load_pointer(objects: &LocalObjects, rel: &str, pointer: &Pointer) -> Result<Node> {
    load(objects, rel, pointer.kind, pointer.hash, pointer.size)
}

pub fn load(objects: &LocalObjects, rel: &str, kind: PointerKind, hash: Hash, size: u64) -> Result<Node> {
    match kind {
        PointerKind::File => Ok(Node::File { hash, size, exec: false }),
        PointerKind::Dir => load_dir(objects, rel, hash),
    }
}

fn load_dir(objects: &LocalObjects, rel: &str, hash: Hash) -> Result<Node> {
    let bytes = objects.read(&hash).map_err(|e| match e {
        StoreError::Missing(hash) => DataError::NeedPull { path: rel.to_string(), hash },
        e => DataError::Store(e),
    })?;
    let manifest = Manifest::parse(&bytes).map_err(|e| {
        DataError::Store(StoreError::Remote { url: format!("manifest {hash}"), message: e.to_string() })
    })?;
    let mut children = BTreeMap::new();
    for e in manifest.entries() {
        let child = match e.kind {
            EntryKind::File => Node::File { hash: e.hash, size: e.size, exec: e.exec },
            EntryKind::Dir => load_dir(objects, &join(rel, &e.name), e.hash)?,
        };
        children.insert(e.name.clone(), child);
    }
    Ok(Node::Dir { hash, manifest, children })
}

/// Files added, removed and modified between two versions (paths relative to the tracked path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

pub fn diff(old: &Node, new: &Node) -> Diff {
    let mut d = Diff::default();
    diff_into("", old, new, &mut d);
    d.added.sort();
    d.removed.sort();
    d.modified.sort();
    d
}

fn diff_into(prefix: &str, old: &Node, new: &Node, d: &mut Diff) {
    if old.hash() == new.hash() && old.kind() == new.kind() {
        if let (Node::File { exec: a, .. }, Node::File { exec: b, .. }) = (old, new) {
            if a != b {
                d.modified.push(prefix.to_string());
            }
        }
        return;
    }
    match (old, new) {
        (Node::Dir { children: a, .. }, Node::Dir { children: b, .. }) => {
            for (name, o) in a {
                let path = join(prefix, name);
                match b.get(name) {
                    Some(n) => diff_into(&path, o, n, d),
                    None => d.removed.extend(o.files_with_paths().into_iter().map(|(p, _)| join_rel(&path, &p))),
                }
            }
            for (name, n) in b {
                if !a.contains_key(name) {
                    let path = join(prefix, name);
                    d.added.extend(n.files_with_paths().into_iter().map(|(p, _)| join_rel(&path, &p)));
                }
            }
        }
        (Node::File { .. }, Node::File { .. }) => d.modified.push(prefix.to_string()),
        (o, n) => {
            d.removed.extend(o.files_with_paths().into_iter().map(|(p, _)| join_rel(prefix, &p)));
            d.added.extend(n.files_with_paths().into_iter().map(|(p, _)| join_rel(prefix, &p)));
        }
    }
}

fn join_rel(prefix: &str, rest: &str) -> String {
    if rest.is_empty() {
        prefix.to_string()
    } else {
        join(prefix, rest)
    }
}
