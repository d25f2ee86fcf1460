//! Model and hardware configurations (TOML under `configs/`); unknown or missing keys are errors.

pub mod builtin;
mod hardware;
mod model;

pub use builtin::{Builtin, Kind};
pub use hardware::HardwareConfig;
pub use model::{MAX_LAYERS, ModelConfig};

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
    /// A name that is neither a file nor a built-in config.
    #[error(
        "no {kind} config called {name:?}: built in are {known} (`moeplan config list`); \
         anything else must be a path to a TOML file"
    )]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },
    /// The values parse but are inconsistent.
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Reads a config file's text.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: path.into(),
        error,
    })
}

/// Parses TOML `text` (from `origin`, for messages) into `T`, rejecting unknown keys (`T` uses
/// `deny_unknown_fields`).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.into(),
        message: e.to_string().trim_end().replace('\n', " "),
    })
}

/// Where a config argument points: a file, or a config built into the binary.
#[derive(Debug)]
pub enum Source {
    /// A TOML file given by path.
    File(PathBuf),
    /// A shipped config selected by name.
    Builtin(&'static Builtin),
}

/// Resolves a config argument: an existing file, or anything that looks like a path (contains
/// `/` or ends in `.toml`), is a file; otherwise it is the name of a built-in config.
pub fn resolve(kind: Kind, arg: &str) -> Result<Source, ConfigError> {
    let p = PathBuf::from(arg);
    if p.is_file() || arg.contains('/') || arg.ends_with(".toml") {
        return Ok(Source::File(p));
    }
    builtin::find(kind, arg)
        .map(Source::Builtin)
        .ok_or_else(|| ConfigError::Unknown {
            kind: kind.noun(),
            name: arg.into(),
            known: builtin::names(kind),
        })
}

/// Reads the config `arg` points to (see [`resolve`]) and parses it with `parse`.
fn load_arg<T>(
    kind: Kind,
    arg: &str,
    parse: impl FnOnce(&str, &Path) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    match resolve(kind, arg)? {
        Source::File(path) => parse(&read_text(&path)?, &path),
        Source::Builtin(b) => parse(b.text, &b.origin()),
    }
}

impl ModelConfig {
    /// Loads a model config by built-in name (`deepseek-v2-lite`) or path.
    pub fn from_arg(arg: &str) -> Result<Self, ConfigError> {
        load_arg(Kind::Model, arg, ModelConfig::parse)
    }
}

impl HardwareConfig {
    /// Loads a hardware config by built-in name (`h100-8x-nvlink`) or path.
    pub fn from_arg(arg: &str) -> Result<Self, ConfigError> {
        load_arg(Kind::Hardware, arg, HardwareConfig::parse)
    }
}
