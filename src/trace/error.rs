//! Trace errors: every one names the file, the line (or row) and the field at fault.

use std::path::PathBuf;

/// What is wrong with one field of one record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Defect {
    #[error("expert id {id} out of range (model has {experts} experts)")]
    ExpertOutOfRange { id: i64, experts: usize },
    #[error("expert {id} appears twice in the same top-k")]
    RepeatedExpert { id: u16 },
    #[error("weight {value} is not finite")]
    NonFiniteWeight { value: f64 },
    #[error("weight {value} is outside [0, 1]")]
    WeightOutOfRange { value: f64 },
    #[error("truncated record: expected {expected}, found {found}")]
    Truncated { expected: String, found: String },
    #[error("token count {found} differs from {expected} in {reference}")]
    TokenCountMismatch {
        expected: usize,
        found: usize,
        reference: String,
    },
    #[error("empty: {0}")]
    Empty(String),
    #[error("cannot parse {text:?} as {what}")]
    Parse { text: String, what: &'static str },
    #[error("{0}")]
    Other(String),
}

/// An error reading or writing a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read (bad input: a missing or unreadable trace). The
    /// OS error is part of the message, not a separate cause, so it is printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The output could not be written.
    #[error("{path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// One field of one record is invalid. `line` is 1-based (a text line or a Parquet row).
    #[error("{path}:{line}: field `{field}`: {problem}")]
    Invalid {
        path: PathBuf,
        line: u64,
        field: String,
        problem: Defect,
    },
    /// The file or directory as a whole is unusable (missing layer file, unknown format, ...).
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: Defect },
}

impl TraceError {
    /// Builds an [`TraceError::Invalid`].
    pub fn invalid(
        path: impl Into<PathBuf>,
        line: u64,
        field: impl Into<String>,
        problem: Defect,
    ) -> Self {
        TraceError::Invalid {
            path: path.into(),
            line,
            field: field.into(),
            problem,
        }
    }

    /// Builds a [`TraceError::File`].
    pub fn file(path: impl Into<PathBuf>, problem: Defect) -> Self {
        TraceError::File {
            path: path.into(),
            problem,
        }
    }

    /// Builds a [`TraceError::Io`] (reading).
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        TraceError::Io {
            path: path.into(),
            error,
        }
    }

    /// Builds a [`TraceError::Write`].
    pub fn write(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        TraceError::Write {
            path: path.into(),
            error,
        }
    }
}
