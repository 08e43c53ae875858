//! `kairo data add`: store a file or directory and record its version.

use crate::error::{DataError, Result};
use crate::project::Project;
use crate::scan::{self, Mode};
use crate::snapshot;
use crate::tree;
use crate::{git, gitignore, Progress};
use kairo_core::pointer::{Pointer, PointerKind};
use kairo_core::Hash;
use kairo_store::metadata::NewDatasetVersion;

/// What `add` did for one path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddReport {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: PointerKind,
    pub hash: Hash,
    pub size: u64,
    pub files: u64,
    /// Files read and hashed (the others were vouched for by the stat cache).
    pub files_hashed: u64,
    pub objects_stored: u64,
    pub bytes_stored: u64,
    /// False when the path already had this version.
    pub changed: bool,
}

/// Track `rel` (project-relative): store its contents, write `rel.kairo`, ignore `rel` in git,
/// and record the version with its event. Symbolic links are followed only within the project
/// (`follow_outside`: anywhere but into `.kairo/`); a file that keeps changing while it is read
/// is refused. Either refusal records nothing.
pub async fn add(project: &Project, rel: &str, follow_outside: bool, progress: &dyn Progress) -> Result<AddReport> {
    let abs = project.abs(rel);
    if std::fs::symlink_metadata(&abs).is_err() {
        return Err(DataError::PathMissing(rel.into()));
    }
    check_not_nested(project, rel)?;
    // Asking git (two processes) overlaps the hashing instead of following it.
    let root_dir = project.root().to_path_buf();
    let git_state = std::thread::spawn(move || (git::head_commit(&root_dir), git::branch(&root_dir)));
    let objects = project.objects()?;
    let _lock = project.lock_shared()?;
    let previous = project.read_pointer(rel)?;
    let prev_tree = previous.as_ref().and_then(|p| tree::load_pointer(&objects, rel, p).ok());

    // Loaded before the walk: entries are stamped with this moment (see the racy check).
    let mut cache = project.stat_cache();
    let taken_ns = kairo_store::stat_cache::now_ns();
    let walked = scan::walk_with(&abs, &scan::Links::storing(project, follow_outside)?)?;
    let scan = scan::scan(&walked, prev_tree.as_ref(), &mut cache, Mode::Store(&objects), progress)?;
    cache.save()?;

    let root = &scan.root;
    let file_name = rel.rsplit('/').next().unwrap_or(rel).to_string();
    let pointer = Pointer::new(file_name, root.kind(), root.hash(), root.size(), root.files());
    let changed = previous.as_ref() != Some(&pointer);
    {
        let _wt = project.lock_worktree()?;
        if changed {
            project.write_pointer(rel, &pointer)?;
        }
        gitignore::ignore_tracked(project.root(), rel)?;
    }
    snapshot::save(project, rel, &pointer, &walked, taken_ns);

    let metadata = project.metadata().await?;
    let (commit, branch) =
        git_state.join().map_err(|_| DataError::Git("the thread asking git for HEAD panicked".into()))?;
    let kind = match root.kind() {
        PointerKind::File => "file",
        PointerKind::Dir => "dir",
    };
    let new = NewDatasetVersion {
        path: rel,
        hash: root.hash(),
        kind,
        size: root.size(),
        files: root.files(),
        git_commit: commit.as_deref(),
        git_branch: branch.as_deref(),
    };
    metadata.record_dataset_version(&new, &Project::actor()).await?;
    metadata.close().await;

    Ok(AddReport {
        path: rel.to_string(),
        kind: root.kind(),
        hash: root.hash(),
        size: root.size(),
        files: root.files(),
        files_hashed: scan.files_hashed,
        objects_stored: scan.objects_stored,
        bytes_stored: scan.bytes_stored,
        changed,
    })
}

/// A path inside an already tracked directory belongs to that directory's version.
fn check_not_nested(project: &Project, rel: &str) -> Result<()> {
    let mut parent = rel;
    while let Some((p, _)) = parent.rsplit_once('/') {
        if project.pointer_path(p).is_file() {
            return Err(DataError::NestedTracking { path: rel.to_string(), parent: p.to_string() });
        }
        parent = p;
    }
    Ok(())
}
