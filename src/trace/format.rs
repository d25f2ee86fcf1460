//! One trait for every trace format, and detection of a path's format.

use std::path::Path;

use super::{
    Defect, ModelShape, Trace, TraceError, esft::Esft, jsonl::Jsonl, parquet::ParquetFormat,
};

/// A trace file format: how to read it and (where supported) write it.
pub trait TraceFormat {
    /// The name used by `--format`.
    fn name(&self) -> &'static str;
    /// Reads a whole trace, validating every record. `shape` is required by formats that do not
    /// carry the model shape (ESFT); self-describing formats check it against their own.
    fn read(&self, path: &Path, shape: Option<&ModelShape>) -> Result<Trace, TraceError>;
    /// Writes `trace` to `path`.
    fn write(&self, trace: &Trace, path: &Path) -> Result<(), TraceError>;
}

/// The supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ESFT layout: a directory of `expert_weights_L.txt` files (deepseek-ai/ESFT).
    Esft,
    /// Canonical Parquet: one row per (token, layer), see `traces/FORMAT.md`.
    Parquet,
    /// JSON Lines: a header line, then one object per token.
    Jsonl,
}

impl Format {
    /// The implementation of this format.
    pub fn handler(self) -> &'static dyn TraceFormat {
        match self {
            Format::Esft => &Esft,
            Format::Parquet => &ParquetFormat,
            Format::Jsonl => &Jsonl,
        }
    }

    /// Detects the format of `path`: a directory is ESFT, otherwise by extension, then by magic.
    pub fn detect(path: &Path) -> Result<Format, TraceError> {
        if path.is_dir() {
            return Ok(Format::Esft);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".parquet") || name.ends_with(".pq") {
            return Ok(Format::Parquet);
        }
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            return Ok(Format::Jsonl);
        }
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
            .map_err(|e| TraceError::io(path, e))?;
        if read == 4 && &magic == b"PAR1" {
            return Ok(Format::Parquet);
        }
        if read > 0 && magic[0] == b'{' {
            return Ok(Format::Jsonl);
        }
        Err(TraceError::file(
            path,
            Defect::Other(
                "cannot tell the trace format (expected an ESFT directory, .parquet or .jsonl); \
                 pass --format"
                    .into(),
            ),
        ))
    }
}

/// Reads a trace in `format` (detected when `None`).
pub fn read_trace(
    path: &Path,
    format: Option<Format>,
    shape: Option<&ModelShape>,
) -> Result<Trace, TraceError> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(path)?,
    };
    let trace = format.handler().read(path, shape)?;
    tracing::info!(
        path = %path.display(),
        format = format.handler().name(),
        tokens = trace.num_tokens(),
        sequences = trace.num_sequences(),
        "trace loaded"
    );
    Ok(trace)
}

/// Writes a trace in `format` (detected from the extension when `None`).
pub fn write_trace(trace: &Trace, path: &Path, format: Option<Format>) -> Result<(), TraceError> {
    let format = match format {
        Some(f) => f,
        None => {
            let name = path.to_string_lossy();
            if name.ends_with(".parquet") || name.ends_with(".pq") {
                Format::Parquet
            } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
                Format::Jsonl
            } else {
                return Err(TraceError::file(
                    path,
                    Defect::Other(
                        "output format unknown: use .parquet or .jsonl, or pass --format".into(),
                    ),
                ));
            }
        }
    };
    format.handler().write(trace, path)
}
