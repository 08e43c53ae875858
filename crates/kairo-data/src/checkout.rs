//! `kairo data checkout`: make the work tree match what the pointers say, by copying (or
//! reflinking) objects out of the store. Never a hard link: editing the work tree must not be
//! able to change the store. Refuses to discard data the store does not have unless forced.

use crate::error::{DataError, Result};
use crate::project::Project;
use crate::scan::{self, Mode, CHECKOUT_TMP_MARK};
use crate::tree::{self, join, Node};
use crate::NoProgress;
use kairo_core::Hash;
use kairo_store::{FileStat, LocalObjects, StoreError};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckoutReport {
    pub path: String,
    pub written: u64,
    pub removed: u64,
    pub unchanged: u64,
}

/// Check out the given tracked paths (all when empty). `fresh` names objects whose bytes this
/// process has just hashed on their way into the store (a pull's downloads): they are copied
/// out without being read back.
pub fn checkout(project: &Project, rels: &[String], force: bool, fresh: &HashSet<Hash>) -> Result<Vec<CheckoutReport>> {
    let rels = if rels.is_empty() { project.tracked_paths()? } else { rels.to_vec() };
    let objects = &project.objects()?;
    let _lock = project.lock_shared()?;
    let mut cache = project.stat_cache();
    let mut reports = Vec::new();
    for rel in rels {
        reports.push(checkout_one(project, objects, &mut cache, &rel, force, fresh)?);
    }
    cache.save()?;
    Ok(reports)
}

fn checkout_one(
    project: &Project,
    objects: &LocalObjects,
    cache: &mut kairo_store::StatCache,
    rel: &str,
    force: bool,
    fresh: &HashSet<Hash>,
) -> Result<CheckoutReport> {
    let pointer = project.require_pointer(rel)?;
    let target = tree::load_pointer(objects, rel, &pointer)?;
    materialise(objects, cache, &project.abs(rel), rel, &target, force, fresh)
}

/// Make `abs` hold exactly the version `target` (files copied out of the store), touching only
/// what differs. `rel` names the path in reports and errors. Without `force`, refuses to discard
/// work-tree content the store does not have. Every copy is checked against its hash but those
/// of `fresh` objects (see [`checkout`]).
pub fn materialise(
    objects: &LocalObjects,
    cache: &mut kairo_store::StatCache,
    abs: &Path,
    rel: &str,
    target: &Node,
    force: bool,
    fresh: &HashSet<Hash>,
) -> Result<CheckoutReport> {
    let abs = abs.to_path_buf();
    let current = match scan::walk(&abs) {
        Ok(w) => Some(scan::scan(&w, Some(target), cache, Mode::Hash, &NoProgress)?.root),
        Err(DataError::PathMissing(_)) => None,
        Err(e) => return Err(e),
    };

    let want: BTreeMap<String, &Node> = target.files_with_paths().into_iter().collect();
    let have: BTreeMap<String, Hash> = current
        .as_ref()
        .map(|c| c.files_with_paths().into_iter().map(|(p, n)| (p, n.hash())).collect())
        .unwrap_or_default();

    let mut writes = Vec::new();
    let mut unchanged = 0;
    for (p, node) in &want {
        match have.get(p) {
            Some(h) if *h == node.hash() => {
                unchanged += 1;
                set_exec(&abs_of(&abs, p), node)?;
            }
            _ => writes.push((p.clone(), *node)),
        }
    }
    let removals: Vec<&String> = have.keys().filter(|p| !want.contains_key(*p)).collect();

    // Nothing is touched until we know every object is here and nothing unsaved would be lost.
    for (p, node) in &writes {
        if !objects.contains(&node.hash()) {
            return Err(DataError::NeedPull { path: join(rel, p), hash: node.hash() });
        }
    }
    if !force {
        let lost: Vec<String> = writes
            .iter()
            .map(|(p, _)| p)
            .chain(removals.iter().copied())
            .filter(|p| have.get(*p).is_some_and(|h| !objects.contains(h)))
            .map(|p| if p.is_empty() { rel.to_string() } else { join(rel, p) })
            .collect();
        if !lost.is_empty() {
            return Err(DataError::WouldLose { paths: lost });
        }
    }

    for p in &removals {
        let path = abs_of(&abs, p);
        fs::remove_file(&path).map_err(DataError::io(&path))?;
    }
    prepare_dirs(&abs, target)?;
    let written = writes
        .par_iter()
        .map(|(p, node)| write_file(objects, &abs_of(&abs, p), node, fresh))
        .collect::<Result<Vec<_>>>()?;
    for (stat, hash) in written {
        cache.insert(stat, hash);
    }
    Ok(CheckoutReport {
        path: rel.to_string(),
        written: writes.len() as u64,
        removed: removals.len() as u64,
        unchanged,
    })
}

fn abs_of(root: &Path, p: &str) -> std::path::PathBuf {
    if p.is_empty() {
        root.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Make the directory skeleton match the target: remove directories (now empty of tracked
/// files) that the target does not have, and create those it does.
fn prepare_dirs(abs: &Path, target: &Node) -> Result<()> {
    let mut dirs = BTreeSet::new();
    collect_dirs(target, "", &mut dirs);
    match target {
        Node::File { .. } => {
            if abs.is_dir() {
                remove_empty_tree(abs)?;
            }
        }
        Node::Dir { .. } => {
            if abs.exists() && !abs.is_dir() {
                fs::remove_file(abs).map_err(DataError::io(abs))?;
            }
            prune(abs, "", &dirs)?;
            for d in &dirs {
                let path = abs_of(abs, d);
                if path.exists() && !path.is_dir() {
                    fs::remove_file(&path).map_err(DataError::io(&path))?;
                }
                fs::create_dir_all(&path).map_err(DataError::io(&path))?;
            }
        }
    }
    Ok(())
}

fn collect_dirs(node: &Node, prefix: &str, out: &mut BTreeSet<String>) {
    if let Node::Dir { children, .. } = node {
        out.insert(prefix.to_string());
        for (name, child) in children {
            collect_dirs(child, &join(prefix, name), out);
        }
    }
}

fn prune(abs: &Path, rel: &str, keep: &BTreeSet<String>) -> Result<()> {
    let dir = abs_of(abs, rel);
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(DataError::io(&dir))?;
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let child = join(rel, &name);
        if keep.contains(&child) {
            prune(abs, &child, keep)?;
        } else {
            remove_empty_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Remove a directory tree that holds no files (only empty directories).
fn remove_empty_tree(path: &Path) -> Result<()> {
    for entry in fs::read_dir(path).map_err(DataError::io(path))? {
        let entry = entry.map_err(DataError::io(path))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_empty_tree(&entry.path())?;
        }
    }
    fs::remove_dir(path).map_err(DataError::io(path))
}

fn write_file(objects: &LocalObjects, dest: &Path, node: &Node, fresh: &HashSet<Hash>) -> Result<(FileStat, Hash)> {
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}{CHECKOUT_TMP_MARK}{}", std::process::id()));
    objects.copy_to(&node.hash(), &tmp, !fresh.contains(&node.hash())).map_err(|e| match e {
        StoreError::Io { source, .. } => DataError::Io { path: dest.to_path_buf(), source },
        e => DataError::Store(e),
    })?;
    set_exec(&tmp, node)?;
    fs::rename(&tmp, dest).map_err(DataError::io(dest))?;
    let meta = fs::metadata(dest).map_err(DataError::io(dest))?;
    Ok((FileStat::of(&meta), node.hash()))
}

fn set_exec(path: &Path, node: &Node) -> Result<()> {
    let Node::File { exec, .. } = node else { return Ok(()) };
    let meta = fs::metadata(path).map_err(DataError::io(path))?;
    let mode = meta.permissions().mode();
    let wanted = if *exec { mode | 0o111 } else { mode & !0o111 };
    if wanted != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(wanted)).map_err(DataError::io(path))?;
    }
    Ok(())
}
