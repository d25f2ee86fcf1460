//! Errors of a model directory or of what is asked of it (all bad input: exit code 3).

use std::path::PathBuf;

/// A model directory that cannot be used, or arguments that do not fit it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file of the directory is missing a field, a tensor, or has a wrong value.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field or tensor.
        message: String,
    },
    /// An argument that does not fit (scale out of range, a trace of another shape).
    #[error("{0}")]
    Args(String),
}
