//! `moeplan replay`: trace replay through the expert cache, one row per policy.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{BadInput, TraceArgs, load_hardware, load_model, load_traces};
use crate::cache::{Budget, Lfu, PolicyKind, Predictive};
use crate::config::{HardwareConfig, ModelConfig};
use crate::predict::{Kind, OnlineOptions, OnlinePredictor, Predictor, PredictorSet, TrainOptions};
use crate::replay::{
    Batching, PolicyReport, PrefetchOptions, ReplayReport, ReplaySetup, TimingModel, run_policies,
};
use crate::trace::{Trace, read_trace};

/// How the capacity is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapacityMode {
    /// C slots per layer.
    PerLayer,
    /// C x layers slots shared by all layers (same memory as per-layer).
    Shared,
}

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
    pub capacity_mode: CapacityMode,
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
    /// Layers ahead `predictive` prefetches for.
    #[arg(long, default_value_t = 2)]
    pub lookahead: usize,
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
    /// The settings `moeplan demo` replays `trace` with: every policy, capacity 16, batch 1.
    pub fn demo(trace: PathBuf) -> Self {
        ReplayArgs {
            input: TraceArgs {
                traces: vec![trace],
                format: None,
            },
            model: "deepseek-v2-lite".into(),
            hardware: "rtx4090-pcie4".into(),
            capacity: 16,
            capacity_mode: CapacityMode::PerLayer,
            policy: PolicyKind::ALL.to_vec(),
            predictor: "mix".into(),
            predictor_name: None,
            online: false,
            train_trace: Vec::new(),
            batch: 1,
            concurrent: None,
            schedule: false,
            cpu_offload: false,
            lookahead: 2,
            prefetch_top: None,
            half_life: Lfu::DEFAULT_HALF_LIFE,
            beta: Predictive::DEFAULT_BETA,
            prefetch_margin: Predictive::DEFAULT_MARGIN,
            json: false,
            via_daemon: None,
        }
    }
}

/// Checks the arguments against each other and the model, and turns them into settings.
fn batching(a: &ReplayArgs) -> anyhow::Result<Batching> {
    let bad = |m: &str| anyhow::Error::new(BadInput(m.to_string()));
    if a.batch == 0 {
        return Err(bad("--batch must be at least 1"));
    }
    if a.schedule && a.concurrent.is_none() {
        return Err(bad("--schedule needs --concurrent N"));
    }
    match a.concurrent {
        Some(0) => Err(bad("--concurrent must be at least 1")),
        Some(_) if a.batch > 1 => Err(bad("--batch and --concurrent exclude each other")),
        Some(n) => Ok(Batching::Concurrent {
            size: n,
            schedule: a.schedule,
        }),
        None if a.batch > 1 => Ok(Batching::Consecutive { size: a.batch }),
        None => Ok(Batching::Single),
    }
}

/// Runs `moeplan replay`.
pub fn run(args: ReplayArgs, _quiet: bool) -> anyhow::Result<()> {
    let model = load_model(&args.model)?;
    let hw = load_hardware(&args.hardware)?;
    let shape = model.shape();
    let trace = load_traces(&args.input, Some(&shape))?;
    let batching = batching(&args)?;
    let mut train: Vec<Trace> = Vec::new();
    for p in &args.train_trace {
        train.push(
            read_trace(p, args.input.format(), Some(&shape))
                .with_context(|| format!("reading training trace {}", p.display()))?,
        );
    }
    if let Some(sock) = &args.via_daemon {
        let timing = TimingModel::new(&model, &hw, args.cpu_offload);
        let rows = super::replay_via_daemon::replay(sock, &args, &trace, batching, &timing)?;
        if args.json {
            let v = serde_json::json!({ "via_daemon": sock, "policies": rows });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}", super::replay_via_daemon::render(sock, &rows));
        }
        return Ok(());
    }
    let report = replay(&args, &trace, &train, batching, &model, &hw)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The predictor set of `--predictor`: loaded from a file, or trained on `train` (else on
/// `trace`, in-sample) with look-ahead `lookahead`.
fn load_predictor(
    args: &ReplayArgs,
    trace: &Trace,
    train: &[&Trace],
    lookahead: usize,
) -> anyhow::Result<PredictorSet> {
    let p = Path::new(&args.predictor);
    if p.is_file() {
        let set =
            PredictorSet::load(p).with_context(|| format!("loading predictor {}", p.display()))?;
        if set.shape() != trace.shape() {
            return Err(BadInput(format!(
                "predictor {} is for shape {:?}, the trace has {:?}",
                p.display(),
                set.shape(),
                trace.shape()
            ))
            .into());
        }
        return Ok(set);
    }
    let kind = match args.predictor.as_str() {
        "markov" => Kind::Markov,
        "mix" => Kind::Mix,
        "learned" => Kind::Learned,
        other => {
            return Err(BadInput(format!(
                "--predictor {other:?} is neither a file nor a kind (markov, mix, learned)"
            ))
            .into());
        }
    };
    let own = [trace];
    let src: &[&Trace] = if train.is_empty() { &own } else { train };
    let opts = TrainOptions {
        lookahead,
        ..TrainOptions::default()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let (set, _) = PredictorSet::train(src, kind, &opts, &hidden, &mut |_| {})
        .context("training the predictor")?;
    Ok(set)
}

/// Replays `trace` with the settings of `args` (shared with `moeplan demo`).
pub fn replay(
    args: &ReplayArgs,
    trace: &Trace,
    train: &[Trace],
    batching: Batching,
    model: &ModelConfig,
    hw: &HardwareConfig,
) -> anyhow::Result<ReplayReport> {
    replay_with(args, trace, train, batching, model, hw, None)
}

/// [`replay`] with the predictor set of `predictive` given (`--predictor` then only names it),
/// so that several replays (`moeplan report`'s capacities) share one trained set.
pub fn replay_with(
    args: &ReplayArgs,
    trace: &Trace,
    train: &[Trace],
    batching: Batching,
    model: &ModelConfig,
    hw: &HardwareConfig,
    given: Option<&PredictorSet>,
) -> anyhow::Result<ReplayReport> {
    let shape = *trace.shape();
    let max = shape.experts;
    if args.capacity == 0 || args.capacity > max {
        return Err(BadInput(format!(
            "--capacity {} must be in 1..={max} (experts per layer)",
            args.capacity
        ))
        .into());
    }
    let budget = match args.capacity_mode {
        CapacityMode::PerLayer => Budget::PerLayer(args.capacity),
        CapacityMode::Shared => Budget::Shared(args.capacity.saturating_mul(shape.moe_layers)),
    };
    let train_refs: Vec<&Trace> = train.iter().collect();
    let predictive = args.policy.contains(&PolicyKind::Predictive);
    let lookahead = args.lookahead;
    if predictive && (lookahead == 0 || lookahead >= shape.moe_layers) {
        return Err(BadInput(format!(
            "--lookahead must be in 1..={} (the model has {} MoE layers)",
            shape.moe_layers.saturating_sub(1),
            shape.moe_layers
        ))
        .into());
    }
    // Without `predictive` the look-ahead is unused; keep it in range as before.
    let lookahead = lookahead.clamp(1, shape.moe_layers.saturating_sub(1).max(1));
    let cold = args.online && args.predictor == "none";
    let loaded = if predictive && !cold && given.is_none() {
        Some(load_predictor(args, trace, &train_refs, lookahead)?)
    } else {
        None
    };
    let set = given.or(loaded.as_ref());
    let online = match (predictive && args.online, set) {
        (false, _) => None,
        (true, Some(s)) => {
            let name = args.predictor_name.as_deref().unwrap_or(s.main().name());
            let o = OnlinePredictor::from_set(s, name, s.online_options(None))
                .ok_or_else(|| BadInput(format!("predictor {name:?} has no online version")))?;
            Some(o)
        }
        (true, None) => {
            let name = args.predictor_name.as_deref().unwrap_or("mix");
            let o = OnlinePredictor::cold(name, shape, lookahead, OnlineOptions::DEFAULT)
                .ok_or_else(|| {
                    BadInput(format!(
                        "cold start has no predictor {name:?} (static, markov, mix)"
                    ))
                })?;
            Some(o)
        }
    };
    let predictor: Option<&dyn Predictor> = match (&online, set, &args.predictor_name) {
        (Some(o), _, _) => Some(o),
        (None, None, _) => None,
        (None, Some(s), None) => Some(s.main()),
        (None, Some(s), Some(n)) => Some(
            s.get(n)
                .ok_or_else(|| BadInput(format!("the predictor set has no predictor {n:?}")))?,
        ),
    };
    if let Some(p) = predictor
        && p.lookahead() < lookahead
    {
        tracing::info!(
            "predictor looks {} layers ahead, not {lookahead}",
            p.lookahead()
        );
    }
    let prefetch = PrefetchOptions {
        lookahead,
        top_n: args.prefetch_top.unwrap_or(shape.top_k),
    };
    let mut setup = ReplaySetup {
        trace,
        budget,
        batching,
        timing: TimingModel::new(model, hw, args.cpu_offload),
        train: &train_refs,
        predictor: if online.is_some() { None } else { predictor },
        online: online.as_ref(),
        prefetch,
        half_life: args.half_life,
        beta: args.beta,
        margin: args.prefetch_margin,
    };
    let count_shared = |mut ps: Vec<PolicyReport>| {
        ps.iter_mut()
            .for_each(|p| p.count_shared(model.shared_experts));
        ps
    };
    let policies = count_shared(run_policies(&setup, &args.policy)?);
    let unscheduled = match batching {
        Batching::Concurrent {
            size,
            schedule: true,
        } => {
            setup.batching = Batching::Concurrent {
                size,
                schedule: false,
            };
            Some(count_shared(run_policies(&setup, &args.policy)?))
        }
        _ => None,
    };
    let trace_name = args
        .input
        .traces
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(ReplayReport {
        trace: trace_name,
        tokens: trace.num_tokens(),
        model: model.name.clone(),
        hardware: hw.name.clone(),
        capacity: args.capacity,
        capacity_mode: match args.capacity_mode {
            CapacityMode::PerLayer => "per-layer".into(),
            CapacityMode::Shared => "shared".into(),
        },
        total_slots: match budget {
            Budget::PerLayer(c) => c * shape.moe_layers,
            Budget::Shared(c) => c,
        },
        batching,
        constants: setup.timing,
        prefetch,
        static_source: if train.is_empty() {
            "replayed".into()
        } else {
            "train".into()
        },
        predictor: predictor.map(|p| {
            let src = if cold {
                "cold start, no offline training"
            } else if Path::new(&args.predictor).is_file() {
                args.predictor.as_str()
            } else if train.is_empty() {
                "trained in-sample"
            } else {
                "trained on --train-trace"
            };
            match &online {
                Some(o) => {
                    let op = o.options();
                    format!(
                        "{} online, half-life {} tokens, prior weight {} ({src})",
                        p.name(),
                        op.half_life,
                        op.prior_weight
                    )
                }
                None => format!("{} ({src})", p.name()),
            }
        }),
        online: online.is_some(),
        policies,
        unscheduled,
    })
}
