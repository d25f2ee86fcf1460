//! `moeplan trace ...`: statistics, format conversion and synthetic traces.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::choices::FormatArg;
use super::{TraceArgs, load_model, load_traces};
use crate::stats::{StatsOptions, compute, render_table};
use crate::synth::{SynthParams, generate};
use crate::trace::{Format, read_trace, write_trace};

/// Trace subcommands.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Per-layer load, inter-layer affinity, temporal locality, chunk sparsity and shift.
    #[command(
        after_help = "Examples:\n  moeplan trace stats -t traces/esft/law.parquet\n  \
        moeplan trace stats -t traces/esft/law.parquet --against traces/esft/summary.parquet --json"
    )]
    Stats {
        #[command(flatten)]
        input: TraceArgs,
        /// A second trace: report the per-layer Jensen-Shannon divergence of expert load.
        #[arg(long, value_name = "PATH")]
        against: Option<PathBuf>,
        /// Model config (built-in name, see `moeplan config list`, or path to a TOML file); required for ESFT traces of other shapes.
        #[arg(long, short)]
        model: Option<String>,
        /// Largest hop distance of the transition matrices.
        #[arg(long, default_value_t = 4)]
        max_hops: usize,
        /// Strongest pairs listed per hop distance (JSON).
        #[arg(long, default_value_t = 10)]
        top_pairs: usize,
        /// Print JSON (stable keys, see README) instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Aggregate traces into a routing statistics file (mergeable sums; see docs/fleet.md).
    Aggregate(super::stats_cmd::AggregateArgs),
    /// Convert or import a trace: ESFT, SGLang recorder dumps, saved SGLang/vLLM responses and
    /// .npy routed experts -> Parquet/JSONL (alias: `import`).
    #[command(
        alias = "import",
        after_help = "Examples:\n  moeplan trace convert -t ESFT_DIR/law -o law.parquet\n  \
        moeplan trace import -t /tmp/sglang_dump/ --model deepseek-v2-lite -o served.parquet\n  \
        moeplan trace import -t responses.jsonl --model deepseek-v2-lite -o served.parquet"
    )]
    Convert {
        #[command(flatten)]
        input: TraceArgs,
        /// Model config for ESFT input of a shape other than DeepSeek-V2-Lite.
        #[arg(long, short)]
        model: Option<String>,
        /// Keep only the first N sequences.
        #[arg(long, value_parser = super::values::at_least_one)]
        first_sequences: Option<usize>,
        /// Output path (.parquet or .jsonl, or --to).
        #[arg(long, short)]
        output: PathBuf,
        /// Output format (otherwise from the extension).
        #[arg(long, value_enum)]
        to: Option<FormatArg>,
    },
    /// Generate a synthetic trace with popularity skew, inter-layer affinity and temporal locality.
    #[command(
        after_help = "Examples:\n  moeplan trace synth --model deepseek-v3 --tokens 1000000 --fit traces/esft/law.parquet -o v3.parquet\n  \
        moeplan trace synth --model mixtral-8x7b --tokens 20000 --seed 7 -o mixtral.jsonl"
    )]
    Synth {
        /// Model config whose shape to generate (built-in name, see `moeplan config list`, or path to a TOML file).
        #[arg(long, short)]
        model: String,
        /// Tokens to generate.
        #[arg(long, default_value_t = 100_000, value_parser = super::values::at_least_one)]
        tokens: usize,
        /// Mean sequence length in tokens (default: the fitted trace's, else 256).
        #[arg(long, value_parser = super::values::at_least_one)]
        seq_len: Option<usize>,
        /// Random seed: the same seed and parameters give the same trace.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fit skew, affinity and temporal locality to this real trace.
        #[arg(long, value_name = "PATH")]
        fit: Option<PathBuf>,
        /// Print the (fitted) generator parameters as JSON on stderr.
        #[arg(long)]
        show_params: bool,
        /// Output path (.parquet or .jsonl).
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// Runs a trace subcommand.
pub fn run(cmd: TraceCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        TraceCommand::Aggregate(a) => super::stats_cmd::aggregate(a, quiet)?,
        TraceCommand::Stats {
            input,
            against,
            model,
            max_hops,
            top_pairs,
            json,
        } => {
            let shape = model
                .as_deref()
                .map(load_model)
                .transpose()?
                .map(|m| m.shape());
            let trace = load_traces(&input, shape.as_ref())?;
            let other = match &against {
                Some(p) => Some(
                    read_trace(p, input.format(), shape.as_ref())
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => None,
            };
            let name = against
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let opts = StatsOptions {
                max_hops,
                top_pairs,
            };
            let stats = compute(&trace, other.as_ref().map(|o| (name.as_str(), o)), &opts)
                .map_err(super::BadInput)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", render_table(&stats));
            }
        }
        TraceCommand::Convert {
            input,
            model,
            first_sequences,
            output,
            to,
        } => {
            let shape = model
                .as_deref()
                .map(load_model)
                .transpose()?
                .map(|m| m.shape());
            refuse_overwrite(input.traces.iter(), &output)?;
            crate::util::check_writable(&output)
                .map_err(|e| super::BadInput(format!("{}: {e}", output.display())))?;
            let mut trace = load_traces(&input, shape.as_ref())?;
            if let Some(n) = first_sequences {
                trace = trace.first_sequences(n);
            }
            write_trace(&trace, &output, to.map(Format::from))
                .with_context(|| format!("writing {}", output.display()))?;
            if !quiet {
                eprintln!(
                    "wrote {} tokens ({} sequences) to {}",
                    trace.num_tokens(),
                    trace.num_sequences(),
                    output.display()
                );
            }
        }
        TraceCommand::Synth {
            model,
            tokens,
            seq_len,
            seed,
            fit,
            show_params,
            output,
        } => {
            let model = load_model(&model)?;
            let shape = model.shape();
            crate::util::check_memory(
                &format!("--tokens {tokens} of {}", model.name),
                crate::trace::Trace::bytes_for(&shape, tokens),
            )
            .map_err(super::BadInput)?;
            refuse_overwrite(fit.iter(), &output)?;
            crate::util::check_writable(&output)
                .map_err(|e| super::BadInput(format!("{}: {e}", output.display())))?;
            let params = match &fit {
                Some(p) => {
                    let real = read_trace(p, None, None)
                        .with_context(|| format!("reading {}", p.display()))?;
                    SynthParams::fit(&real, shape, seed)
                }
                None => SynthParams::default_for(shape),
            };
            let params = match seq_len {
                Some(n) => SynthParams {
                    mean_seq_len: n as f64,
                    ..params
                },
                None => params,
            };
            if show_params {
                eprintln!("{}", serde_json::to_string_pretty(&params)?);
            }
            let bar = super::progress_enabled(quiet)
                .then(|| crate::util::progress_bar(tokens as u64, "tokens"));
            let start = std::time::Instant::now();
            let trace = generate(
                &params,
                tokens,
                seed,
                bar.as_ref().map(|b| b as &dyn crate::util::Progress),
            );
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let gen_s = start.elapsed().as_secs_f64();
            tracing::info!(seconds = gen_s, "generated");
            let write_start = std::time::Instant::now();
            write_trace(&trace, &output, None)
                .with_context(|| format!("writing {}", output.display()))?;
            if !quiet {
                eprintln!(
                    "generated {} tokens ({} sequences, {:.1} MB in memory) in {:.1} s; wrote {} in {:.1} s",
                    trace.num_tokens(),
                    trace.num_sequences(),
                    trace.memory_bytes() as f64 / 1e6,
                    gen_s,
                    output.display(),
                    write_start.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

/// Refuses an output that is one of the inputs (the same file, also through links).
fn refuse_overwrite<'a>(
    inputs: impl Iterator<Item = &'a PathBuf>,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    for p in inputs {
        if crate::util::same_file(p, output) {
            return Err(super::BadInput(format!(
                "output {} is the input {}: write to another file",
                output.display(),
                p.display()
            ))
            .into());
        }
    }
    Ok(())
}
