//! Kairo's domain vocabulary: content hashes, pointer files, directory manifests, project
//! configuration, model signatures, reference profiles, the registry's typed records and exit
//! codes.
//!
//! Architecture invariant: this crate does no I/O. It parses and renders bytes handed to it,
//! so every other crate can agree on formats without agreeing on storage.

pub mod actor;
pub mod auth;
pub mod automation;
pub mod condition;
pub mod config;
pub mod event;
pub mod exit;
pub mod hash;
pub mod kpi;
pub mod lang;
pub mod latency;
pub mod manifest;
pub mod pointer;
pub mod privacy;
pub mod profile;
pub mod run;
pub mod serving;
pub mod signature;
pub mod splitmix;
pub mod time;
pub mod tracking;
pub mod yaml;

pub use event::EventKind;
pub use hash::{Hash, HashParseError};
