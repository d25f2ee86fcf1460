//! Command-line interface: argument definitions, logging setup, dispatch and exit codes.
//!
//! Exit codes: 0 success, 2 usage error (from clap), 3 bad input (a trace, config or plan file
//! failed validation), 1 any other failure.

mod args;
mod bench_cmd;
mod bench_daemon;
mod control;
mod demo;
pub mod place_cmd;
mod predict_cmd;
mod replay_cmd;
mod replay_via_daemon;
mod serve_cmd;
mod trace_cmd;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use args::{TraceArgs, load_model, load_traces};

/// Exit code for input that failed validation.
pub const EXIT_BAD_INPUT: u8 = 3;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

const EXAMPLES: &str = "\
Examples:
  moeplan demo
  moeplan replay -t traces/esft/law.parquet --train-trace traces/esft/intent.parquet --capacity 16
  moeplan trace stats --trace traces/esft/law.parquet
  moeplan trace stats --trace traces/esft/law.parquet --against traces/esft/intent.parquet --json
  moeplan trace convert --trace ../shared/esft/results/expert_scores/law -o law.parquet
  moeplan trace synth --model deepseek-v3 --tokens 1000000 --fit traces/esft/law.parquet -o v3.parquet
  moeplan place -t traces/esft/law.parquet -t traces/esft/summary.parquet --eval traces/esft/intent.parquet \
      --model deepseek-v2-lite --hardware h100-8x-nvlink --method all
  moeplan predict train -t traces/esft/law.parquet -t traces/esft/summary.parquet --kind learned -o p.safetensors
  moeplan predict eval --predictor p.safetensors -t traces/esft/intent.parquet
  moeplan bench place
  moeplan serve --socket /tmp/moeplan.sock --metrics 127.0.0.1:9464";

/// moeplan: expert placement and expert caching for Mixture-of-Experts serving.
#[derive(Debug, Parser)]
#[command(name = "moeplan", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, convert and synthesise routing traces.
    #[command(subcommand)]
    Trace(trace_cmd::TraceCommand),
    /// Train routing-path predictors and score them (recall@K).
    #[command(subcommand)]
    Predict(predict_cmd::PredictCommand),
    /// Replay a trace through the expert cache: one row per policy (hit ratio, loads, stall).
    Replay(replay_cmd::ReplayArgs),
    /// Run the main job on the shipped sample trace and default configs.
    Demo(demo::DemoArgs),
    /// Plan where experts live (expert parallelism): contiguous, round-robin, EPLB, affinity, ILP.
    Place(place_cmd::PlaceArgs),
    /// Run the expert-cache daemon that inference runtimes query before each MoE layer.
    Serve(serve_cmd::ServeArgs),
    /// Fixed-workload benchmarks.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOEPLAN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("moeplan={level},moeplan_solver={level}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether progress bars should be drawn (not with --quiet, not when CI=true).
pub fn progress_enabled(quiet: bool) -> bool {
    !quiet && std::env::var("CI").map_or(true, |v| v != "true")
}

/// Whether an error chain contains bad input (validation) rather than a failure.
fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::trace::TraceError>()
            .is_some_and(|t| !matches!(t, crate::trace::TraceError::Io { .. }))
            || c.downcast_ref::<crate::config::ConfigError>()
                .is_some_and(|c| !matches!(c, crate::config::ConfigError::Io { .. }))
            || c.downcast_ref::<BadInput>().is_some()
    })
}

/// An error in what the user asked for (inconsistent arguments, infeasible settings).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Trace(c) => trace_cmd::run(c, cli.quiet),
        Command::Predict(c) => predict_cmd::run(c, cli.quiet),
        Command::Replay(a) => replay_cmd::run(a, cli.quiet),
        Command::Demo(a) => demo::run(a, cli.quiet),
        Command::Place(a) => place_cmd::run(a, cli.quiet),
        Command::Serve(a) => serve_cmd::run(a),
        Command::Bench(c) => bench_cmd::run(c, cli.quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if is_bad_input(&e) {
                EXIT_BAD_INPUT
            } else {
                EXIT_FAILURE
            })
        }
    }
}
