//! `moeplan bench place`: the placement solver at three scales on fixed workloads (Mixtral 32x8
//! on 4 GPUs (one node, and 2 nodes x 2), DeepSeek-V2-Lite 26x64 on 8 GPUs, DeepSeek-V3 58x256 on 64 GPUs with 64 redundant
//! slots on a synthetic trace): time, objective, bound, gap, peak memory. Not a timed test.

use anyhow::Context;
use moeplan_solver::{Method, MethodOptions, Problem, Topology, Weights, place};
use serde::Serialize;

use super::control::CliControl;
use crate::placement::workload_from_trace;
use crate::synth::{SynthParams, generate};
use crate::trace::ModelShape;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The placement solver at three scales.
    Place(BenchPlaceArgs),
    /// Load the cache daemon: N sessions replaying a trace over the socket; step latency, steps/s.
    Daemon(super::bench_daemon::BenchDaemonArgs),
    /// The offloaded forward pass: all-resident vs 25% lru vs 25% predictive; host copies vs memcpy.
    Run(super::bench_run::BenchRunArgs),
}

/// `bench place` options.
#[derive(Debug, clap::Args)]
pub struct BenchPlaceArgs {
    /// Synthetic tokens per case.
    #[arg(long, default_value_t = 20_000)]
    pub tokens: usize,
    /// Only the cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One benchmark case's result.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    /// Case name.
    pub case: String,
    /// Time limit given, seconds.
    pub limit_s: f64,
    /// Seconds taken.
    pub seconds: f64,
    /// Solver status.
    pub status: String,
    /// How the plan was found.
    pub how: String,
    /// Objective.
    pub objective: f64,
    /// EPLB's objective on the same problem.
    pub eplb_objective: f64,
    /// Lower bound.
    pub bound: f64,
    /// Gap.
    pub gap: f64,
    /// Peak resident memory of the process so far, MiB (Linux).
    pub peak_rss_mib: f64,
}

struct Case {
    name: &'static str,
    shape: ModelShape,
    topo: Topology,
    redundant: usize,
    limit: f64,
    real: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let nv = |gpus| Topology {
        nodes: 1,
        gpus_per_node: gpus,
        cost_intra: 1.0,
        cost_inter: 1.0,
    };
    vec![
        Case {
            name: "mixtral-8x7b 32x8, 4 GPUs (synthetic)",
            shape: ModelShape {
                moe_layers: 32,
                experts: 8,
                top_k: 2,
                first_moe_layer: 0,
            },
            topo: nv(4),
            redundant: 0,
            limit: 10.0,
            real: None,
        },
        Case {
            // The same model on 2 nodes x 2 GPUs (inter-node hop 9x): GPU labels now matter.
            name: "mixtral-8x7b 32x8, 2 nodes x 2 GPUs (synthetic)",
            shape: ModelShape {
                moe_layers: 32,
                experts: 8,
                top_k: 2,
                first_moe_layer: 0,
            },
            topo: Topology {
                nodes: 2,
                gpus_per_node: 2,
                cost_intra: 1.0,
                cost_inter: 9.0,
            },
            redundant: 0,
            limit: 10.0,
            real: None,
        },
        Case {
            name: "deepseek-v2-lite 26x64, 8 GPUs (ESFT law)",
            shape: ModelShape {
                moe_layers: 26,
                experts: 64,
                top_k: 6,
                first_moe_layer: 1,
            },
            topo: nv(8),
            redundant: 0,
            limit: 30.0,
            real: Some("traces/esft/law.parquet"),
        },
        Case {
            // 256 + 32 = 288 slots do not divide over 64 GPUs (moeplan refuses, naming the
            // constraint); one redundant slot per GPU is the nearest feasible setting.
            name: "deepseek-v3 58x256, 64 GPUs / 8 nodes, 64 redundant (synthetic)",
            shape: ModelShape {
                moe_layers: 58,
                experts: 256,
                top_k: 8,
                first_moe_layer: 3,
            },
            topo: Topology {
                nodes: 8,
                gpus_per_node: 8,
                cost_intra: 1.0,
                cost_inter: 9.0,
            },
            redundant: 64,
            limit: 60.0,
            real: None,
        },
    ]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand, quiet: bool) -> anyhow::Result<()> {
    let args = match cmd {
        BenchCommand::Place(a) => a,
        BenchCommand::Daemon(a) => return super::bench_daemon::run(a),
        BenchCommand::Run(a) => return super::bench_run::run_bench(a),
    };
    let mut ctl = CliControl::new(super::progress_enabled(quiet) && !args.json);
    let mut rows = Vec::new();
    for case in cases() {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !case.name.contains(o.as_str()))
        {
            continue;
        }
        let trace = match case.real {
            Some(p) => crate::trace::read_trace(std::path::Path::new(p), None, Some(&case.shape))
                .with_context(|| {
                format!("reading {p} (the benchmark runs in the source tree)")
            })?,
            None => generate(&SynthParams::default_for(case.shape), args.tokens, 7, None),
        };
        let w = workload_from_trace(&trace, 0);
        let p = Problem::new(vec![w], case.topo, case.redundant, Weights::default())?;
        let opts = MethodOptions::default();
        ctl.restart(case.limit, case.name);
        let eplb = place(Method::Eplb, &p, &opts, &ctl)?;
        let sc = moeplan_solver::objective::Scaled::new(&p);
        ctl.restart(case.limit, case.name);
        let placed = place(Method::Ilp, &p, &opts, &ctl)?;
        let seconds = ctl.elapsed();
        let r = placed.report.expect("ilp reports");
        rows.push(BenchRow {
            case: case.name.into(),
            limit_s: case.limit,
            seconds,
            status: r.status,
            how: r.how,
            objective: r.objective,
            eplb_objective: sc.value(&eplb.plan),
            bound: r.bound,
            gap: r.gap,
            peak_rss_mib: peak_rss_mib(),
        });
    }
    ctl.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<62} {:>6} {:>7} {:>10} {:>10} {:>10} {:>8} {:>9} status",
        "case", "limit", "secs", "objective", "eplb obj", "bound", "gap", "peak MiB"
    );
    for r in &rows {
        println!(
            "{:<62} {:>6.0} {:>7.2} {:>10.4} {:>10.4} {:>10.4} {:>7.2}% {:>9.0} {} ({})",
            r.case,
            r.limit_s,
            r.seconds,
            r.objective,
            r.eplb_objective,
            r.bound,
            100.0 * r.gap,
            r.peak_rss_mib,
            r.status,
            r.how
        );
    }
    Ok(())
}
