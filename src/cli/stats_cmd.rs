//! `moeplan trace aggregate` and `moeplan stats merge`: routing statistics files for planning
//! and training at fleet scale (see `docs/fleet.md`).

use std::path::PathBuf;

use clap::Subcommand;

use super::{BadInput, load_model};
use crate::fleet::{AggregateOptions, aggregate_paths, read_stats, write_stats};
use crate::placement::DEFAULT_BATCH_TOKENS;

/// `moeplan trace aggregate` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
moeplan trace aggregate -t traces/esft/law.parquet -t traces/esft/summary.parquet -o stats.parquet\n  \
moeplan trace aggregate -t node0.parquet -t node1.parquet --label day1 --window 65536 -o day1.parquet\n\n\
Each trace is one workload named by its file stem (or all of them one workload, --label). Parquet\n\
traces are streamed chunk by chunk: memory is bounded by the statistics, not the trace.")]
pub struct AggregateArgs {
    /// Trace(s) to aggregate: .parquet (streamed), .jsonl or an ESFT directory (read whole).
    #[arg(long = "trace", short = 't', required = true, value_name = "PATH")]
    pub traces: Vec<PathBuf>,
    /// Output statistics file (.parquet).
    #[arg(long, short)]
    pub output: PathBuf,
    /// One workload label for every input (default: each input's file stem).
    #[arg(long)]
    pub label: Option<String>,
    /// Largest hop distance of the pair counts (the predictors' look-ahead can go up to it).
    #[arg(long, default_value_t = 4)]
    pub hops: usize,
    /// Tokens per window of the per-window loads (the placement's layer-time proxy batches and
    /// re-balancing windows); rows grow as tokens / window x layers x experts.
    #[arg(long, default_value_t = DEFAULT_BATCH_TOKENS as u64)]
    pub window: u64,
    /// Also count consecutive-layer expert pairs per window: what `rebalance --stats` and the
    /// re-balancing chart of `report --stats` need (rows grow as tokens / window x layers x k^2).
    #[arg(long)]
    pub window_pairs: bool,
    /// Model config the traces must match (and the shape of ESFT input).
    #[arg(long, short)]
    pub model: Option<String>,
}

/// Stats subcommands.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Add two statistics files (same shape, window and hops) into a third.
    #[command(
        after_help = "Example:\n  moeplan stats merge day1.parquet day2.parquet -o week.parquet\n\n\
Counts of workloads with the same label add up, as do windows with the same index."
    )]
    Merge {
        /// First statistics file.
        a: PathBuf,
        /// Second statistics file.
        b: PathBuf,
        /// Output statistics file.
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// Runs `moeplan trace aggregate`.
pub fn aggregate(args: AggregateArgs, quiet: bool) -> anyhow::Result<()> {
    super::check_output("--output", &args.output)?;
    let shape = args
        .model
        .as_deref()
        .map(load_model)
        .transpose()?
        .map(|m| m.shape());
    if args.window == 0 {
        return Err(BadInput("--window must be at least 1".into()).into());
    }
    if args.hops == 0 {
        return Err(BadInput("--hops must be at least 1".into()).into());
    }
    let mut total = 0u64;
    for p in &args.traces {
        if crate::trace::Format::detect(p)? == crate::trace::Format::Parquet {
            let (s, rows) = crate::trace::parquet::read_footer(p)?;
            if args.hops >= s.moe_layers {
                return Err(BadInput(format!(
                    "--hops must be below the {} MoE layers of {}",
                    s.moe_layers,
                    p.display()
                ))
                .into());
            }
            total += rows / s.moe_layers as u64;
        }
    }
    let bar = super::progress_enabled(quiet).then(|| crate::util::progress_bar(total, "tokens"));
    let silent = indicatif::ProgressBar::hidden();
    let start = std::time::Instant::now();
    let opts = AggregateOptions {
        hops: args.hops,
        window_tokens: args.window,
        window_pairs: args.window_pairs,
    };
    let stats = aggregate_paths(
        &args.traces,
        args.label.as_deref(),
        shape.as_ref(),
        opts,
        bar.as_ref().unwrap_or(&silent),
    )?;
    if stats.hops >= stats.shape.moe_layers {
        return Err(BadInput(format!(
            "--hops must be below the {} MoE layers",
            stats.shape.moe_layers
        ))
        .into());
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    write_stats(&stats, &args.output)?;
    if !quiet {
        let secs = start.elapsed().as_secs_f64();
        let entries = stats.tokens() * stats.shape.entries_per_token() as u64;
        eprintln!(
            "aggregated {} tokens ({} workloads, {entries} entries) in {secs:.1} s \
             ({:.1} M entries/s); wrote {}",
            stats.tokens(),
            stats.workloads.len(),
            entries as f64 / secs.max(1e-9) / 1e6,
            args.output.display()
        );
    }
    Ok(())
}

/// Runs a stats subcommand.
pub fn run(cmd: StatsCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        StatsCommand::Merge { a, b, output } => {
            super::check_output("--output", &output)?;
            let mut stats = read_stats(&a)?;
            let other = read_stats(&b)?;
            stats.merge(&other).map_err(|e| {
                BadInput(format!("merging {} and {}: {e}", a.display(), b.display()))
            })?;
            write_stats(&stats, &output)?;
            if !quiet {
                eprintln!(
                    "merged {} tokens ({} workloads); wrote {}",
                    stats.tokens(),
                    stats.workloads.len(),
                    output.display()
                );
            }
        }
    }
    Ok(())
}
