//! `moeplan replay`: trace replay through the expert cache, one row per policy.

use std::path::PathBuf;

use anyhow::Context;

use super::choices::CapacityArg;
use super::{BadInput, TraceArgs, load_hardware, load_model, load_traces};
use crate::cache::{Lfu, PolicyKind, Predictive};
use crate::daemon::client::via_daemon::{render_rows, replay_via_daemon};
use crate::replay::{ReplayInputs, ReplayOptions, TimingModel, batching_of, replay_trace};
use crate::trace::{Trace, read_trace};

/// `moeplan replay` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    moeplan replay -t traces/sample.parquet --capacity 16\n  \
    moeplan replay -t traces/esft/law.parquet --train-trace traces/esft/intent.parquet \
    --train-trace traces/esft/summary.parquet --capacity 16 --json\n  \
    moeplan replay -t traces/esft/law.parquet --capacity 16 --concurrent 8 --schedule\n  \
    moeplan replay -t traces/esft/law.parquet --train-trace traces/esft/intent.parquet \
    --train-trace traces/esft/summary.parquet --capacity 16 --predictor markov --online")]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: TraceArgs,
    /// Model config (built-in name, see `moeplan config list`, or path to a TOML file).
    #[arg(long, short, default_value = "deepseek-v2-lite")]
    pub model: String,
    /// Hardware config (built-in name, see `moeplan config list`, or path to a TOML file).
    #[arg(long, default_value = "rtx4090-pcie4")]
    pub hardware: String,
    /// Experts resident per layer (with --capacity-mode shared: C x layers slots in total).
    #[arg(long, short)]
    pub capacity: usize,
    /// Budget per layer or shared across layers.
    #[arg(long, value_enum, default_value = "per-layer")]
    pub capacity_mode: CapacityArg,
    /// Policies, comma-separated: lru, lfu, static, predictive, opt.
    #[arg(
        long,
        short,
        value_delimiter = ',',
        default_value = "lru,lfu,static,predictive,opt"
    )]
    pub policy: Vec<PolicyKind>,
    /// Predictor for `predictive`: a predictor file (`moeplan predict train -o FILE`), or a kind
    /// (`markov`, `mix`, `learned`) trained here on --train-trace (without --train-trace: on the
    /// replayed trace itself, in-sample).
    #[arg(long, default_value = "mix")]
    pub predictor: String,
    /// Which predictor of the set to use (static, temporal, markov, mix, learned); default: the
    /// set's main one.
    #[arg(long)]
    pub predictor_name: Option<String>,
    /// `predictive` with an online predictor: it learns from every step it serves (blended
    /// with the offline one at the file's cross-validated half-life and prior weight).
    /// `--predictor none --online`: cold start, no offline training.
    #[arg(long)]
    pub online: bool,
    /// Training traces (out-of-sample): rank `static` and train the predictor. Repeatable.
    #[arg(long = "train-trace", value_name = "PATH")]
    pub train_trace: Vec<PathBuf>,
    /// Consecutive tokens of a sequence per step.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Sequences decoding together (continuous batching), one token each per step.
    #[arg(long)]
    pub concurrent: Option<usize>,
    /// Token scheduling: admit the waiting sequence whose routing overlaps the batch most
    /// (needs --concurrent); reports the first-come first-served figures alongside.
    #[arg(long)]
    pub schedule: bool,
    /// Run a missed expert on the CPU when that is sooner than moving it (Fiddler-style).
    #[arg(long)]
    pub cpu_offload: bool,
    /// Layers ahead `predictive` prefetches for, in 1 ..= MoE layers - 1 [default: 2, or fewer
    /// for a model with fewer layers].
    #[arg(long)]
    pub lookahead: Option<usize>,
    /// Experts queued for prefetch per predicted layer (default: the model's top-k).
    #[arg(long)]
    pub prefetch_top: Option<usize>,
    /// Half-life of `lfu` and `predictive` frequencies, in visits of a layer.
    #[arg(long, default_value_t = Lfu::DEFAULT_HALF_LIFE, value_parser = super::values::positive)]
    pub half_life: f64,
    /// Weight of predictions against the reuse history in `predictive`.
    #[arg(long, default_value_t = Predictive::DEFAULT_BETA, value_parser = super::values::non_negative)]
    pub beta: f64,
    /// Priority (in chance-of-use units) a prefetch candidate must have above the expert it
    /// would evict; higher prefetches less.
    #[arg(long, default_value_t = Predictive::DEFAULT_MARGIN, value_parser = super::values::finite)]
    pub prefetch_margin: f64,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Replay through a running daemon (`moeplan serve`) at this socket instead of in process,
    /// one session per policy (lru, lfu, static; predictive with --predictor FILE): prints the
    /// daemon's hit ratios.
    #[arg(long, value_name = "SOCKET")]
    pub via_daemon: Option<PathBuf>,
}

impl ReplayArgs {
    /// The library's settings of these arguments (the batching flags checked).
    pub fn options(&self) -> Result<ReplayOptions, BadInput> {
        Ok(ReplayOptions {
            capacity: self.capacity,
            capacity_mode: self.capacity_mode.into(),
            policies: self.policy.clone(),
            predictor: self.predictor.clone(),
            predictor_name: self.predictor_name.clone(),
            online: self.online,
            batching: batching_of(self.batch, self.concurrent, self.schedule)?,
            cpu_offload: self.cpu_offload,
            lookahead: self.lookahead,
            prefetch_top: self.prefetch_top,
            half_life: self.half_life,
            beta: self.beta,
            prefetch_margin: self.prefetch_margin,
        })
    }
}

/// Runs `moeplan replay`.
pub fn run(args: ReplayArgs, _quiet: bool) -> anyhow::Result<()> {
    let model = load_model(&args.model)?;
    let hw = load_hardware(&args.hardware)?;
    let shape = model.shape();
    let trace = load_traces(&args.input, Some(&shape))?;
    let opts = args.options()?;
    let mut train: Vec<Trace> = Vec::new();
    for p in &args.train_trace {
        train.push(
            read_trace(p, args.input.format(), Some(&shape))
                .with_context(|| format!("reading training trace {}", p.display()))?,
        );
    }
    if let Some(sock) = &args.via_daemon {
        let timing = TimingModel::new(&model, &hw, args.cpu_offload);
        let train_paths = if args.train_trace.is_empty() {
            &args.input.traces
        } else {
            &args.train_trace
        };
        let rows = replay_via_daemon(sock, &opts, &trace, train_paths, &timing)?;
        if args.json {
            let v = serde_json::json!({ "via_daemon": sock, "policies": rows });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}", render_rows(sock, &rows));
        }
        return Ok(());
    }
    let trace_name = args
        .input
        .traces
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let inputs = ReplayInputs {
        trace: &trace,
        trace_name: &trace_name,
        train: &train,
        model: &model,
        hardware: &hw,
        predictor_set: None,
    };
    let report = replay_trace(&opts, &inputs)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
