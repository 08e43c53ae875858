//! `kairo data verify`: re-hash every object in the store and check every tracked version is
//! complete.

use crate::error::Result;
use crate::project::Project;
use crate::tree;
use crate::DataError;
use kairo_core::Hash;
use kairo_store::StoreError;
use rayon::prelude::*;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub objects: u64,
    pub bytes: u64,
    /// Objects whose bytes no longer match their name.
    pub corrupt: Vec<Hash>,
    /// (tracked path, object) pairs the local store lacks.
    pub missing: Vec<(String, Hash)>,
    /// Entries in `.kairo/tmp`: staging directories of running commands, or left by an
    /// interrupted one (harmless; `gc` removes those older than an hour).
    pub staging_entries: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

pub fn verify(project: &Project) -> Result<VerifyReport> {
    let objects = project.objects()?;
    let all = objects.list()?;
    let results: Vec<(Hash, std::result::Result<u64, StoreError>)> =
        all.par_iter().map(|h| (*h, objects.verify(h))).collect();
    let mut report = VerifyReport { objects: all.len() as u64, ..Default::default() };
    for (h, r) in results {
        match r {
            Ok(n) => report.bytes += n,
            Err(StoreError::Corrupt { .. }) => report.corrupt.push(h),
            Err(e) => return Err(e.into()),
        }
    }
    for rel in project.tracked_paths()? {
        let pointer = project.require_pointer(&rel)?;
        match tree::load_pointer(&objects, &rel, &pointer) {
            Ok(node) => {
                let mut hashes = Vec::new();
                node.object_hashes(&mut hashes);
                report.missing.extend(hashes.into_iter().filter(|h| !objects.contains(h)).map(|h| (rel.clone(), h)));
            }
            Err(DataError::NeedPull { hash, .. }) => report.missing.push((rel.clone(), hash)),
            Err(DataError::Store(StoreError::Corrupt { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    report.staging_entries = std::fs::read_dir(project.store_dir().join("tmp")).map(|d| d.count() as u64).unwrap_or(0);
    Ok(report)
}
