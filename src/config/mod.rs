//! Model and hardware configurations (TOML under `configs/`); unknown or missing keys are errors.

mod hardware;
mod model;

pub use hardware::HardwareConfig;
pub use model::ModelConfig;

use std::path::{Path, PathBuf};

/// An error loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read (missing, unreadable, not UTF-8); the OS error is part of the
    /// message, not a separate cause, so it is printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or missing, or a value has the wrong type.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The values parse but are inconsistent.
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Reads and parses a TOML file into `T`, rejecting unknown keys (`T` uses `deny_unknown_fields`).
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: path.into(),
        error,
    })?;
    parse_toml(&text, path)
}

/// Parses TOML `text` (read from `path`, for messages) into `T`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string().trim_end().replace('\n', " "),
    })
}

/// Resolves a config argument: a path to a file, or a bare name looked up in `configs/<kind>/`
/// (relative to the working directory, then to the crate's source tree).
pub fn resolve(kind: &str, arg: &str) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.exists() || arg.contains('/') || arg.ends_with(".toml") {
        return p;
    }
    let rel = PathBuf::from("configs")
        .join(kind)
        .join(format!("{arg}.toml"));
    if rel.exists() {
        return rel;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
