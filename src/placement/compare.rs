//! The placement comparison: every method asked for (and, with a move budget, the budgeted
//! re-plan of the plan in service) on one problem, each plan scored on the build workloads and
//! on the eval trace, and the table of it. `moeplan place` and `demo` call [`compare`].

use moeplan_solver::{
    BudgetOptions, Control, LayerTime, Method, MethodOptions, Metrics, Plan, PlanError, Problem,
    SolveReport, TimeModel, Topology, Workload, evaluate, layer_time, place, replan,
};
use serde::Serialize;

use super::{score, workload_from_trace};
use crate::config::{HardwareConfig, ModelConfig};
use crate::trace::Trace;

/// The solver part of a method's row: the solver's report and the wall-clock seconds.
#[derive(Debug, Clone, Serialize)]
pub struct SolverRun {
    /// Status, objective, bound, gap, how.
    #[serde(flatten)]
    pub report: SolveReport,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A plan's metrics on one trace, with the all-to-all volume in bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlanMetrics {
    /// The solver's metrics.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// `hops_per_token` x one hidden vector (`hidden_size` x 2 bytes, bf16): bytes a token sends
    /// between GPUs when every expert output goes to each next-layer expert's GPU unaggregated.
    pub a2a_bytes_per_token: f64,
    /// The layer-time model (`compute_ms`, `a2a_ms`, `layer_ms` per MoE layer), when computed.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub layer_time: Option<LayerTime>,
}

impl PlanMetrics {
    /// Adds the byte volume for `model`'s hidden size.
    pub fn new(metrics: Metrics, model: &ModelConfig) -> Self {
        PlanMetrics {
            metrics,
            a2a_bytes_per_token: metrics.hops_per_token * model.hidden_size as f64 * 2.0,
            layer_time: None,
        }
    }
}

/// One method's results.
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    /// Method name.
    pub name: String,
    /// Metrics on the traces it was built on.
    pub in_sample: PlanMetrics,
    /// Metrics on the eval trace.
    pub eval: Option<PlanMetrics>,
    /// Solver report (ILP).
    pub solver: Option<SolverRun>,
    /// The objective of the plan on the build workloads.
    pub objective: f64,
    /// Seconds to build the plan.
    pub seconds: f64,
    /// Expert replicas moved relative to the plan in service.
    pub experts_moved: Option<usize>,
}

/// The whole comparison (`moeplan place --json`).
#[derive(Debug, Serialize)]
pub struct PlaceReport {
    /// Model name.
    pub model: String,
    /// Hardware name.
    pub hardware: String,
    /// GPUs.
    pub gpus: usize,
    /// Physical slots per GPU per layer.
    pub slots_per_gpu: usize,
    /// Build traces.
    pub built_on: Vec<String>,
    /// Eval trace.
    pub eval_trace: Option<String>,
    /// One row per method.
    pub methods: Vec<MethodReport>,
}

/// What runs a comparison's solves: a time limit per method and its clock (the command line's
/// adds Ctrl-C and a spinner).
pub trait SolveClock: Control {
    /// Starts timing the solve of `label` with `limit_s` seconds.
    fn restart(&mut self, limit_s: f64, label: &str);
    /// Seconds since the last restart.
    fn elapsed(&self) -> f64;
}

/// A comparison to run.
#[derive(Debug, Clone)]
pub struct Comparison<'a> {
    /// The problem every method solves.
    pub problem: &'a Problem,
    /// Model config (names, hidden size).
    pub model: &'a ModelConfig,
    /// Hardware config (names, GPUs).
    pub hardware: &'a HardwareConfig,
    /// Its topology.
    pub topology: &'a Topology,
    /// The build workloads served one after the other (in-sample scores).
    pub in_sample: &'a Workload,
    /// The eval trace, scored in batches of `batch_tokens`.
    pub eval: Option<&'a Trace>,
    /// Tokens per batch of the layer-time proxy on the eval trace.
    pub batch_tokens: usize,
    /// The layer-time model, when `layer_ms` is reported.
    pub time: Option<TimeModel>,
    /// The methods, in order.
    pub methods: Vec<Method>,
    /// Their options.
    pub options: MethodOptions,
    /// Seconds each method may take.
    pub time_limit: f64,
    /// The plan in service (moves are counted against it).
    pub previous: Option<&'a Plan>,
    /// A budgeted re-plan of `previous` first (row `moeplan`).
    pub move_budget: Option<BudgetOptions>,
    /// What the plans were built on, for the report.
    pub built_on: Vec<String>,
    /// The eval trace's name, for the report.
    pub eval_trace: Option<String>,
}

/// A comparison's report, and the plan it chose (the budgeted re-plan, else `ilp`, else the
/// only method) with its row.
#[derive(Debug)]
pub struct Compared {
    /// Every row.
    pub report: PlaceReport,
    /// The chosen plan.
    pub chosen: Option<(Plan, MethodReport)>,
}

impl Comparison<'_> {
    /// `plan`'s in-sample metrics.
    fn in_sample(&self, plan: &Plan) -> PlanMetrics {
        let mut m = PlanMetrics::new(evaluate(self.in_sample, plan, self.topology), self.model);
        m.layer_time = self
            .time
            .as_ref()
            .map(|t| layer_time(self.in_sample, plan, self.topology, t));
        m
    }

    /// `plan`'s metrics on the eval trace.
    fn eval(&self, plan: &Plan) -> Option<PlanMetrics> {
        let t = self.eval?;
        let mut m = PlanMetrics::new(score(plan, t, self.topology, self.batch_tokens), self.model);
        m.layer_time = self
            .time
            .as_ref()
            .map(|time| layer_time(&workload_from_trace(t, 0), plan, self.topology, time));
        Some(m)
    }
}

/// Runs `c`: the budgeted re-plan if asked, then each method under `clock`.
pub fn compare(c: &Comparison<'_>, clock: &mut dyn SolveClock) -> Result<Compared, PlanError> {
    let sc = moeplan_solver::objective::Scaled::new(c.problem);
    let mut rows = Vec::new();
    let mut chosen: Option<(Plan, MethodReport)> = None;
    if let (Some(opts), Some(prev)) = (c.move_budget, c.previous) {
        let start = std::time::Instant::now();
        let r = replan(prev, c.in_sample, c.topology, opts);
        let row = MethodReport {
            name: "moeplan".into(),
            in_sample: c.in_sample(&r.plan),
            eval: c.eval(&r.plan),
            solver: None,
            objective: sc.value(&r.plan),
            seconds: start.elapsed().as_secs_f64(),
            experts_moved: Some(r.moves),
        };
        chosen = Some((r.plan, row.clone()));
        rows.push(row);
    }
    for &m in &c.methods {
        clock.restart(c.time_limit, m.name());
        let placed = place(m, c.problem, &c.options, &*clock)?;
        let seconds = clock.elapsed();
        let row = MethodReport {
            name: m.name().into(),
            in_sample: c.in_sample(&placed.plan),
            eval: c.eval(&placed.plan),
            solver: placed
                .report
                .clone()
                .map(|report| SolverRun { report, seconds }),
            objective: sc.value(&placed.plan),
            seconds,
            experts_moved: c.previous.map(|p| placed.plan.moved_from(p)),
        };
        if m == Method::Ilp || c.methods.len() == 1 {
            chosen = Some((placed.plan, row.clone()));
        }
        rows.push(row);
    }
    Ok(Compared {
        report: PlaceReport {
            model: c.model.name.clone(),
            hardware: c.hardware.name.clone(),
            gpus: c.hardware.gpus(),
            slots_per_gpu: c.problem.slots_per_gpu,
            built_on: c.built_on.clone(),
            eval_trace: c.eval_trace.clone(),
            methods: rows,
        },
        chosen,
    })
}

/// Splits a trace into `n` parts of whole sequences with about equal token counts.
pub fn split(t: &Trace, n: usize) -> Vec<Trace> {
    if n <= 1 {
        return vec![t.clone()];
    }
    let per = t.num_tokens().div_ceil(n);
    let mut out = Vec::new();
    let mut start = 0;
    for r in t.sequences() {
        if r.end - start >= per {
            out.push(t.slice(start..r.end));
            start = r.end;
        }
    }
    if start < t.num_tokens() {
        out.push(t.slice(start..t.num_tokens()));
    }
    out
}

fn fmt_metrics(m: Option<&PlanMetrics>) -> String {
    match m {
        Some(j) => {
            let m = &j.metrics;
            format!(
                "{:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>6.0} {:>7.4}",
                m.ir_mean,
                m.ir_worst,
                m.hop_rate,
                m.hop_rate_top1,
                m.hop_rate_internode,
                m.layer_time_proxy,
                j.a2a_bytes_per_token / 1024.0,
                j.layer_time.map_or(f64::NAN, |t| t.layer_ms)
            )
        }
        None => format!(
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>7}",
            "-", "-", "-", "-", "-", "-", "-", "-"
        ),
    }
}

impl PlaceReport {
    /// The comparison table: one row per method, in-sample and eval metrics, solver columns.
    pub fn render(&self) -> String {
        let mut s = format!(
            "placement: model {} on {} ({} GPUs, {} slots/GPU/layer); built on {}{}\n",
            self.model,
            self.hardware,
            self.gpus,
            self.slots_per_gpu,
            self.built_on.join(", "),
            self.eval_trace
                .as_ref()
                .map_or(String::new(), |e| format!("; eval on {e}"))
        );
        let head = format!(
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>7}",
            "IRmean", "IRwst", "H", "Htop1", "Hnode", "proxy", "a2aKB", "layerms"
        );
        let moved = self.methods.iter().any(|r| r.experts_moved.is_some());
        s += &format!(
            "{:<12} | {head} | {head} | {:>8} {:>8} {:>7} {:>6}{}\n",
            "method",
            "objective",
            "status",
            "gap",
            "secs",
            if moved { "  moved" } else { "" }
        );
        s += &format!("{:<12} | {:^63} | {:^63} |\n", "", "in-sample", "eval");
        for r in &self.methods {
            let (status, gap) = match &r.solver {
                Some(sv) => (
                    sv.report.status.clone(),
                    format!("{:.2}%", 100.0 * sv.report.gap),
                ),
                None => ("-".into(), "-".into()),
            };
            s += &format!(
                "{:<12} | {} | {} | {:>8.3} {:>8} {:>7} {:>6.2}{}\n",
                r.name,
                fmt_metrics(Some(&r.in_sample)),
                fmt_metrics(r.eval.as_ref()),
                r.objective,
                status,
                gap,
                r.seconds,
                r.experts_moved
                    .map_or(String::new(), |m| format!(" {m:>6}"))
            );
        }
        s += "IR: busiest GPU / mean (per layer: mean, worst); H: cross-GPU hop rate (all k x k pairs), \
          Htop1: top-1 only, Hnode: inter-node; proxy: sum over layers of the busiest GPU's load per \
          token (per batch); moved: replicas copied to switch from --previous; a2aKB: all-to-all KiB per token (cross-GPU pairs x one bf16 hidden \
          vector); layerms: layer-time model, ms per MoE layer (busiest GPU's expert compute + all-to-all \
          dispatch and combine at --time-batch tokens); objective: balance x sum IR (worst build workload) + comm x sum link cost.\n";
        s
    }
}
