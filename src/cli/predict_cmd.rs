//! `moeplan predict ...`: train a routing-path predictor, and score predictors with recall@K.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::values::KindArg;
use super::{BadInput, TraceArgs, load_model};
use crate::predict::{Kind, PredictError, PredictorSet, TrainOptions, evaluate};
use crate::trace::{Trace, read_trace};
use crate::util::Progress;

/// Predict subcommands.
#[derive(Debug, Subcommand)]
pub enum PredictCommand {
    /// Train a predictor (markov, mix or learned) on one or more traces.
    #[command(
        after_help = "Examples:\n  moeplan predict train -t traces/esft/law.parquet -t traces/esft/summary.parquet \
        --model deepseek-v2-lite --kind learned -o predictor.safetensors\n  \
        moeplan predict train -t traces/esft/law.parquet --kind markov -o markov.safetensors"
    )]
    Train {
        #[command(flatten)]
        input: TraceArgs,
        /// Model config (name in configs/models or path) the traces must match.
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
        after_help = "Example:\n  moeplan predict eval --predictor predictor.safetensors -t traces/esft/intent.parquet --json\n\n\
        JSON: {\"version\", \"shape\", \"tokens\", \"ks\", \"predictors\": [{\"name\", \"recall\": {H: {K: r}}}]}\n\
        where predictors[].recall[h][K] is the mean over tokens and layers l of\n\
        |top-K predicted for layer l+h ∩ true top-k at l+h| / k (keys are decimal strings)."
    )]
    Eval {
        /// Predictor file written by `predict train`.
        #[arg(long, short)]
        predictor: PathBuf,
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
            input,
            model,
            kind,
            lookahead,
            seed,
            epochs,
            hidden,
            max_cases,
            output,
        } => {
            let kind = Kind::from(kind);
            let shape = model
                .as_deref()
                .map(load_model)
                .transpose()?
                .map(|m| m.shape());
            let traces = input
                .traces
                .iter()
                .map(|p| {
                    read_trace(p, input.format(), shape.as_ref())
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
            input,
            lookahead,
            json,
        } => {
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
            let report = evaluate(&set.all(), &trace, d, &[k, 2 * k]);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
        }
    }
    Ok(())
}

/// Bad files and arguments are bad input (exit 3); I/O and backend failures are not.
fn classify(e: PredictError) -> anyhow::Error {
    match e {
        PredictError::Io { .. } | PredictError::Backend(_) => e.into(),
        other => BadInput(other.to_string()).into(),
    }
}
