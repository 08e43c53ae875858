//! Errors of the pipeline crate. Each names the stage, path, run or file position involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{file}:{line}:{column}: {message}")]
    Spec { file: String, line: usize, column: usize, message: String },
    #[error("the stages form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("no stage named `{0}` in kairo.yaml{hint}", hint = if .1.is_empty() { String::new() } else { format!(" (stages: {})", .1.join(", ")) })]
    UnknownStage(String, Vec<String>),
    #[error("kairo.lock: {0} (it is written by `kairo run`; delete it to start over)")]
    LockFile(String),
    #[error("environment of stage `{stage}`: {message}")]
    Env { stage: String, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Run(#[from] kairo_store::runs::RunLookupError),
    #[error("{0}")]
    Other(String),
}

impl PipelineError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PipelineError {
        let path = path.into();
        move |source| PipelineError::Io { path, source }
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
