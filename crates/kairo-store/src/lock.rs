//! The store lock: commands that add objects hold it shared, `gc` holds it exclusive, so an
//! object written by a running `add` is never collected before its pointer exists.

use crate::error::{Result, StoreError};
use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    pub fn shared(path: &Path) -> Result<Self> {
        let file = open(path)?;
        FileExt::lock_shared(&file).map_err(StoreError::io(path))?;
        Ok(StoreLock { file })
    }

    /// The exclusive lock if nobody holds the file; `None` when somebody does.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = open(path)?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(Some(StoreLock { file })),
            Ok(false) => Ok(None),
            Err(e) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = open(path)?;
        FileExt::lock_exclusive(&file).map_err(StoreError::io(path))?;
        Ok(StoreLock { file })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(StoreError::io(path))
}
