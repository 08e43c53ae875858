//! `kairo data status`: how each tracked path differs from its recorded version.

use crate::error::Result;
use crate::project::Project;
use crate::scan::{self, Mode};
use crate::snapshot;
use crate::tree::{self, Node};
use crate::{DataError, NoProgress};
use kairo_core::Hash;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum State {
    Unchanged,
    /// Counts are None when the recorded version is not in the local store to compare against.
    Modified {
        added: Option<u64>,
        removed: Option<u64>,
        changed: Option<u64>,
    },
    Missing,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStatus {
    pub path: String,
    #[serde(flatten)]
    pub state: State,
    pub recorded: Hash,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Hash>,
}

/// Status of the given tracked paths (all tracked paths when empty).
pub fn status(project: &Project, rels: &[String]) -> Result<Vec<PathStatus>> {
    let rels = if rels.is_empty() { project.tracked_paths()? } else { rels.to_vec() };
    let mut cache = None;
    let mut out = Vec::with_capacity(rels.len());
    for rel in rels {
        let pointer = project.require_pointer(&rel)?;
        if snapshot::unchanged(project, &rel, &pointer) {
            out.push(PathStatus {
                path: rel,
                state: State::Unchanged,
                recorded: pointer.hash,
                current: Some(pointer.hash),
            });
            continue;
        }
        // Loaded before the walk: entries are stamped with this moment (see the racy check).
        let cache = cache.get_or_insert_with(|| project.stat_cache());
        let taken_ns = kairo_store::stat_cache::now_ns();
        let walked = match scan::walk(&project.abs(&rel)) {
            Ok(w) => w,
            Err(DataError::PathMissing(_)) => {
                out.push(PathStatus { path: rel, state: State::Missing, recorded: pointer.hash, current: None });
                continue;
            }
            Err(e) => return Err(e),
        };
        // Building the current tree from scratch (serialising its manifests) is cheaper than
        // loading the recorded one; that is only loaded when there is a difference to explain.
        let current = scan::scan(&walked, None, cache, Mode::Hash, &NoProgress)?.root;
        let state = if current.hash() == pointer.hash && current.kind() == pointer.kind {
            snapshot::save(project, &rel, &pointer, &walked, taken_ns);
            State::Unchanged
        } else {
            let objects = project.objects()?;
            modified(tree::load_pointer(&objects, &rel, &pointer).ok().as_ref(), &current)
        };
        out.push(PathStatus { path: rel, state, recorded: pointer.hash, current: Some(current.hash()) });
    }
    if let Some(cache) = &mut cache {
        cache.save()?;
    }
    Ok(out)
}

fn modified(recorded: Option<&Node>, current: &Node) -> State {
    match recorded {
        Some(old) => {
            let d = tree::diff(old, current);
            State::Modified {
                added: Some(d.added.len() as u64),
                removed: Some(d.removed.len() as u64),
                changed: Some(d.modified.len() as u64),
            }
        }
        None => State::Modified { added: None, removed: None, changed: None },
    }
}
