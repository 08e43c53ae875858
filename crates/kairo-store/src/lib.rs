//! Kairo's persistence: the metadata database (SQLite by default, PostgreSQL for teams, one
//! repository layer over both through sqlx), the local content-addressed object store, remote
//! object stores (S3-compatible or a directory, through `object_store`), the stat cache, and the
//! store lock.
//!
//! Architecture invariant: only this crate touches the database or the object stores. It knows
//! nothing about pipelines, models or HTTP; callers pass it domain values from `kairo-core`.

pub mod auth;
pub mod chain;
pub mod error;
mod gcs;
pub mod incidents;
pub mod kpi;
pub mod lock;
pub mod metadata;
pub mod objects;
pub mod pack;
pub mod registry;
pub mod remote;
pub mod replicas;
pub mod runs;
pub mod serving;
pub mod sftp;
pub mod sqlite_writer;
pub mod stat_cache;
pub mod tracking;
mod version_details;

pub use error::StoreError;
pub use metadata::Metadata;
pub use objects::{LocalObjects, ObjectSource, Staged};
pub use remote::{Collected, Remote};
pub use stat_cache::{FileStat, StatCache};
pub use version_details::{artifact_document, artifact_from_document};
