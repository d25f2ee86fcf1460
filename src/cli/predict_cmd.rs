//! `moeplan predict ...`: train a routing-path predictor, and score predictors with recall@K.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::choices::{FormatArg, KindArg};
use super::{BadInput, TraceArgs, load_model};
use crate::predict::{
    Kind, OnlineOptions, PredictError, PredictorSet, TrainOptions, evaluate, evaluate_online,
};
use crate::trace::{Trace, read_trace};
use crate::util::Progress;

/// Predict subcommands.
#[derive(Debug, Subcommand)]
pub enum PredictCommand {
    /// Train a predictor (static, markov, mix or learned) on traces or a statistics file.
    #[command(
        after_help = "Examples:\n  moeplan predict train -t traces/esft/law.parquet -t traces/esft/summary.parquet \
        --model deepseek-v2-lite --kind learned -o predictor.safetensors\n  \
        moeplan predict train -t traces/esft/law.parquet --kind markov -o markov.safetensors\n  \
        moeplan predict train --stats stats.parquet --kind mix -o mix.safetensors\n\n\
        With --stats (a `trace aggregate` file) static, markov and mix are the predictors the\n\
        traces would give (mix: one cross-validation fold per workload, two or more needed);\n\
        learned needs token-level traces."
    )]
    Train {
        /// Trace(s) to train on: an ESFT directory, a .parquet or a .jsonl file; each is one
        /// cross-validation fold (one trace is split in two by sequence).
        #[arg(
            long = "trace",
            short = 't',
            required_unless_present = "stats",
            value_name = "PATH"
        )]
        traces: Vec<PathBuf>,
        /// Force the trace format instead of detecting it.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Train on a routing statistics file (`trace aggregate`) instead of traces.
        #[arg(long, value_name = "FILE", conflicts_with = "traces")]
        stats: Option<PathBuf>,
        /// Model config (built-in name, see `moeplan config list`, or path to a TOML file) the traces must match.
        #[arg(long, short)]
        model: Option<String>,
        /// Which predictor to train (the file also holds the baselines it was built with).
        #[arg(long, value_enum, default_value = "learned")]
        kind: KindArg,
        /// Largest look-ahead h (layers l+1 ..= l+h are scored).
        #[arg(long, default_value_t = 4)]
        lookahead: usize,
        /// Seed of the learned model's initial weights and shuffling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Most training epochs of the learned model.
        #[arg(long, default_value_t = TrainOptions::default().epochs)]
        epochs: usize,
        /// Hidden width of the learned model.
        #[arg(long, default_value_t = TrainOptions::default().hidden)]
        hidden: usize,
        /// Training cases (token, layer, h) per epoch, drawn afresh each epoch; 0 for all.
        #[arg(long, default_value_t = TrainOptions::default().max_cases.unwrap_or(0))]
        max_cases: usize,
        /// Output predictor file (.safetensors).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// recall@K (K = k and 2k) of a predictor file and its baselines on a trace.
    #[command(
        after_help = "Examples:\n  moeplan predict eval --predictor predictor.safetensors -t traces/esft/intent.parquet --json\n  \
        moeplan predict eval --predictor predictor.safetensors -t traces/esft/intent.parquet --online\n  \
        moeplan predict eval --predictor none --online -t traces/esft/intent.parquet --warmup 1000\n\n\
        JSON: {\"version\", \"shape\", \"tokens\", \"ks\", \"predictors\": [{\"name\", \"recall\": {H: {K: r}}}]}\n\
        where predictors[].recall[h][K] is the mean over tokens and layers l of\n\
        |top-K predicted for layer l+h ∩ true top-k at l+h| / k (keys are decimal strings).\n\
        With --online, each token is predicted from the tokens before it (trace order), then its\n\
        routing updates the predictors; the JSON adds \"online\": true and \"warmup\"."
    )]
    Eval {
        /// Predictor file written by `predict train`, or `none` (with --online: cold start,
        /// no offline training).
        #[arg(long, short)]
        predictor: PathBuf,
        /// Score prequentially: predictors learn from every token after predicting it.
        #[arg(long)]
        online: bool,
        /// Online half-life in tokens (default: the file's cross-validated value, else 2000).
        #[arg(long, requires = "online")]
        half_life: Option<f64>,
        /// Online weight of the offline prior in pseudo-tokens (default: the file's, else 16).
        #[arg(long, requires = "online")]
        prior_weight: Option<f32>,
        /// Online learning rate of the learned model's output heads (0: frozen heads; default:
        /// the file's, else 0.01).
        #[arg(long, requires = "online")]
        head_lr: Option<f32>,
        /// Tokens observed before scoring starts (online only).
        #[arg(long, default_value_t = 0, requires = "online")]
        warmup: usize,
        #[command(flatten)]
        input: TraceArgs,
        /// Score look-ahead 1..=N only (default: the predictor's).
        #[arg(long)]
        lookahead: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A progress sink that ignores everything.
struct Silent;

impl Progress for Silent {
    fn inc(&self, _: u64) {}
}

/// Runs a predict subcommand.
pub fn run(cmd: PredictCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        PredictCommand::Train {
            traces,
            format,
            stats,
            model,
            kind,
            lookahead,
            seed,
            epochs,
            hidden,
            max_cases,
            output,
        } => {
            crate::util::check_writable(&output)
                .map_err(|e| super::BadInput(format!("{}: {e}", output.display())))?;
            let kind = Kind::from(kind);
            let format = format.map(crate::trace::Format::from);
            let shape = model
                .as_deref()
                .map(load_model)
                .transpose()?
                .map(|m| m.shape());
            if let Some(path) = stats {
                return train_from_stats(&path, shape.as_ref(), kind, lookahead, &output, quiet);
            }
            let traces = traces
                .iter()
                .map(|p| {
                    read_trace(p, format, shape.as_ref())
                        .with_context(|| format!("reading trace {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<Trace>>>()?;
            let refs: Vec<&Trace> = traces.iter().collect();
            let opts = TrainOptions {
                lookahead,
                seed,
                epochs,
                hidden,
                max_cases: (max_cases > 0).then_some(max_cases),
                ..TrainOptions::default()
            };
            let show = super::progress_enabled(quiet);
            let bar = (show && kind == Kind::Learned).then(|| {
                let tokens: usize = traces.iter().map(Trace::num_tokens).sum();
                let layers = traces[0].shape().moe_layers;
                let all = tokens * lookahead * layers;
                let per_epoch = if max_cases > 0 {
                    max_cases.min(all)
                } else {
                    all
                };
                crate::util::progress_bar((per_epoch * epochs) as u64, "cases")
            });
            let start = std::time::Instant::now();
            let progress: &dyn Progress = match &bar {
                Some(b) => b,
                None => &Silent,
            };
            let (set, report) = PredictorSet::train(&refs, kind, &opts, progress, &mut |e| {
                let line = format!(
                    "epoch {}: train loss {:.5}, held-out loss {:.5} ({:.1} s)",
                    e.epoch, e.train_loss, e.holdout_loss, e.elapsed_s
                );
                match (&bar, quiet) {
                    // A bar hides its println when stderr is not a terminal.
                    (Some(b), _) if !b.is_hidden() => b.println(line),
                    (_, false) => eprintln!("{line}"),
                    _ => {}
                }
            })
            .map_err(classify)?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            set.save(&output).map_err(classify)?;
            if !quiet {
                if let Some(r) = &report {
                    eprintln!(
                        "kept epoch {} of {} ({} training cases, {} held out)",
                        r.best_epoch,
                        r.epochs.len(),
                        r.train_cases,
                        r.holdout_cases
                    );
                }
                if let Some(o) = &set.online {
                    eprintln!(
                        "online options (cross-validated): half-life {} tokens, prior weight {}; \
                         learned heads' online learning rate {}",
                        o.half_life, o.prior_weight, o.head_lr
                    );
                }
                if let Some(m) = &set.mix {
                    eprintln!(
                        "mix weights (markov/static/temporal) per h: {:?}",
                        m.weights()
                    );
                }
                eprintln!(
                    "trained {:?} on {} tokens in {:.1} s; wrote {}",
                    kind,
                    set.trained_tokens,
                    start.elapsed().as_secs_f64(),
                    output.display()
                );
            }
        }
        PredictCommand::Eval {
            predictor,
            online,
            half_life,
            prior_weight,
            head_lr,
            warmup,
            input,
            lookahead,
            json,
        } => {
            let report = if predictor.as_os_str() == "none" {
                if !online {
                    return Err(
                        BadInput("--predictor none (cold start) needs --online".into()).into(),
                    );
                }
                let trace = super::load_traces(&input, None)?;
                let shape = *trace.shape();
                let d = lookahead.unwrap_or(4);
                if d == 0 || d >= shape.moe_layers {
                    return Err(BadInput(format!(
                        "--lookahead must be in 1..{} for {} MoE layers",
                        shape.moe_layers, shape.moe_layers
                    ))
                    .into());
                }
                let opts =
                    online_options(half_life, prior_weight, head_lr, OnlineOptions::DEFAULT)?;
                let mut ps = crate::predict::online::cold_set(shape, d, opts);
                let k = shape.top_k;
                evaluate_online(&mut ps, &trace, d, &[k, 2 * k], warmup..trace.num_tokens())
            } else {
                let set = PredictorSet::load(&predictor).map_err(classify)?;
                let trace = super::load_traces(&input, Some(set.shape()))?;
                let d = lookahead.unwrap_or(set.lookahead());
                if d == 0 || d > set.lookahead() {
                    return Err(BadInput(format!(
                        "--lookahead must be in 1..={} for this predictor",
                        set.lookahead()
                    ))
                    .into());
                }
                let k = set.shape().top_k;
                if online {
                    let opts =
                        online_options(half_life, prior_weight, head_lr, set.online_options(None))?;
                    let mut ps = set.all_online(opts);
                    evaluate_online(&mut ps, &trace, d, &[k, 2 * k], warmup..trace.num_tokens())
                } else {
                    evaluate(&set.all(), &trace, d, &[k, 2 * k])
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
        }
    }
    Ok(())
}

/// `predict train --stats`: the predictor from a statistics file.
fn train_from_stats(
    path: &std::path::Path,
    shape: Option<&crate::trace::ModelShape>,
    kind: Kind,
    lookahead: usize,
    output: &std::path::Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let stats = crate::fleet::read_stats(path)?;
    if let Some(s) = shape
        && *s != stats.shape
    {
        return Err(BadInput(format!(
            "{}: statistics of shape {:?}, the model's is {s:?}",
            path.display(),
            stats.shape
        ))
        .into());
    }
    let set = stats
        .train(kind, lookahead)
        .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    set.save(output).map_err(classify)?;
    if !quiet {
        if let Some(m) = &set.mix {
            eprintln!(
                "mix weights (markov/static/temporal) per h: {:?}",
                m.weights()
            );
        }
        eprintln!(
            "trained {:?} on the statistics of {} tokens ({} workloads) in {:.1} s; wrote {}",
            kind,
            set.trained_tokens,
            stats.workloads.len(),
            start.elapsed().as_secs_f64(),
            output.display()
        );
    }
    Ok(())
}

/// `base` with the half-life, prior weight and head learning rate given on the command line.
fn online_options(
    half_life: Option<f64>,
    prior_weight: Option<f32>,
    head_lr: Option<f32>,
    base: OnlineOptions,
) -> Result<OnlineOptions, BadInput> {
    let o = OnlineOptions {
        half_life: half_life.unwrap_or(base.half_life),
        prior_weight: prior_weight.unwrap_or(base.prior_weight),
        head_lr: head_lr.unwrap_or(base.head_lr),
    };
    if !o.head_lr.is_finite() || o.head_lr < 0.0 {
        return Err(BadInput("--head-lr must be finite and >= 0".into()));
    }
    if o.half_life.is_nan() || o.half_life <= 0.0 {
        return Err(BadInput(
            "--half-life must be positive (inf: no decay)".into(),
        ));
    }
    if !o.prior_weight.is_finite() || o.prior_weight < 0.0 {
        return Err(BadInput("--prior-weight must be finite and >= 0".into()));
    }
    Ok(o)
}

/// Bad files and arguments are bad input (exit 3); I/O and backend failures are not.
fn classify(e: PredictError) -> anyhow::Error {
    match e {
        PredictError::Write { .. } | PredictError::Backend(_) => e.into(),
        other => BadInput(other.to_string()).into(),
    }
}
