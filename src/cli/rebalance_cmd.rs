//! `moeplan rebalance`: re-balancing policies over a stream of traces, scored window by window.

use std::path::PathBuf;

use anyhow::Context;
use moeplan_solver::{Method, MethodOptions, Plan, Unlimited, Weights, Workload, place};

use super::choices::{FormatArg, PolicyArg};
use super::{BadInput, TraceArgs, load_hardware, load_model, load_traces};
use crate::config::{HardwareConfig, ModelConfig};
use crate::fleet::stats_windows;
use crate::placement::{
    DEFAULT_TIME_BATCH, check_trace, combined_workload, problem_from_workloads, redundant_slots,
    time_model, topology, workload_from_trace,
};
use crate::rebalance::{
    DEFAULT_COMM_WEIGHT, DEFAULT_HISTORY_HALF_LIFE, DEFAULT_MOVE_BUDGET, RebalancePolicy,
    RebalanceSetup, StreamWindow, run, trace_windows,
};
use crate::trace::{Format, Trace, read_trace};

/// `moeplan rebalance` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
moeplan rebalance -t traces/esft/intent.parquet -t traces/esft/law.parquet -t traces/esft/summary.parquet \\\n      \
--model deepseek-v2-lite --hardware h100-8x-nvlink --window 1000\n  \
moeplan rebalance -t traces/esft/law.parquet --model deepseek-v2-lite --hardware h100-2x8-ib \\\n      \
--window 500 --policy eplb,moeplan --move-budget 64 --train-trace traces/esft/intent.parquet --json\n  \
moeplan trace aggregate -t traces/esft/law.parquet --window 1000 --window-pairs -o law.stats.parquet\n  \
moeplan rebalance --stats law.stats.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink --window 1000\n\n\
The traces are one stream, in order. After every window of W tokens each policy re-plans from\n\
what it has seen so far; the plan is scored on the next window. static: one offline plan (EPLB\n\
on --train-trace, else contiguous); eplb: EPLB from scratch on the last window; moeplan: at most\n\
--move-budget moves from the plan in service, minimising balance + communication on decayed\n\
counts, the balance also held on each of the last 6 windows. With --stats, the windows come\n\
from a statistics file aggregated with --window-pairs (each workload's windows follow each\n\
other: the same report as from the traces when each trace but the last holds a whole number of\n\
windows). JSON: {\"window\", \"policies\": [{\"name\", \"mean_ir\", \"worst_ir\", \"mean_hop\",\n\
\"a2a_bytes_per_token\", \"mean_layer_ms\", \"moves_per_rebalance\", \"bytes_moved_per_rebalance\",\n\
\"replan_seconds\", \"rebalances\", \"series\": [per window]}], ...}.")]
pub struct RebalanceArgs {
    /// Trace(s) of the stream, in order (an ESFT directory, .parquet or .jsonl). Repeatable.
    #[arg(
        long = "trace",
        short = 't',
        required_unless_present = "stats",
        value_name = "PATH"
    )]
    pub traces: Vec<PathBuf>,
    /// Re-balance over the windows of a statistics file (`trace aggregate --window-pairs`)
    /// instead of traces: its workloads in label order, each one's windows in order, are the
    /// stream; the file's window must equal --window.
    #[arg(long, value_name = "FILE", conflicts_with = "traces")]
    pub stats: Option<PathBuf>,
    /// Force the trace format instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Model config (name under configs/models or path).
    #[arg(long, short)]
    pub model: String,
    /// Hardware config (name under configs/hardware or path).
    #[arg(long)]
    pub hardware: String,
    /// Tokens per window (re-balance period).
    #[arg(long)]
    pub window: usize,
    /// Policies, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "static,eplb,moeplan"
    )]
    pub policy: Vec<PolicyArg>,
    /// Most (layer, expert) replicas `moeplan` moves per re-balance.
    #[arg(long, default_value_t = DEFAULT_MOVE_BUDGET)]
    pub move_budget: usize,
    /// Offline traces the `static` plan (and everyone's starting plan) is built on with EPLB.
    #[arg(long = "train-trace", value_name = "PATH")]
    pub train_trace: Vec<PathBuf>,
    /// Redundant physical slots per layer in total (default: the hardware's).
    #[arg(long)]
    pub redundant: Option<usize>,
    /// Half-life, in windows, of the counts `moeplan` re-plans on.
    #[arg(long, default_value_t = DEFAULT_HISTORY_HALF_LIFE, value_parser = super::values::positive)]
    pub history_half_life: f64,
    /// Weight of the imbalance term of `moeplan`.
    #[arg(long, default_value_t = 1.0, value_parser = super::values::non_negative)]
    pub balance_weight: f64,
    /// Weight of the communication term of `moeplan` (the imbalance term's is 1 by default).
    #[arg(long, default_value_t = DEFAULT_COMM_WEIGHT, value_parser = super::values::non_negative)]
    pub comm_weight: f64,
    /// Tokens per batch of the layer-time model.
    #[arg(long, default_value_t = DEFAULT_TIME_BATCH)]
    pub batch_tokens: usize,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `moeplan rebalance`.
pub fn run_cmd(args: RebalanceArgs) -> anyhow::Result<()> {
    let bad = |m: String| anyhow::Error::new(BadInput(m));
    let model = load_model(&args.model)?;
    let hw = load_hardware(&args.hardware)?;
    let shape = model.shape();
    if args.batch_tokens == 0 {
        return Err(bad("--batch-tokens must be at least 1".into()));
    }
    let weights = Weights {
        balance: args.balance_weight,
        comm: args.comm_weight,
        migration: 0.0,
    };
    let stream = match &args.stats {
        Some(path) => {
            let stats = crate::fleet::read_stats(path)?;
            stats_windows(&stats, &model, args.window)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?
        }
        None => {
            let input = TraceArgs {
                traces: args.traces.clone(),
                format: args.format,
            };
            let trace = load_traces(&input, Some(&shape))?;
            check_trace(0, &trace, &model).map_err(|e| bad(e.to_string()))?;
            trace_windows(&trace, args.window).map_err(|e| bad(e.to_string()))?
        }
    };
    let train = args
        .train_trace
        .iter()
        .map(|p| {
            read_trace(p, args.format.map(Format::from), Some(&shape))
                .with_context(|| format!("reading training trace {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<Trace>>>()?;
    let initial = initial_plan(&train, &stream, &model, &hw, args.redundant, weights)?;
    let setup = RebalanceSetup {
        window: args.window,
        topology: topology(&hw),
        redundant: redundant_slots(&hw, args.redundant),
        initial,
        move_budget: args.move_budget,
        weights,
        history_half_life: args.history_half_life,
        eplb_groups: 0,
        time: time_model(&model, &hw, args.batch_tokens),
        expert_bytes: model.bytes_per_expert as f64,
    };
    let policies: Vec<RebalancePolicy> = args.policy.iter().map(|&p| p.into()).collect();
    let mut report = run(&setup, &stream, &policies).map_err(|e| bad(e.to_string()))?;
    report.model = model.name.clone();
    report.hardware = hw.name.clone();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The plan everyone starts from (and `static` keeps): EPLB on `train` when given, else the
/// contiguous layout.
pub fn initial_plan(
    train: &[Trace],
    stream: &[StreamWindow],
    model: &ModelConfig,
    hw: &HardwareConfig,
    redundant: Option<usize>,
    weights: Weights,
) -> anyhow::Result<Plan> {
    let bad = |m: String| anyhow::Error::new(BadInput(m));
    let (method, workload) = if train.is_empty() {
        let parts: Vec<Workload> = stream.iter().map(|w| w.workload.clone()).collect();
        (Method::Contiguous, combined_workload(&parts))
    } else {
        let refs: Vec<&Trace> = train.iter().collect();
        let all = Trace::concat(&refs).map_err(bad)?;
        check_trace(0, &all, model).map_err(|e| bad(format!("--train-trace: {e}")))?;
        (Method::Eplb, workload_from_trace(&all, 0))
    };
    let p = problem_from_workloads(vec![workload], hw, redundant, weights)
        .map_err(|e| bad(format!("infeasible placement setting: {e}")))?;
    Ok(place(method, &p, &MethodOptions::default(), &Unlimited)?.plan)
}
