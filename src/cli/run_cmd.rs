//! `moeplan run`: the offloaded MoE forward pass ([`crate::runtime`]) from the command line.

use std::path::PathBuf;

use anyhow::Context;

use super::choices::BackendArg;

use crate::cache::{Lfu, PolicyKind, Predictive};
use crate::moe::MoeConfig;
use crate::runtime::{RunSpec, run as run_pass};
use crate::trace::read_trace;

const EXAMPLES: &str = "Examples:
  moeplan model init --model deepseek-v2-lite --scale 0.03125 -o tiny-moe
  moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 64 --policy lru --tokens 200 --json
  moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 16 --policy lru --tokens 200 --json
  moeplan predict train -t traces/esft/intent.parquet --kind mix -o mix.safetensors
  moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 16 --policy predictive \\
      --predictor mix.safetensors --tokens 200
  moeplan serve --socket /tmp/moeplan.sock &
  moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 16 --policy lru \\
      --via-daemon /tmp/moeplan.sock --tokens 200

Capacity 64 holds every expert of DeepSeek-V2-Lite's layers (all resident); 16 is 25%.
The output_digest of every run of the same model, trace, tokens and batch is the same,
whatever the capacity, policy or cache: caching never changes the output.";

/// `moeplan run` options.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    /// Model directory (`moeplan model init -o DIR`).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Routing trace (teacher-forced: each token uses the trace's experts at each layer).
    #[arg(long, short)]
    pub trace: PathBuf,
    /// Expert slots per MoE layer.
    #[arg(long)]
    pub capacity: usize,
    /// Eviction policy: lru, lfu, static, predictive, opt (opt in-process only).
    #[arg(long, default_value = "lru")]
    pub policy: PolicyKind,
    /// Predictor file (`moeplan predict train -o FILE`): its hints prefetch the next layers'
    /// experts; `predictive` also weighs them in eviction.
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Which predictor of the file (default: its main one).
    #[arg(long)]
    pub predictor_name: Option<String>,
    /// Ask the daemon listening on this Unix socket instead of an in-process cache.
    #[arg(long, value_name = "SOCKET")]
    pub via_daemon: Option<PathBuf>,
    /// Consecutive tokens of a sequence per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Only the first N tokens of the trace.
    #[arg(long)]
    pub tokens: Option<usize>,
    /// Where the expert slots live.
    #[arg(long, value_enum, default_value = "host")]
    pub backend: BackendArg,
    /// Layers ahead the predictor is asked about.
    #[arg(long, default_value_t = 2)]
    pub lookahead: usize,
    /// Experts prefetched per predicted layer (default: top-k).
    #[arg(long)]
    pub prefetch_top: Option<usize>,
    /// LFU / predictive half-life, in visits of a layer.
    #[arg(long, default_value_t = Lfu::DEFAULT_HALF_LIFE, value_parser = super::values::positive)]
    pub half_life: f64,
    /// Weight of predictions in `predictive`.
    #[arg(long, default_value_t = Predictive::DEFAULT_BETA, value_parser = super::values::non_negative)]
    pub beta: f64,
    /// Margin a `predictive` prefetch must beat its victim by.
    #[arg(long, default_value_t = Predictive::DEFAULT_MARGIN, value_parser = super::values::finite)]
    pub prefetch_margin: f64,
    /// JSON on stdout (output_digest, tokens_per_s, bytes_moved, copy_bandwidth_gbps, wait_s,
    /// hit_ratio, loads, ...).
    #[arg(long)]
    pub json: bool,
}

/// Runs `moeplan run`.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = MoeConfig::load(&a.model_dir)?;
    let full = read_trace(&a.trace, None, Some(&cfg.shape()))
        .with_context(|| format!("reading trace {}", a.trace.display()))?;
    let cut;
    let trace = match a.tokens {
        Some(n) if n < full.num_tokens() => {
            cut = full.slice(0..n);
            &cut
        }
        _ => &full,
    };
    let spec = RunSpec {
        trace_path: Some(&a.trace),
        train: Some(&full),
        predictor: a.predictor.as_deref(),
        predictor_name: a.predictor_name.as_deref(),
        lookahead: a.lookahead,
        prefetch_top: a.prefetch_top,
        half_life: a.half_life,
        beta: a.beta,
        margin: a.prefetch_margin,
        batch: a.batch,
        backend: a.backend.into(),
        via_daemon: a.via_daemon.as_deref(),
        ..RunSpec::new(&a.model_dir, trace, a.capacity, a.policy)
    };
    let r = run_pass(&spec)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(())
}
