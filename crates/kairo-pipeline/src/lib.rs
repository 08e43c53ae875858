//! Pipelines in the spirit of `dvc repro`, where every execution is a recorded run: stages in
//! `kairo.yaml` (`spec`), the graph between them (`dag`), parameter files (`params`), environment
//! fingerprints and set-up (`env`), staleness and cache keys (`state`), `kairo.lock`
//! (`lockfile`), execution with a run cache (`runner`), re-execution of a recorded run
//! (`reproduce`), run queries (`query`) and the lineage graph (`lineage`).
//!
//! Architecture invariant: storage is reached only through `kairo-store` and the work tree only
//! through `kairo-data`. This crate knows nothing about terminals (output goes through
//! [`runner::Console`]) or HTTP.

pub mod dag;
pub mod env;
pub mod error;
pub mod lineage;
pub mod lockfile;
pub mod params;
pub mod query;
pub mod ray;
pub mod reproduce;
pub mod runner;
pub mod spec;
pub mod state;
pub mod usage;

pub use error::PipelineError;
pub use spec::{Pipeline, Stage};

/// Load the pipeline of a project from its `kairo.yaml`.
pub fn load(project: &kairo_data::Project) -> error::Result<Pipeline> {
    let path = project.root().join(kairo_core::config::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(error::PipelineError::io(&path))?;
    Pipeline::parse(project.root(), &text)
}
