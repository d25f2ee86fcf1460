//! Command-line interface: argument definitions, logging setup, dispatch and exit codes.
//!
//! Exit codes: 0 success, 2 usage error (from clap), 3 bad input (a trace, config or plan file
//! failed validation), 1 any other failure.

mod args;
mod bench_cmd;
mod bench_daemon;
mod bench_run;
mod choices;
mod config_cmd;
mod control;
mod demo;
mod export_cmd;
mod model_cmd;
mod place_cmd;
mod predict_cmd;
mod rebalance_cmd;
mod replay_cmd;
mod report_cmd;
mod report_counts;
mod run_cmd;
mod serve_cmd;
mod stats_cmd;
mod trace_cmd;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::BadInput;
pub use args::{TraceArgs, check_output, load_hardware, load_model, load_traces};

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
  moeplan trace convert --trace traces/esft-excerpt -o excerpt.parquet   # an ESFT directory
  moeplan trace synth --model deepseek-v3 --tokens 1000000 --fit traces/esft/law.parquet -o v3.parquet
  moeplan place -t traces/esft/law.parquet -t traces/esft/summary.parquet --eval traces/esft/intent.parquet \
      --model deepseek-v2-lite --hardware h100-8x-nvlink --method all
  moeplan predict train -t traces/esft/law.parquet -t traces/esft/summary.parquet --kind learned -o p.safetensors
  moeplan predict eval --predictor p.safetensors -t traces/esft/intent.parquet
  moeplan export --plan plan.json --to sglang -o placement.json
  moeplan report -t traces/esft/law.parquet -t traces/esft/summary.parquet --eval traces/esft/intent.parquet \
      --model deepseek-v2-lite --hardware h100-8x-nvlink -o report.html
  moeplan rebalance -t traces/esft/intent.parquet -t traces/esft/law.parquet -t traces/esft/summary.parquet \
      --model deepseek-v2-lite --hardware h100-8x-nvlink --window 1000
  moeplan config list
  moeplan bench place
  moeplan serve --socket /tmp/moeplan.sock --metrics 127.0.0.1:9464
  moeplan model init --model deepseek-v2-lite --scale 0.03125 -o tiny-moe
  moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 16 --policy lru --json";

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
    /// Write what SGLang, vLLM, vLLM-Ascend, KTransformers or llama.cpp load, from a plan or a
    /// trace, and print the launch flags.
    Export(export_cmd::ExportArgs),
    /// Re-balance placements over a stream of traces: static, EPLB every window, or a
    /// move-budgeted re-plan; scored on each next window (IR, hops, layer time, moves).
    Rebalance(rebalance_cmd::RebalanceArgs),
    /// Run the expert-cache daemon that inference runtimes query before each MoE layer.
    Serve(serve_cmd::ServeArgs),
    /// Write one self-contained HTML page of charts: load, placement, affinity, cache, predictor.
    Report(report_cmd::ReportArgs),
    /// Work with routing statistics files (`trace aggregate` writes them).
    #[command(subcommand)]
    Stats(stats_cmd::StatsCommand),
    /// List and show the model and hardware configs built into the binary.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Fixed-workload benchmarks.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Write a small MoE model directory (a real model's routing shape) for `moeplan run`.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// An offloaded MoE forward pass: before each layer ask the cache, move experts through
    /// the data plane, compute; reports the output digest, tokens/s, bytes moved, hit ratio.
    Run(run_cmd::RunArgs),
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
    use crate::predict::PredictError;
    use crate::trace::TraceError;
    // An input that is missing, unreadable or not UTF-8 is bad input too; only failures to
    // write outputs (and to run) are exit 1.
    e.chain().any(|c| {
        c.downcast_ref::<TraceError>()
            .is_some_and(|t| !matches!(t, TraceError::Write { .. }))
            || c.downcast_ref::<crate::config::ConfigError>().is_some()
            || c.downcast_ref::<PredictError>().is_some_and(|p| {
                !matches!(p, PredictError::Write { .. } | PredictError::Backend(_))
            })
            || c.downcast_ref::<crate::placement::PlacementError>()
                .is_some()
            || c.downcast_ref::<BadInput>().is_some()
            || c.downcast_ref::<crate::moe::ModelError>().is_some()
            || c.downcast_ref::<crate::dataplane::DataPlaneError>()
                .is_some_and(|d| matches!(d, crate::dataplane::DataPlaneError::Store { .. }))
    })
}

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
        Command::Rebalance(a) => rebalance_cmd::run_cmd(a),
        Command::Serve(a) => serve_cmd::run(a),
        Command::Export(a) => export_cmd::run(a),
        Command::Report(a) => report_cmd::run(a, cli.quiet),
        Command::Stats(c) => stats_cmd::run(c, cli.quiet),
        Command::Bench(c) => bench_cmd::run(c, cli.quiet),
        Command::Config(c) => config_cmd::run(c),
        Command::Model(c) => model_cmd::run(c),
        Command::Run(a) => run_cmd::run(a),
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
