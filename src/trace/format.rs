//! One trait for every trace format, and detection of a path's format.

use std::path::Path;

use super::{
    Defect, ModelShape, Trace, TraceError,
    esft::Esft,
    jsonl::Jsonl,
    parquet::ParquetFormat,
    routed::{Npy, Responses, looks_like_responses},
    sglang::{SglangDump, dump_files, is_torch_file},
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
    /// SGLang expert-distribution recorder dump (`per_token` mode): an
    /// `expert_distribution_recorder_*.pt` file, or a directory of them (one per rank).
    SglangDump,
    /// JSONL of saved SGLang or vLLM responses with `routed_experts` (needs `--model`).
    Responses,
    /// `.npy` of routed experts (vLLM's `routed_experts`, `[tokens, layers, top_k]`; needs `--model`).
    Npy,
}

impl Format {
    /// The implementation of this format.
    pub fn handler(self) -> &'static dyn TraceFormat {
        match self {
            Format::Esft => &Esft,
            Format::Parquet => &ParquetFormat,
            Format::Jsonl => &Jsonl,
            Format::SglangDump => &SglangDump,
            Format::Responses => &Responses,
            Format::Npy => &Npy,
        }
    }

    /// Whether the format carries no shape of its own, so that reading it needs the model's.
    pub fn needs_shape(self) -> bool {
        matches!(self, Format::Responses | Format::Npy)
    }

    /// Detects the format of `path`: a directory of SGLang recorder files or ESFT layer files,
    /// otherwise by extension, then by content (magic bytes; for JSONL, the first line).
    pub fn detect(path: &Path) -> Result<Format, TraceError> {
        if path.is_dir() {
            let dumps = dump_files(path).map_err(|e| TraceError::io(path, e))?;
            return Ok(if dumps.is_empty() {
                Format::Esft
            } else {
                Format::SglangDump
            });
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".parquet") || name.ends_with(".pq") {
            return Ok(Format::Parquet);
        }
        if name.ends_with(".pt") || is_torch_file(path) {
            return Ok(Format::SglangDump);
        }
        if name.ends_with(".npy") {
            return Ok(Format::Npy);
        }
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
            return jsonl_kind(path);
        }
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
            .map_err(|e| TraceError::io(path, e))?;
        if read == 4 && &magic == b"PAR1" {
            return Ok(Format::Parquet);
        }
        if read == 4 && &magic == b"\x93NUM" {
            return Ok(Format::Npy);
        }
        if read > 0 && (magic[0] == b'{' || magic[0] == b'[') {
            return jsonl_kind(path);
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

/// A JSON Lines file: moeplan's trace (a `moeplan_trace` header) or saved engine responses.
fn jsonl_kind(path: &Path) -> Result<Format, TraceError> {
    let f = std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?;
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut first)
        .map_err(|e| TraceError::io(path, e))?;
    Ok(if looks_like_responses(&first) {
        Format::Responses
    } else {
        Format::Jsonl
    })
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

/// Writes a trace in `format` (detected from the extension when `None`). A trace without tokens
/// is refused (every reader rejects one), and so is writing onto one of the trace's own inputs.
pub fn write_trace(trace: &Trace, path: &Path, format: Option<Format>) -> Result<(), TraceError> {
    if trace.num_tokens() == 0 {
        return Err(TraceError::file(
            path,
            Defect::Empty(
                "refusing to write a trace with no tokens (no reader accepts one)".into(),
            ),
        ));
    }
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
