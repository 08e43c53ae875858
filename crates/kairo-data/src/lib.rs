//! Dataset versioning, DVC-style but faster: track a file or directory with `add`, record its
//! version in a small pointer file for git, and `status`, `checkout`, `push`, `pull`, `log`,
//! `diff`, `gc` and `verify` it.
//!
//! A directory version is a Merkle tree of per-directory manifests stored as objects; a stat
//! cache means unchanged files are never read again, and an unchanged subtree keeps its
//! manifest hash without being re-serialised.
//!
//! Architecture invariant: this crate reaches storage only through `kairo-store` and git only
//! through the `git` command line (module `git`). It knows nothing about pipelines, models, HTTP
//! or terminals (progress is reported through the [`Progress`] trait).

pub mod add;
pub mod checkout;
pub mod error;
pub mod gc;
pub mod git;
pub mod gitignore;
pub mod history;
pub mod project;
pub mod scan;
pub mod snapshot;
pub mod status;
pub mod transfer;
pub mod tree;
pub mod verify;

pub use error::DataError;
pub use project::Project;

/// Receives progress from long operations; the CLI draws a bar, tests ignore it.
pub trait Progress: Sync {
    /// Total bytes expected (called once the scan knows).
    fn set_total(&self, _bytes: u64) {}
    /// Bytes and files processed since the last call.
    fn advance(&self, _bytes: u64, _files: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}
