//! Arguments shared by commands that take traces and models, and their loading.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::choices::FormatArg;
use crate::config::{HardwareConfig, ModelConfig};
use crate::trace::{Format, ModelShape, Trace, read_trace};

/// Trace inputs: one or more paths, in any supported format.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// Trace to read: an ESFT directory, a .parquet or a .jsonl file. Repeat to concatenate.
    #[arg(long = "trace", short = 't', required = true, value_name = "PATH")]
    pub traces: Vec<PathBuf>,
    /// Force the trace format instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

impl TraceArgs {
    /// The forced format, if any.
    pub fn format(&self) -> Option<Format> {
        self.format.map(Format::from)
    }
}

/// Refuses the output of `flag` when its directory is missing or takes no new file: checked
/// before the work that fills it (bad input, naming the flag and the path).
pub fn check_output(flag: &str, path: &Path) -> anyhow::Result<()> {
    crate::util::check_writable(path)
        .map_err(|e| super::BadInput::err(format!("{flag} {}: {e}", path.display())))
}

/// Loads a model config by name (`deepseek-v2-lite`) or path.
pub fn load_model(arg: &str) -> anyhow::Result<ModelConfig> {
    ModelConfig::from_arg(arg).with_context(|| format!("loading model config {arg:?}"))
}

/// Loads a hardware config by name (`h100-8x-nvlink`) or path.
pub fn load_hardware(arg: &str) -> anyhow::Result<HardwareConfig> {
    HardwareConfig::from_arg(arg).with_context(|| format!("loading hardware config {arg:?}"))
}

/// Reads every trace of `args` (checked against `shape` if given) and concatenates them.
pub fn load_traces(args: &TraceArgs, shape: Option<&ModelShape>) -> anyhow::Result<Trace> {
    let mut traces = Vec::with_capacity(args.traces.len());
    for p in &args.traces {
        traces.push(
            read_trace(p, args.format(), shape)
                .with_context(|| format!("reading trace {}", p.display()))?,
        );
    }
    if traces.len() == 1 {
        return Ok(traces.pop().unwrap());
    }
    let refs: Vec<&Trace> = traces.iter().collect();
    Trace::concat(&refs)
        .map_err(|m| anyhow::Error::new(super::BadInput(format!("cannot combine traces: {m}"))))
}
