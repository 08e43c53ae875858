//! The store lock: commands that add objects hold it shared, `gc` holds it exclusive, so an
//! object written by a running `add` is never collected before its pointer exists.

use crate::error::{Result, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// Held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    pub fn shared(path: &Path) -> Result<Self> {
        let file = open(path)?;
        file.lock_shared().map_err(StoreError::io(path))?;
        Ok(StoreLock { file })
    }

    /// The exclusive lock if nobody holds the file; `None` when somebody does.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = open(path)?;
        file.lock().map_err(StoreError::io(path))?;
        Ok(StoreLock { file })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the release explicit.
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(StoreError::io(path))
}
