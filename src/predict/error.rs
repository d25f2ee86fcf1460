//! Predictor errors: bad predictor files, shape mismatches, training failures.

use std::path::PathBuf;

/// An error loading, saving or training a predictor.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The file could not be read (the OS error is in the message, printed once).
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        error: std::io::Error,
    },
    /// The file could not be written.
    #[error("{path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        error: std::io::Error,
    },
    /// The file is not a valid moeplan predictor file.
    #[error("{path}: not a valid predictor file: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (missing header, wrong version, tensor of the wrong shape...).
        reason: String,
    },
    /// A trace's shape does not match the predictor's.
    #[error("trace shape {found} does not match the predictor's {expected}")]
    ShapeMismatch {
        /// The predictor's shape.
        expected: String,
        /// The trace's shape.
        found: String,
    },
    /// The arguments cannot work (look-ahead too large, too little data...).
    #[error("{0}")]
    Invalid(String),
    /// The training backend failed.
    #[error("training failed: {0}")]
    Backend(#[from] candle_core::Error),
}
