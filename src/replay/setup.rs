//! A replay from its settings: checked against the model, the predictor loaded or trained (or
//! an online one built), every policy run, the report. `moeplan replay`, `demo` and `report`
//! call [`replay_trace`].

use std::path::Path;

use anyhow::Context;

use super::batching::Batching;
use super::report::ReplayReport;
use super::run::{PolicyReport, ReplaySetup, run_policies};
use super::sim::PrefetchOptions;
use super::timing::TimingModel;
use crate::BadInput;
use crate::cache::{Budget, Lfu, PolicyKind, Predictive};
use crate::config::{HardwareConfig, ModelConfig};
use crate::predict::{Kind, OnlineOptions, OnlinePredictor, Predictor, PredictorSet, TrainOptions};
use crate::trace::{ModelShape, Trace};

/// How the capacity is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityMode {
    /// C slots per layer.
    PerLayer,
    /// C x layers slots shared by all layers (same memory as per-layer).
    Shared,
}

impl CapacityMode {
    /// The cache budget of `capacity` experts per layer over `layers` layers.
    pub fn budget(self, capacity: usize, layers: usize) -> Budget {
        match self {
            CapacityMode::PerLayer => Budget::PerLayer(capacity),
            CapacityMode::Shared => Budget::Shared(capacity.saturating_mul(layers)),
        }
    }

    /// The name the report gives it (`per-layer`, `shared`).
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityMode::PerLayer => "per-layer",
            CapacityMode::Shared => "shared",
        }
    }
}

/// The settings of a replay (`moeplan replay`'s flags).
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Experts resident per layer (with [`CapacityMode::Shared`]: C x layers slots in total).
    pub capacity: usize,
    /// Budget per layer or shared across layers.
    pub capacity_mode: CapacityMode,
    /// Policies, in the order reported.
    pub policies: Vec<PolicyKind>,
    /// Predictor for `predictive`: a predictor file, a kind (`markov`, `mix`, `learned`)
    /// trained on the training traces (else on the replayed trace, in-sample), or, online,
    /// `none` (cold start).
    pub predictor: String,
    /// Which predictor of the set to use; default: the set's main one.
    pub predictor_name: Option<String>,
    /// `predictive` with an online predictor learning from the steps served.
    pub online: bool,
    /// How tokens are grouped into steps.
    pub batching: Batching,
    /// Run a missed expert on the CPU when that is sooner than moving it.
    pub cpu_offload: bool,
    /// Layers ahead `predictive` prefetches for, in `1..moe_layers` whatever the policies
    /// (`None`: [`DEFAULT_LOOKAHEAD`], or fewer for a model with fewer layers).
    pub lookahead: Option<usize>,
    /// Experts queued for prefetch per predicted layer (default: the model's top-k).
    pub prefetch_top: Option<usize>,
    /// Half-life of `lfu` and `predictive` frequencies, in visits of a layer.
    pub half_life: f64,
    /// Weight of predictions against the reuse history in `predictive`.
    pub beta: f64,
    /// Priority a prefetch candidate must have above the expert it would evict.
    pub prefetch_margin: f64,
}

/// Layers ahead `predictive` prefetches for unless told.
pub const DEFAULT_LOOKAHEAD: usize = 2;

impl ReplayOptions {
    /// The look-ahead for a model of `shape`: the one given, refused outside `1..moe_layers`
    /// whatever the policies (only `predictive` uses it), else [`DEFAULT_LOOKAHEAD`] kept in
    /// range.
    pub fn lookahead_for(&self, shape: &ModelShape) -> anyhow::Result<usize> {
        let top = shape.moe_layers.saturating_sub(1);
        match self.lookahead {
            Some(d) if d == 0 || d > top => Err(BadInput::err(format!(
                "--lookahead {d} must be in 1..={top} (the model has {} MoE layers)",
                shape.moe_layers
            ))),
            Some(d) => Ok(d),
            None => Ok(DEFAULT_LOOKAHEAD.clamp(1, top.max(1))),
        }
    }
}

impl Default for ReplayOptions {
    /// Every policy, capacity 16 per layer, batch 1, the `mix` predictor, two layers ahead.
    fn default() -> Self {
        ReplayOptions {
            capacity: 16,
            capacity_mode: CapacityMode::PerLayer,
            policies: PolicyKind::ALL.to_vec(),
            predictor: "mix".into(),
            predictor_name: None,
            online: false,
            batching: Batching::Single,
            cpu_offload: false,
            lookahead: None,
            prefetch_top: None,
            half_life: Lfu::DEFAULT_HALF_LIFE,
            beta: Predictive::DEFAULT_BETA,
            prefetch_margin: Predictive::DEFAULT_MARGIN,
        }
    }
}

/// What a replay runs on.
#[derive(Debug, Clone, Copy)]
pub struct ReplayInputs<'a> {
    /// The trace replayed.
    pub trace: &'a Trace,
    /// Its name in the report (the paths it was read from).
    pub trace_name: &'a str,
    /// Training traces (out-of-sample `static` and predictor); empty: the replayed trace.
    pub train: &'a [Trace],
    /// Model config.
    pub model: &'a ModelConfig,
    /// Hardware config (the timing model).
    pub hardware: &'a HardwareConfig,
    /// The predictor set of `predictive`, given (the options' `predictor` then only names its
    /// source), so that several replays share one trained set.
    pub predictor_set: Option<&'a PredictorSet>,
}

/// The batching of `--batch`, `--concurrent` and `--schedule`, checked against each other.
pub fn batching_of(
    batch: usize,
    concurrent: Option<usize>,
    schedule: bool,
) -> Result<Batching, BadInput> {
    let bad = |m: &str| BadInput(m.to_string());
    if batch == 0 {
        return Err(bad("--batch must be at least 1"));
    }
    if schedule && concurrent.is_none() {
        return Err(bad("--schedule needs --concurrent N"));
    }
    match concurrent {
        Some(0) => Err(bad("--concurrent must be at least 1")),
        Some(_) if batch > 1 => Err(bad("--batch and --concurrent exclude each other")),
        Some(n) => Ok(Batching::Concurrent { size: n, schedule }),
        None if batch > 1 => Ok(Batching::Consecutive { size: batch }),
        None => Ok(Batching::Single),
    }
}

/// The predictor set of `opts.predictor`: loaded from a file, or trained on `train` (else on
/// `trace`, in-sample) with look-ahead `lookahead`.
fn load_predictor(
    opts: &ReplayOptions,
    trace: &Trace,
    train: &[&Trace],
    lookahead: usize,
) -> anyhow::Result<PredictorSet> {
    let p = Path::new(&opts.predictor);
    if p.is_file() {
        let set =
            PredictorSet::load(p).with_context(|| format!("loading predictor {}", p.display()))?;
        if set.shape() != trace.shape() {
            return Err(BadInput::err(format!(
                "predictor {} is for shape {:?}, the trace has {:?}",
                p.display(),
                set.shape(),
                trace.shape()
            )));
        }
        return Ok(set);
    }
    let kind = match opts.predictor.as_str() {
        "markov" => Kind::Markov,
        "mix" => Kind::Mix,
        "learned" => Kind::Learned,
        other => {
            return Err(BadInput::err(format!(
                "--predictor {other:?} is neither a file nor a kind (markov, mix, learned)"
            )));
        }
    };
    let own = [trace];
    let src: &[&Trace] = if train.is_empty() { &own } else { train };
    let train_opts = TrainOptions {
        lookahead,
        ..TrainOptions::default()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let (set, _) = PredictorSet::train(src, kind, &train_opts, &hidden, &mut |_| {})
        .context("training the predictor")?;
    Ok(set)
}

/// The online predictor of `predictive` (`opts.online`), from `set` or cold.
fn online_predictor(
    opts: &ReplayOptions,
    set: Option<&PredictorSet>,
    trace: &Trace,
    lookahead: usize,
) -> anyhow::Result<OnlinePredictor> {
    match set {
        Some(s) => {
            let name = opts.predictor_name.as_deref().unwrap_or(s.main().name());
            OnlinePredictor::from_set(s, name, s.online_options(None))
                .ok_or_else(|| BadInput::err(format!("predictor {name:?} has no online version")))
        }
        None => {
            let name = opts.predictor_name.as_deref().unwrap_or("mix");
            OnlinePredictor::cold(name, *trace.shape(), lookahead, OnlineOptions::DEFAULT)
                .ok_or_else(|| {
                    BadInput::err(format!(
                        "cold start has no predictor {name:?} (static, markov, mix)"
                    ))
                })
        }
    }
}

/// Replays `inputs` with `opts`: every policy, and with token scheduling the same policies
/// first-come first-served alongside.
pub fn replay_trace(
    opts: &ReplayOptions,
    inputs: &ReplayInputs<'_>,
) -> anyhow::Result<ReplayReport> {
    let ReplayInputs {
        trace,
        train,
        model,
        hardware: hw,
        ..
    } = *inputs;
    let shape = *trace.shape();
    let max = shape.experts;
    if opts.capacity == 0 || opts.capacity > max {
        return Err(BadInput::err(format!(
            "--capacity {} must be in 1..={max} (experts per layer)",
            opts.capacity
        )));
    }
    let budget = opts.capacity_mode.budget(opts.capacity, shape.moe_layers);
    let train_refs: Vec<&Trace> = train.iter().collect();
    let predictive = opts.policies.contains(&PolicyKind::Predictive);
    let lookahead = opts.lookahead_for(&shape)?;
    let cold = opts.online && opts.predictor == "none";
    let loaded = if predictive && !cold && inputs.predictor_set.is_none() {
        Some(load_predictor(opts, trace, &train_refs, lookahead)?)
    } else {
        None
    };
    let set = inputs.predictor_set.or(loaded.as_ref());
    let online = if predictive && opts.online {
        Some(online_predictor(opts, set, trace, lookahead)?)
    } else {
        None
    };
    let predictor: Option<&dyn Predictor> = match (&online, set, &opts.predictor_name) {
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
        top_n: opts.prefetch_top.unwrap_or(shape.top_k),
    };
    let mut setup = ReplaySetup {
        trace,
        budget,
        batching: opts.batching,
        timing: TimingModel::new(model, hw, opts.cpu_offload),
        train: &train_refs,
        predictor: if online.is_some() { None } else { predictor },
        online: online.as_ref(),
        prefetch,
        half_life: opts.half_life,
        beta: opts.beta,
        margin: opts.prefetch_margin,
    };
    let count_shared = |mut ps: Vec<PolicyReport>| {
        ps.iter_mut()
            .for_each(|p| p.count_shared(model.shared_experts));
        ps
    };
    let policies = count_shared(run_policies(&setup, &opts.policies)?);
    let unscheduled = match opts.batching {
        Batching::Concurrent {
            size,
            schedule: true,
        } => {
            setup.batching = Batching::Concurrent {
                size,
                schedule: false,
            };
            Some(count_shared(run_policies(&setup, &opts.policies)?))
        }
        _ => None,
    };
    Ok(ReplayReport {
        trace: inputs.trace_name.to_string(),
        tokens: trace.num_tokens(),
        model: model.name.clone(),
        hardware: hw.name.clone(),
        capacity: opts.capacity,
        capacity_mode: opts.capacity_mode.as_str().into(),
        total_slots: match budget {
            Budget::PerLayer(c) => c * shape.moe_layers,
            Budget::Shared(c) => c,
        },
        batching: opts.batching,
        constants: setup.timing,
        prefetch,
        static_source: if train.is_empty() {
            "replayed".into()
        } else {
            "train".into()
        },
        predictor: predictor.map(|p| describe_predictor(opts, p, online.as_ref(), cold, train)),
        online: online.is_some(),
        policies,
        unscheduled,
    })
}

/// The report's line about the predictor `p` of `predictive`: its name, whether online, and
/// where it came from.
fn describe_predictor(
    opts: &ReplayOptions,
    p: &dyn Predictor,
    online: Option<&OnlinePredictor>,
    cold: bool,
    train: &[Trace],
) -> String {
    let src = if cold {
        "cold start, no offline training"
    } else if Path::new(&opts.predictor).is_file() {
        opts.predictor.as_str()
    } else if train.is_empty() {
        "trained in-sample"
    } else {
        "trained on --train-trace"
    };
    match online {
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
}
