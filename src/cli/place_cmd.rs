//! `moeplan place`: build expert placements from traces with one or all methods, score them
//! in-sample and on `--eval`, print a table or JSON, write the plan and SGLang's file.

use std::path::PathBuf;

use anyhow::Context;
use moeplan_solver::{BudgetOptions, Method, MethodOptions, Plan, Problem, Weights, Workload};

use super::BadInput;
use super::args::{load_hardware, load_model};
use super::control::CliControl;
use crate::config::{HardwareConfig, ModelConfig};
use crate::placement::{
    Comparison, MethodReport, PlacementError, PlanFile, check_trace, combined_workload, compare,
    problem_from_workloads, sglang_location, split, time_model, topology, workload_from_trace,
};
use crate::trace::{Format, Trace, read_trace};

/// Which method(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Experts in id order, the same number per GPU (vLLM/Megatron default).
    Contiguous,
    /// Expert e on GPU e mod G.
    RoundRobin,
    /// DeepSeek's EPLB: hot experts replicated, balanced packing (hierarchical or global).
    Eplb,
    /// ExFlow-style: consecutive-layer experts on the same GPU, equal counts per GPU.
    Affinity,
    /// Balance + communication (+ migration) optimised: joint ILP or exact chain DP where
    /// tractable, else per-layer HiGHS MIPs, swaps and Kernighan-Lin; bound and gap reported.
    Ilp,
    /// Every method, one table.
    All,
}

impl MethodArg {
    fn methods(self) -> Vec<Method> {
        match self {
            MethodArg::Contiguous => vec![Method::Contiguous],
            MethodArg::RoundRobin => vec![Method::RoundRobin],
            MethodArg::Eplb => vec![Method::Eplb],
            MethodArg::Affinity => vec![Method::Affinity],
            MethodArg::Ilp => vec![Method::Ilp],
            MethodArg::All => Method::ALL.to_vec(),
        }
    }
}

/// `moeplan place` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
moeplan place -t traces/esft/law.parquet -t traces/esft/summary.parquet --eval traces/esft/intent.parquet \\\n      \
--model deepseek-v2-lite --hardware h100-8x-nvlink --method all --time-limit 20\n  \
moeplan place -t traces/esft/law.parquet --model deepseek-v2-lite --hardware h100-2x8-ib --redundant 16 \\\n      \
--method ilp -o plan.json --sglang init_expert_location.json\n  \
moeplan place -t new.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink --method ilp \\\n      \
--previous plan.json --migration-weight 2 -o plan2.json   # re-plan, paying for moved experts\n  \
moeplan place -t recent.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink \\\n      \
--previous plan.json --move-budget 128 -o plan2.json   # at most 128 replicas copied\n  \
moeplan place --stats stats.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink --method ilp -o plan.json\n  \
moeplan place --counts expert_distribution_recorder_0.pt --model deepseek-v2-lite --hardware h100-8x-nvlink \\\n      \
--method eplb -o plan.json   # from SGLang's stat-mode dump")]
pub struct PlaceArgs {
    /// Trace(s) to build the plan on; each is one workload (balance: the worst of them).
    #[arg(
        long = "trace",
        short = 't',
        required_unless_present_any = ["stats", "counts"],
        value_name = "PATH"
    )]
    pub traces: Vec<PathBuf>,
    /// Build on a routing statistics file (`trace aggregate`) instead of traces: each of its
    /// workloads is one workload; the same plan as from the traces it was aggregated from.
    #[arg(long, value_name = "FILE", conflicts_with = "traces")]
    pub stats: Option<PathBuf>,
    /// Build on expert load counts alone: SGLang's `stat`-mode recorder dump
    /// (`logical_count` [buffer, layers, experts]), or the file of `export --to sglang-counts` /
    /// `--to kt`. Counts carry no layer-to-layer routing: `affinity` is refused (`all` skips
    /// it) and the ILP balances loads only.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["traces", "stats"])]
    pub counts: Option<PathBuf>,
    /// Model config (built-in name, see `moeplan config list`, or path to a TOML file).
    #[arg(long, short)]
    pub model: String,
    /// Hardware config (built-in name, see `moeplan config list`, or path to a TOML file).
    #[arg(long)]
    pub hardware: String,
    /// Redundant physical slots per layer in total (default: the hardware's per-GPU value x GPUs).
    #[arg(long)]
    pub redundant: Option<usize>,
    /// Placement method.
    #[arg(long, value_enum, default_value = "all")]
    pub method: MethodArg,
    /// Trace to score the plans on out-of-sample (never used to build them).
    #[arg(long, value_name = "TRACE")]
    pub eval: Option<PathBuf>,
    /// Time limit of the ILP solve, seconds.
    #[arg(long, default_value_t = 30.0, value_parser = super::values::positive)]
    pub time_limit: f64,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the plan (the ILP's with `--method all`) as moeplan plan JSON.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write SGLang's `--init-expert-location` JSON.
    #[arg(long, value_name = "FILE")]
    pub sglang: Option<PathBuf>,
    /// Also export the chosen plan for an engine (sglang, vllm, vllm-ascend), as
    /// `moeplan export --plan` would; the report goes to stderr.
    #[arg(long, value_enum, requires = "export")]
    pub to: Option<super::choices::TargetArg>,
    /// The file `--to` writes.
    #[arg(long, value_name = "FILE", requires = "to")]
    pub export: Option<PathBuf>,
    /// Weight of the load-imbalance term (sum over layers of IR).
    #[arg(long, default_value_t = 1.0, value_parser = super::values::non_negative)]
    pub balance_weight: f64,
    /// Weight of the communication term (sum over layer pairs of the link-cost-weighted hop rate).
    #[arg(long, default_value_t = 1.0, value_parser = super::values::non_negative)]
    pub comm_weight: f64,
    /// Split each trace into N parts (by sequence) that count as separate workloads: the ILP
    /// balances the worst part, a guard against workload shift.
    #[arg(long, default_value_t = 1)]
    pub splits: usize,
    /// EPLB expert groups (0: one per node).
    #[arg(long, default_value_t = 0)]
    pub eplb_groups: usize,
    /// Tokens per batch for the layer-time proxy.
    #[arg(long, default_value_t = crate::placement::DEFAULT_BATCH_TOKENS)]
    pub batch_tokens: usize,
    /// A previous plan file (the plan in service): report the expert replicas each new plan
    /// moves relative to it.
    #[arg(long, value_name = "PLAN")]
    pub previous: Option<PathBuf>,
    /// Weight of the migration term (needs --previous): the share of each layer's slots that must
    /// be copied to switch from the previous plan, summed over layers. 0 ignores migration; 1
    /// makes moving a whole layer cost as much as one unit of imbalance.
    #[arg(long, default_value_t = 0.0, requires = "previous", value_parser = super::values::non_negative)]
    pub migration_weight: f64,
    /// One move-budgeted re-plan from --previous instead of --method: at most N replicas
    /// copied, minimising balance + communication on the traces (row `moeplan`).
    #[arg(long, value_name = "N", requires = "previous")]
    pub move_budget: Option<usize>,
    /// Tokens per batch of the layer-time model (`layer_ms` = busiest GPU's expert compute +
    /// all-to-all dispatch and combine, from the hardware config).
    #[arg(long, default_value_t = crate::placement::DEFAULT_TIME_BATCH)]
    pub time_batch: usize,
}

/// Everything a placement run needs, loaded and checked.
pub struct Inputs {
    /// Model config.
    pub model: ModelConfig,
    /// Hardware config.
    pub hw: HardwareConfig,
    /// The build workloads served one after the other, with per-batch loads (in-sample scoring).
    pub in_sample: Workload,
    /// Eval trace.
    pub eval: Option<Trace>,
    /// The problem.
    pub problem: Problem,
    /// The plan in service (`--previous`).
    pub previous: Option<Plan>,
}

fn bad(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(e.to_string()))
}

/// Loads and checks the inputs of `args`.
pub fn load_inputs(args: &PlaceArgs) -> anyhow::Result<Inputs> {
    // Outputs are checked first, not found unwritable after a full solve.
    for (flag, p) in [
        ("--output", &args.output),
        ("--sglang", &args.sglang),
        ("--export", &args.export),
    ] {
        if let Some(p) = p {
            super::check_output(flag, p)?;
        }
    }
    let model = load_model(&args.model)?;
    let hw = load_hardware(&args.hardware)?;
    let read = |p: &PathBuf| -> anyhow::Result<Trace> {
        // The model's shape lets shapeless engine formats (SGLang's raw routed experts) be
        // read; a trace that has its own is checked against the model below, by name.
        let shape = model.shape();
        let t = Format::detect(p)
            .and_then(|f| read_trace(p, None, f.needs_shape().then_some(&shape)))
            .with_context(|| format!("reading trace {}", p.display()))?;
        check_trace(0, &t, &model).map_err(|e| bad(format!("{}: {e}", p.display())))?;
        Ok(t)
    };
    let eval = args.eval.as_ref().map(read).transpose()?;
    if args.splits == 0 {
        return Err(bad("--splits must be at least 1"));
    }
    if args.eplb_groups != 0
        && !moeplan_solver::baseline::eplb_groups_fit(args.eplb_groups, model.experts)
    {
        return Err(bad(format!(
            "--eplb-groups {}: must divide the model's {} experts",
            args.eplb_groups, model.experts
        )));
    }
    let groups = if args.eplb_groups == 0 {
        hw.nodes
    } else {
        args.eplb_groups
    };
    if !groups.is_multiple_of(hw.nodes) {
        tracing::warn!(
            "EPLB: {groups} groups do not divide among {} nodes; EPLB uses its global policy",
            hw.nodes
        );
    }
    let max_redundant = model.experts * (hw.gpus() - 1);
    if let Some(r) = args.redundant
        && r > max_redundant
    {
        return Err(bad(format!(
            "--redundant {r}: at most {max_redundant} for {} experts on {} GPUs \
             (at most one replica of an expert per GPU)",
            model.experts,
            hw.gpus()
        )));
    }
    let weights = Weights {
        balance: args.balance_weight,
        comm: args.comm_weight,
        migration: args.migration_weight,
    };
    let (build, scored) = match (&args.stats, &args.counts) {
        (Some(path), _) => stats_workloads(path, &model, args)?,
        (None, Some(path)) => counts_workloads(path, &model, args)?,
        (None, None) => {
            let traces = args
                .traces
                .iter()
                .map(read)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let parts: Vec<Trace> = traces.iter().flat_map(|t| split(t, args.splits)).collect();
            let build = parts.iter().map(|t| workload_from_trace(t, 0)).collect();
            let scored = traces
                .iter()
                .map(|t| workload_from_trace(t, args.batch_tokens))
                .collect::<Vec<_>>();
            (build, scored)
        }
    };
    let mut problem = problem_from_workloads(build, &hw, args.redundant, weights)
        .map_err(|e: PlacementError| bad(format!("infeasible placement setting: {e}")))?;
    let previous = match &args.previous {
        Some(p) => Some(PlanFile::read(p)?.plan().map_err(bad)?),
        None => None,
    };
    if let Some(prev) = &previous {
        problem = problem.with_previous(prev.clone()).map_err(|e| {
            bad(format!(
                "{}: {e}",
                args.previous.as_ref().expect("set").display()
            ))
        })?;
    }
    Ok(Inputs {
        model,
        hw,
        in_sample: combined_workload(&scored),
        eval,
        problem,
        previous,
    })
}

/// The build and scoring workloads of a statistics file (one per workload label, in label
/// order); the per-window loads are the scoring batches.
fn stats_workloads(
    path: &std::path::Path,
    model: &ModelConfig,
    args: &PlaceArgs,
) -> anyhow::Result<(Vec<Workload>, Vec<Workload>)> {
    let stats = crate::fleet::read_stats(path)?;
    let s = stats.shape;
    if s.moe_layers != model.moe_layers || s.experts != model.experts {
        return Err(bad(format!(
            "{}: statistics of {} MoE layers x {} experts, model `{}` has {} x {}",
            path.display(),
            s.moe_layers,
            s.experts,
            model.name,
            model.moe_layers,
            model.experts
        )));
    }
    if args.splits > 1 {
        return Err(bad(
            "--splits needs token-level traces; with --stats, aggregate the parts under their own \
             labels (trace aggregate --label) instead",
        ));
    }
    if stats.window_tokens != args.batch_tokens as u64 {
        tracing::warn!(
            window = stats.window_tokens,
            batch_tokens = args.batch_tokens,
            "the layer-time proxy uses the statistics' windows as batches"
        );
    }
    let build = stats
        .workloads
        .values()
        .map(|w| w.solver_workload(&s, false))
        .collect();
    let scored = stats
        .workloads
        .values()
        .map(|w| w.solver_workload(&s, true))
        .collect();
    Ok((build, scored))
}

/// The build and scoring workload of a counts file (`--counts`): loads only, one batch.
fn counts_workloads(
    path: &std::path::Path,
    model: &ModelConfig,
    args: &PlaceArgs,
) -> anyhow::Result<(Vec<Workload>, Vec<Workload>)> {
    if args.splits > 1 {
        return Err(bad(
            "--splits needs token-level traces; --counts holds load counts only",
        ));
    }
    let counts = crate::placement::read_counts(path).map_err(bad)?;
    let w = crate::placement::counts_workload(&counts, model, path).map_err(bad)?;
    Ok((vec![w.clone()], vec![w]))
}

/// The methods `args` asks for that can run on its inputs: from `--counts` (no layer-to-layer
/// routing) `affinity` cannot, and `all` leaves it out.
fn runnable_methods(args: &PlaceArgs) -> anyhow::Result<Vec<Method>> {
    if args.move_budget.is_some() {
        return Ok(Vec::new());
    }
    let mut methods = args.method.methods();
    if args.counts.is_some() {
        if args.method == MethodArg::Affinity {
            return Err(bad(
                "--method affinity places experts by which ones tokens use in consecutive \
                 layers; --counts holds per-layer load counts only: give a trace (-t) or \
                 --stats, or another method",
            ));
        }
        if methods.contains(&Method::Affinity) {
            tracing::warn!(
                "--counts: affinity left out (it needs layer-to-layer routing, which counts do not have)"
            );
            methods.retain(|&m| m != Method::Affinity);
        }
        if methods.contains(&Method::Ilp) && args.comm_weight > 0.0 {
            tracing::warn!(
                "--counts: no layer-to-layer routing, so the ILP's communication term is zero: \
                 it balances loads only; in-sample hop rates are not measured"
            );
        }
    }
    Ok(methods)
}

/// Runs `moeplan place`.
pub fn run(args: PlaceArgs, quiet: bool) -> anyhow::Result<()> {
    let methods = runnable_methods(&args)?;
    let inputs = load_inputs(&args)?;
    let topo = topology(&inputs.hw);
    let comparison = Comparison {
        problem: &inputs.problem,
        model: &inputs.model,
        hardware: &inputs.hw,
        topology: &topo,
        in_sample: &inputs.in_sample,
        eval: inputs.eval.as_ref(),
        batch_tokens: args.batch_tokens,
        time: Some(time_model(
            &inputs.model,
            &inputs.hw,
            args.time_batch.max(1),
        )),
        methods,
        options: MethodOptions {
            eplb_groups: args.eplb_groups,
            ..Default::default()
        },
        time_limit: args.time_limit,
        previous: inputs.previous.as_ref(),
        move_budget: args.move_budget.map(|moves| BudgetOptions {
            moves,
            balance: args.balance_weight,
            comm: args.comm_weight,
        }),
        built_on: built_on(&args),
        eval_trace: args.eval.as_ref().map(|p| p.display().to_string()),
    };
    let mut ctl = CliControl::new(super::progress_enabled(quiet) && !args.json);
    let compared = compare(&comparison, &mut ctl).map_err(bad)?;
    ctl.finish();
    if let Some((plan, row)) = &compared.chosen {
        write_outputs(&args, &inputs, plan, row)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&compared.report)?);
    } else {
        print!("{}", compared.report.render());
    }
    Ok(())
}

/// What the plans were built on: the trace paths, or the statistics or counts file.
fn built_on(args: &PlaceArgs) -> Vec<String> {
    match args.stats.as_ref().or(args.counts.as_ref()) {
        Some(p) => vec![p.display().to_string()],
        None => args
            .traces
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    }
}

fn write_outputs(
    args: &PlaceArgs,
    inputs: &Inputs,
    plan: &Plan,
    row: &MethodReport,
) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        let built_on = built_on(args);
        let mut file = PlanFile::new(plan, &inputs.model, &inputs.hw, &row.name, built_on);
        file.in_sample = Some(row.in_sample.metrics);
        file.solver = row.solver.as_ref().map(|s| s.report.clone());
        file.write(path)?;
    }
    if let Some(path) = &args.sglang {
        let text = serde_json::to_string(&sglang_location(plan, &inputs.model))?;
        crate::util::atomic_write_bytes(path, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let (Some(to), Some(path)) = (args.to, &args.export) {
        use crate::export::{Target, sglang_placement, vllm_ascend_map, vllm_initial_mapping};
        let report = match Target::from(to) {
            Target::Sglang => sglang_placement(plan, &inputs.model, path),
            Target::Vllm => vllm_initial_mapping(plan, path),
            Target::VllmAscend => vllm_ascend_map(plan, path),
            other => {
                return Err(bad(format!(
                    "place --to {other:?}: this target is made from a trace; use `moeplan export \
                     --to ...` with -t"
                )));
            }
        }
        .map_err(|e| match e.downcast::<crate::export::ExportError>() {
            Ok(x) => bad(x),
            Err(e) => e,
        })?;
        eprint!("{}", report.render());
    }
    Ok(())
}
