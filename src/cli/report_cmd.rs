//! `moeplan report`: computes every chart's numbers with the functions behind `trace stats`,
//! `place`, `replay`, `predict eval` and `rebalance`, and writes one self-contained HTML page.

use std::path::{Path, PathBuf};

use anyhow::Context;
use moeplan_solver::metrics::gpu_loads;
use moeplan_solver::{Method, MethodOptions, Plan, Weights, Workload, evaluate, place};

use super::BadInput;
use super::args::load_model;
use super::control::CliControl;
use super::rebalance_cmd::initial_plan;
use super::report_counts::{Counts, from_stats, from_traces};
use crate::config::{HardwareConfig, ModelConfig};
use crate::fleet::{RoutingStats, read_stats};
use crate::placement::{
    DEFAULT_BATCH_TOKENS, DEFAULT_TIME_BATCH, PlanFile, check_trace, problem_from_workloads,
    redundant_slots, time_model, topology, workload_from_trace,
};
use crate::predict::{Kind, PredictorSet, TrainOptions, evaluate_online};
use crate::rebalance::{
    DEFAULT_COMM_WEIGHT, DEFAULT_HISTORY_HALF_LIFE, DEFAULT_MOVE_BUDGET, RebalancePolicy,
    RebalanceSetup,
};
use crate::replay::{ReplayInputs, ReplayOptions, replay_trace};
use crate::report::{
    AffinityData, CacheData, GpuLoads, LoadData, MethodLoads, PlacementData, RebalanceData,
    RecallData, ReportData, ShiftData, render, titles,
};
use crate::stats::shift;
use crate::trace::{Trace, read_trace};

/// `moeplan report` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
moeplan report -t traces/esft/law.parquet -t traces/esft/summary.parquet --eval traces/esft/intent.parquet \\\n      \
--model deepseek-v2-lite --hardware h100-8x-nvlink -o report.html\n  \
moeplan report -t traces/esft/law.parquet --model deepseek-v2-lite --hardware h100-2x8-ib --redundant 16 \\\n      \
--plan plan.json --predictor predictor.safetensors --cache-hardware rtx4090-pcie4 -o report.html\n  \
moeplan report --stats stats.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink -o report.html\n  \
moeplan demo --report demo.html   # the same page for the shipped sample\n\n\
The page needs nothing but a browser: SVG and CSS are inline, nothing is fetched. Each chart\n\
names the command that prints its numbers. With two -t traces the load shift between them is\n\
shown; with one -t and --eval, the shift from it to the eval trace. The re-balancing charts\n\
run `moeplan rebalance` over the -t traces then --eval as one stream (windows of --window\n\
tokens, default a sixteenth of the stream), when it holds three windows or more.\n\
With --stats (a statistics file of `trace aggregate`), the charts that need only counts are\n\
drawn (load, shift between workloads, placement, per-GPU loads, affinity, and re-balancing when\n\
aggregated with --window-pairs); the cache and recall charts need token-level traces and the\n\
page says so.")]
pub struct ReportArgs {
    /// Trace(s) the plans, the static ranking and the predictor are built on. Repeatable.
    #[arg(
        long = "trace",
        short = 't',
        required_unless_present = "stats",
        value_name = "PATH"
    )]
    pub traces: Vec<PathBuf>,
    /// Build on a routing statistics file (`trace aggregate`) instead of traces: one workload
    /// per label; only the charts that need counts alone.
    #[arg(long, value_name = "FILE", conflicts_with = "traces")]
    pub stats: Option<PathBuf>,
    /// Model config (name under configs/models or path).
    #[arg(long, short)]
    pub model: String,
    /// Hardware config the plans are for (name under configs/hardware or path).
    #[arg(long)]
    pub hardware: String,
    /// A plan file (`moeplan place -o`) to map and compare; default: the ILP plan, solved here.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Predictor: a predictor file (`moeplan predict train -o`), or a kind (markov, mix,
    /// learned) trained here on the -t traces.
    #[arg(long, default_value = "mix")]
    pub predictor: String,
    /// Trace to score everything on out-of-sample (never used to build anything).
    #[arg(long, value_name = "TRACE")]
    pub eval: Option<PathBuf>,
    /// Output HTML file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Hardware of the cache replay (its host-to-device link and compute constants);
    /// default: --hardware.
    #[arg(long)]
    pub cache_hardware: Option<String>,
    /// Redundant physical slots per layer in total (default: the hardware's, or the plan's).
    #[arg(long)]
    pub redundant: Option<usize>,
    /// Time limit of the ILP solve, seconds (without --plan).
    #[arg(long, default_value_t = 10.0, value_parser = super::values::positive)]
    pub time_limit: f64,
    /// Cache capacities (experts resident per layer) of the hit-ratio chart, comma-separated
    /// (default: top-k and 1/8, 3/16, 1/4, 3/8, 1/2, 3/4 of the experts).
    #[arg(long, value_delimiter = ',')]
    pub capacities: Vec<usize>,
    /// Capacity of the time-per-token chart (default: a quarter of the experts).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Largest look-ahead of the recall chart (and of a predictor trained here).
    #[arg(long, default_value_t = 4)]
    pub lookahead: usize,
    /// Inter-layer pairs in the affinity graph.
    #[arg(long, default_value_t = 30)]
    pub top_pairs: usize,
    /// Tokens per window of the re-balancing charts (default: a sixteenth of the stream; with
    /// --stats, the file's window).
    #[arg(long)]
    pub window: Option<usize>,
}

/// A trace and the name it is shown under.
pub struct Named {
    /// Shown name (a path, or a description for the demo's halves).
    pub name: String,
    /// The trace.
    pub trace: Trace,
}

/// Everything a report is made from, loaded and checked.
pub struct Inputs {
    /// The command shown on the page.
    pub command: String,
    /// A note on the inputs.
    pub note: Option<String>,
    /// Model, plan hardware and cache hardware, with the names they were given by.
    pub model: (String, ModelConfig),
    /// Hardware of the plans.
    pub hardware: (String, HardwareConfig),
    /// Hardware of the cache replay.
    pub cache_hardware: (String, HardwareConfig),
    /// Build traces (empty with a statistics file).
    pub build: Vec<Named>,
    /// A statistics file to build on instead, and its path.
    pub stats: Option<(String, RoutingStats)>,
    /// Eval trace.
    pub eval: Option<Named>,
    /// A plan file and its plan.
    pub plan: Option<(String, Plan)>,
    /// The predictor argument (file or kind).
    pub predictor: String,
    /// Settings of `ReportArgs` not covered above.
    pub redundant: Option<usize>,
    /// ILP time limit.
    pub time_limit: f64,
    /// Capacities of the hit-ratio chart (empty: default).
    pub capacities: Vec<usize>,
    /// Capacity of the stall chart.
    pub capacity: Option<usize>,
    /// Recall look-ahead.
    pub lookahead: usize,
    /// Pairs of the affinity graph.
    pub top_pairs: usize,
    /// Re-balancing window (default: see [`super::report_counts::default_window`]).
    pub window: Option<usize>,
}

pub(super) fn bad(m: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(m.to_string()))
}

fn load_hw(name: &str) -> anyhow::Result<HardwareConfig> {
    super::load_hardware(name)
}

/// Quotes a path for a shell command line when it needs it.
pub(super) fn sh(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Inputs {
    /// Loads and checks the inputs of `args`.
    pub fn load(args: &ReportArgs) -> anyhow::Result<Inputs> {
        let model = load_model(&args.model)?;
        let hw = load_hw(&args.hardware)?;
        let cache_name = args.cache_hardware.clone().unwrap_or(args.hardware.clone());
        let cache_hw = load_hw(&cache_name)?;
        let read = |p: &PathBuf| -> anyhow::Result<Named> {
            let trace = read_trace(p, None, None)
                .with_context(|| format!("reading trace {}", p.display()))?;
            check_trace(0, &trace, &model).map_err(|e| bad(format!("{}: {e}", p.display())))?;
            Ok(Named {
                name: p.display().to_string(),
                trace,
            })
        };
        let build = args
            .traces
            .iter()
            .map(read)
            .collect::<anyhow::Result<_>>()?;
        let eval = args.eval.as_ref().map(read).transpose()?;
        let stats = match &args.stats {
            Some(p) => {
                let st = read_stats(p)?;
                st.check_model(&model)
                    .map_err(|e| bad(format!("{}: {e}", p.display())))?;
                Some((p.display().to_string(), st))
            }
            None => None,
        };
        if args.window == Some(0) {
            return Err(bad("--window must be at least 1"));
        }
        let plan = match &args.plan {
            Some(p) => {
                let plan = PlanFile::read(p)?
                    .plan()
                    .map_err(|e| bad(format!("{}: {e}", p.display())))?;
                Some((p.display().to_string(), plan))
            }
            None => None,
        };
        if !Path::new(&args.predictor).is_file() {
            parse_kind(&args.predictor)?;
        }
        let command = std::iter::once("moeplan".to_string())
            .chain(std::env::args().skip(1).map(|a| sh(&a)))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Inputs {
            command,
            note: None,
            model: (args.model.clone(), model),
            hardware: (args.hardware.clone(), hw),
            cache_hardware: (cache_name, cache_hw),
            build,
            stats,
            eval,
            plan,
            predictor: args.predictor.clone(),
            redundant: args.redundant,
            time_limit: args.time_limit,
            capacities: args.capacities.clone(),
            capacity: args.capacity,
            lookahead: args.lookahead,
            top_pairs: args.top_pairs,
            window: args.window,
        })
    }

    /// The build input as flags: `{flag} A {flag} B` for traces, `--stats FILE` for statistics.
    pub(super) fn build_flags(&self, flag: &str) -> String {
        if let Some((name, _)) = &self.stats {
            return format!("--stats {}", sh(name));
        }
        self.build
            .iter()
            .map(|n| format!("{flag} {}", sh(&n.name)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `moeplan report`.
pub fn run(args: ReportArgs, quiet: bool) -> anyhow::Result<()> {
    super::check_output("--output", &args.output)?;
    let inputs = Inputs::load(&args)?;
    write_report(&inputs, &args.output, quiet)
}

/// Computes the report of `inputs` and writes it to `out`.
pub fn write_report(inputs: &Inputs, out: &Path, quiet: bool) -> anyhow::Result<()> {
    let data = gather(inputs, quiet)?;
    let html = render(&data)?;
    crate::util::atomic_write_bytes(out, html.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    if !quiet {
        eprintln!(
            "wrote {} ({} charts)",
            out.display(),
            data.chart_titles().len()
        );
    }
    Ok(())
}

/// `moeplan demo --report FILE`: the report of `trace` (the shipped sample) built on the first
/// half of its sequences and scored on the second, for DeepSeek-V2-Lite on 8 H100s (2 redundant
/// slots per GPU), the cache replayed on one RTX 4090.
pub fn demo_report(
    path: &Path,
    trace: &Trace,
    time_limit: f64,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let model = load_model("deepseek-v2-lite")?;
    check_trace(0, trace, &model).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let halves = crate::placement::split(trace, 2);
    let [first, second] = <[Trace; 2]>::try_from(halves).map_err(|_| {
        bad(format!(
            "{}: too few sequences to split in two",
            path.display()
        ))
    })?;
    let note = format!(
        "The demo splits {} by sequence: everything is built on the first half ({} sequences,          {} tokens) and scored on the second ({} sequences, {} tokens); the commands name the          halves as such.",
        path.display(),
        first.num_sequences(),
        first.num_tokens(),
        second.num_sequences(),
        second.num_tokens()
    );
    let name = |h: &str| format!("{} ({h} half)", path.display());
    let inputs = Inputs {
        command: format!("moeplan demo --report {}", sh(&out.display().to_string())),
        note: Some(note),
        model: ("deepseek-v2-lite".into(), model),
        hardware: ("h100-8x-nvlink".into(), load_hw("h100-8x-nvlink")?),
        cache_hardware: ("rtx4090-pcie4".into(), load_hw("rtx4090-pcie4")?),
        build: vec![Named {
            name: name("first"),
            trace: first,
        }],
        stats: None,
        eval: Some(Named {
            name: name("second"),
            trace: second,
        }),
        plan: None,
        predictor: "mix".into(),
        redundant: Some(16),
        time_limit,
        capacities: Vec::new(),
        capacity: Some(16),
        lookahead: 4,
        top_pairs: 30,
        window: None,
    };
    write_report(&inputs, out, quiet)
}

/// The default capacities: top-k and 1/8, 3/16, 1/4, 3/8, 1/2, 3/4 of the experts.
fn default_capacities(top_k: usize, experts: usize) -> Vec<usize> {
    let mut c: Vec<usize> = [2usize, 3, 4, 6, 8, 12]
        .iter()
        .map(|&n| (experts * n).div_ceil(16))
        .chain(std::iter::once(top_k))
        .filter(|&c| c >= top_k.max(1) && c <= experts)
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// Computes every chart's numbers.
pub fn gather(inp: &Inputs, quiet: bool) -> anyhow::Result<ReportData> {
    let model = &inp.model.1;
    let refs: Vec<&Trace> = inp.build.iter().map(|n| &n.trace).collect();
    let (counts, combined) = match &inp.stats {
        Some((name, stats)) => (from_stats(inp, name, stats)?, None),
        None => {
            let combined = Trace::concat(&refs).map_err(bad)?;
            (from_traces(inp, &combined)?, Some(combined))
        }
    };
    let load = LoadData {
        trace: counts.names.join(" + "),
        counts: counts.load.clone(),
        imbalance: counts.imbalance.clone(),
        command: counts.load_command.clone(),
    };
    let affinity = AffinityData {
        pairs: counts.hop1.strongest.clone(),
        min_count: counts.hop1.min_count,
        layers: model.moe_layers,
        experts: model.experts,
        command: counts.affinity_command.clone(),
    };
    let shift = shift_data(inp, &counts)?;
    let placement = placement_data(inp, &counts, quiet)?;
    let mut omitted = Vec::new();
    let (cache, recall) = match &combined {
        Some(c) => {
            let (cache, recall) = cache_and_recall(inp, c)?;
            (Some(cache), Some(recall))
        }
        None => {
            let why = "Needs token-level routing, which a statistics file does not hold (it keeps \
                       counts): make the report of a sample of the traces (-t) for this chart.";
            for t in [
                titles::HIT,
                titles::STALL,
                titles::RECALL,
                titles::RECALL_ONLINE,
            ] {
                omitted.push((t.to_string(), why.to_string()));
            }
            (None, None)
        }
    };
    let rebalance = match rebalance_data(inp, &counts)? {
        Ok(r) => Some(r),
        Err(why) => {
            for t in [titles::REBALANCE, titles::REBALANCE_MOVES] {
                omitted.push((t.to_string(), why.clone()));
            }
            None
        }
    };
    let mut settings = vec![
        ("ILP time limit (s)".to_string(), inp.time_limit.to_string()),
        (
            "batch tokens (layer-time proxy)".to_string(),
            match &inp.stats {
                Some((_, st)) => format!("{} (the statistics' window)", st.window_tokens),
                None => DEFAULT_BATCH_TOKENS.to_string(),
            },
        ),
    ];
    if let Some(cache) = &cache {
        settings.extend([
            (
                "capacities (experts per layer)".to_string(),
                cache
                    .by_capacity
                    .iter()
                    .map(|(c, _)| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "time-per-token capacity".to_string(),
                cache.capacity.to_string(),
            ),
            ("predictor".to_string(), cache.predictor.clone()),
            ("recall look-ahead".to_string(), inp.lookahead.to_string()),
        ]);
    }
    settings.push(("affinity pairs".to_string(), inp.top_pairs.to_string()));
    settings.push((
        "placement weights".into(),
        "balance 1, comm 1 (moeplan place defaults)".into(),
    ));
    if let Some(r) = &rebalance {
        settings.extend([
            (
                "re-balancing window (tokens)".to_string(),
                r.report.window.to_string(),
            ),
            (
                "re-balancing move budget (moeplan)".to_string(),
                r.report.move_budget.to_string(),
            ),
            (
                "re-balancing history half-life (windows)".to_string(),
                r.report.history_half_life.to_string(),
            ),
        ]);
    }
    Ok(ReportData {
        command: inp.command.clone(),
        note: inp.note.clone(),
        model: model.clone(),
        hardware: inp.hardware.1.clone(),
        cache_hardware: inp.cache_hardware.1.clone(),
        build: match &inp.stats {
            Some((name, _)) => vec![format!("{name} (workloads {})", counts.names.join(", "))],
            None => counts.names.clone(),
        },
        build_tokens: counts.tokens,
        from_stats: inp.stats.is_some(),
        eval: inp
            .eval
            .as_ref()
            .map(|n| (n.name.clone(), n.trace.num_tokens())),
        load,
        shift,
        placement,
        affinity,
        cache,
        recall,
        rebalance,
        omitted,
        settings,
    })
}

/// `moeplan rebalance` with its defaults over the stream of `counts`, or why there is none.
fn rebalance_data(inp: &Inputs, counts: &Counts) -> anyhow::Result<Result<RebalanceData, String>> {
    let stream = match &counts.stream {
        Ok(s) => s,
        Err(why) => return Ok(Err(why.clone())),
    };
    let (model, hw) = (&inp.model.1, &inp.hardware.1);
    let weights = Weights::default();
    let initial = initial_plan(&[], &stream.windows, model, hw, inp.redundant, weights)?;
    let setup = RebalanceSetup {
        window: stream.window,
        topology: topology(hw),
        redundant: redundant_slots(hw, inp.redundant),
        initial,
        move_budget: DEFAULT_MOVE_BUDGET,
        weights: Weights {
            comm: DEFAULT_COMM_WEIGHT,
            ..weights
        },
        history_half_life: DEFAULT_HISTORY_HALF_LIFE,
        eplb_groups: 0,
        time: time_model(model, hw, DEFAULT_TIME_BATCH),
        expert_bytes: model.bytes_per_expert as f64,
    };
    let mut report = crate::rebalance::run(&setup, &stream.windows, &RebalancePolicy::ALL)
        .map_err(|e| bad(e.to_string()))?;
    report.model = model.name.clone();
    report.hardware = hw.name.clone();
    let redundant = inp
        .redundant
        .map_or(String::new(), |r| format!(" --redundant {r}"));
    Ok(Ok(RebalanceData {
        report,
        stream: stream.name.clone(),
        command: format!(
            "moeplan rebalance {} --model {} --hardware {} --window {}{redundant} --json",
            stream.flags,
            sh(&inp.model.0),
            sh(&inp.hardware.0),
            stream.window
        ),
    }))
}

/// Shift between the first two build workloads, or from the only one to the eval trace.
fn shift_data(inp: &Inputs, counts: &Counts) -> anyhow::Result<Option<ShiftData>> {
    let [(na, ca), (nb, cb), ..] = &counts.parts[..] else {
        return Ok(None);
    };
    let shape = &counts.shape;
    let s = shift(nb, ca, cb, shape, shape).map_err(bad)?;
    let e = shape.experts;
    let delta = (0..shape.moe_layers)
        .map(|l| {
            let (ra, rb) = (&ca[l * e..(l + 1) * e], &cb[l * e..(l + 1) * e]);
            let (ta, tb) = (
                ra.iter().sum::<u64>().max(1) as f64,
                rb.iter().sum::<u64>().max(1) as f64,
            );
            ra.iter()
                .zip(rb)
                .map(|(&x, &y)| y as f64 / tb - x as f64 / ta)
                .collect()
        })
        .collect();
    let command = match &inp.stats {
        None => format!(
            "moeplan trace stats -t {} --against {} --model {} --json   # shift.jsd_per_layer",
            sh(na),
            sh(nb),
            sh(&inp.model.0)
        ),
        Some(_) => format!(
            "{}   # per workload; JSD per layer of the two workloads' loads",
            counts
                .load_command
                .replace("select layer, src", "select workload, layer, src")
        ),
    };
    Ok(Some(ShiftData {
        a: na.clone(),
        b: nb.clone(),
        delta,
        jsd_per_layer: s.jsd_per_layer,
        command,
    }))
}

/// Per-GPU loads of `plan` on workload `w`, each layer over its mean, and the plan's metrics.
fn gpu_view(plan: &Plan, w: &Workload, inp: &Inputs) -> GpuLoads {
    let relative = (0..plan.layers)
        .map(|l| {
            let g = gpu_loads(w.load(l), &plan.spread(l), plan.gpus);
            let mean = g.iter().sum::<f64>() / g.len().max(1) as f64;
            g.iter()
                .map(|&x| if mean > 0.0 { x / mean } else { 0.0 })
                .collect()
        })
        .collect();
    GpuLoads {
        relative,
        metrics: evaluate(w, plan, &topology(&inp.hardware.1)),
    }
}

fn placement_data(inp: &Inputs, counts: &Counts, quiet: bool) -> anyhow::Result<PlacementData> {
    let (model, hw) = (&inp.model.1, &inp.hardware.1);
    let mut redundant = inp.redundant;
    if let Some((name, plan)) = &inp.plan {
        if (plan.layers, plan.experts, plan.gpus) != (model.moe_layers, model.experts, hw.gpus()) {
            return Err(bad(format!(
                "{name}: the plan is for {} layers x {} experts on {} GPUs; model {} on {} has {} x {} on {}",
                plan.layers,
                plan.experts,
                plan.gpus,
                model.name,
                hw.name,
                model.moe_layers,
                model.experts,
                hw.gpus()
            )));
        }
        let r = plan.physical() - plan.experts;
        if redundant.is_some_and(|x| x != r) {
            return Err(bad(format!(
                "--redundant {} disagrees with {name}, which has {r} redundant slots per layer",
                redundant.unwrap_or(0)
            )));
        }
        redundant = Some(r);
    }
    let problem =
        problem_from_workloads(counts.workloads.clone(), hw, redundant, Weights::default())
            .map_err(|e| bad(format!("infeasible placement setting: {e}")))?;
    let mut ctl = CliControl::new(super::progress_enabled(quiet));
    let mut plans: Vec<(String, Plan)> = Vec::new();
    match &inp.plan {
        Some((name, plan)) => plans.push((format!("plan ({name})"), plan.clone())),
        None => {
            ctl.restart(inp.time_limit, Method::Ilp.name());
            let placed =
                place(Method::Ilp, &problem, &MethodOptions::default(), &ctl).map_err(bad)?;
            plans.push(("ilp".into(), placed.plan));
        }
    }
    for m in [Method::Eplb, Method::Contiguous] {
        let placed = place(m, &problem, &MethodOptions::default(), &ctl).map_err(bad)?;
        plans.push((m.name().into(), placed.plan));
    }
    ctl.finish();
    let eval = inp
        .eval
        .as_ref()
        .map(|e| workload_from_trace(&e.trace, DEFAULT_BATCH_TOKENS));
    let methods = plans
        .iter()
        .map(|(name, plan)| MethodLoads {
            name: name.clone(),
            in_sample: gpu_view(plan, &counts.in_sample, inp),
            eval: eval.as_ref().map(|w| gpu_view(plan, w, inp)),
        })
        .collect();
    let shown = &plans[0].1;
    let share = counts
        .load
        .iter()
        .map(|row| {
            let t = row.iter().sum::<u64>().max(1) as f64;
            row.iter().map(|&c| c as f64 / t).collect()
        })
        .collect();
    let mut command = format!(
        "moeplan place {}{} --model {} --hardware {} --redundant {} --method all --time-limit {}",
        inp.build_flags("-t"),
        inp.eval
            .as_ref()
            .map_or(String::new(), |e| format!(" --eval {}", sh(&e.name))),
        sh(&inp.model.0),
        sh(&inp.hardware.0),
        problem.physical() - problem.experts(),
        inp.time_limit
    );
    if let Some((name, _)) = &inp.plan {
        command += &format!("   # rows eplb and contiguous; the mapped plan is {name}");
    }
    Ok(PlacementData {
        plan_source: plans[0].0.clone(),
        gpus: shown.gpus,
        slots_per_gpu: shown.slots_per_gpu,
        map: (0..shown.layers).map(|l| shown.layer(l).to_vec()).collect(),
        replicas: (0..shown.layers).map(|l| shown.counts(l)).collect(),
        share,
        methods,
        command,
    })
}

/// A predictor kind named on the command line.
fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    <super::choices::KindArg as clap::ValueEnum>::from_str(s, true)
        .map(Kind::from)
        .map_err(|_| {
            bad(format!(
                "--predictor {s:?} is neither a file nor a kind (markov, mix, learned)"
            ))
        })
}

/// The predictor set of `--predictor`: a file, or a kind trained on the build traces.
fn predictor_set(inp: &Inputs) -> anyhow::Result<(PredictorSet, String, String)> {
    let p = Path::new(&inp.predictor);
    if p.is_file() {
        let set =
            PredictorSet::load(p).with_context(|| format!("loading predictor {}", p.display()))?;
        if set.shape() != inp.build[0].trace.shape() {
            return Err(bad(format!(
                "predictor {} is for shape {:?}, the traces have {:?}",
                p.display(),
                set.shape(),
                inp.build[0].trace.shape()
            )));
        }
        return Ok((set, inp.predictor.clone(), String::new()));
    }
    let kind = parse_kind(&inp.predictor)?;
    let refs: Vec<&Trace> = inp.build.iter().map(|n| &n.trace).collect();
    let opts = TrainOptions {
        lookahead: inp
            .lookahead
            .clamp(1, inp.model.1.moe_layers.saturating_sub(1).max(1)),
        ..TrainOptions::default()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let (set, _) = PredictorSet::train(&refs, kind, &opts, &hidden, &mut |_| {})
        .context("training the predictor")?;
    let train_cmd = format!(
        "moeplan predict train {} --model {} --kind {} --lookahead {} -o predictor.safetensors && ",
        inp.build_flags("-t"),
        sh(&inp.model.0),
        inp.predictor.to_lowercase(),
        opts.lookahead
    );
    Ok((set, "predictor.safetensors".into(), train_cmd))
}

fn cache_and_recall(inp: &Inputs, combined: &Trace) -> anyhow::Result<(CacheData, RecallData)> {
    let model = &inp.model.1;
    let (set, file, train_cmd) = predictor_set(inp)?;
    // Out-of-sample when there is an eval trace: replay it, rank and train on the build traces.
    let (trace, name, train): (&Trace, String, Vec<Trace>) = match &inp.eval {
        Some(e) => (
            &e.trace,
            e.name.clone(),
            inp.build.iter().map(|n| n.trace.clone()).collect(),
        ),
        None => (
            combined,
            inp.build
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
                .join(" + "),
            Vec::new(),
        ),
    };
    let replayed_flags = match &inp.eval {
        Some(e) => format!("-t {}", sh(&e.name)),
        None => inp.build_flags("-t"),
    };
    let capacities = if inp.capacities.is_empty() {
        default_capacities(model.top_k, model.experts)
    } else {
        let mut c = inp.capacities.clone();
        c.sort_unstable();
        c.dedup();
        c
    };
    let capacity = inp
        .capacity
        .unwrap_or((model.experts / 4).max(model.top_k).min(model.experts));
    let mut all = capacities.clone();
    if !all.contains(&capacity) {
        all.push(capacity);
        all.sort_unstable();
    }
    let mut opts = ReplayOptions {
        predictor: file.clone(),
        ..ReplayOptions::default()
    };
    let inputs = ReplayInputs {
        trace,
        trace_name: &name,
        train: &train,
        model,
        hardware: &inp.cache_hardware.1,
        predictor_set: Some(&set),
    };
    let mut by_capacity = Vec::with_capacity(all.len());
    let mut constants = None;
    for &c in &all {
        opts.capacity = c;
        let r = replay_trace(&opts, &inputs)?;
        constants = Some(r.constants);
        by_capacity.push((c, r.policies));
    }
    let train_flags = if inp.eval.is_some() {
        format!(" {}", inp.build_flags("--train-trace"))
    } else {
        String::new()
    };
    let cache = CacheData {
        trace: name.clone(),
        out_of_sample: inp.eval.is_some(),
        constants: constants.ok_or_else(|| bad("no capacity to replay"))?,
        by_capacity,
        capacity,
        predictor: format!("{} from {}", set.main().name(), file),
        command: format!(
            "{train_cmd}moeplan replay {replayed_flags}{train_flags} --model {} --hardware {} --predictor {} --capacity {{C}} --json",
            sh(&inp.model.0),
            sh(&inp.cache_hardware.0),
            sh(&file)
        ),
    };
    let d = inp.lookahead.clamp(1, set.lookahead());
    let k = model.top_k;
    let report = crate::predict::evaluate(&set.all(), trace, d, &[k, 2 * k]);
    let mut online = set.all_online(set.online_options(None));
    let online = evaluate_online(&mut online, trace, d, &[k, 2 * k], 0..trace.num_tokens());
    let eval_cmd = format!(
        "moeplan predict eval --predictor {} {replayed_flags} --lookahead {d}",
        sh(&file)
    );
    let recall = RecallData {
        report,
        online,
        trace: name,
        command: format!("{train_cmd}{eval_cmd} --json"),
        online_command: format!("{train_cmd}{eval_cmd} --online --json"),
    };
    Ok((cache, recall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capacities_span_top_k_to_three_quarters() {
        assert_eq!(default_capacities(6, 64), vec![6, 8, 12, 16, 24, 32, 48]);
        assert_eq!(default_capacities(2, 8), vec![2, 3, 4, 6]);
        assert_eq!(
            default_capacities(8, 256),
            vec![8, 32, 48, 64, 96, 128, 192]
        );
    }

    #[test]
    fn shell_quoting_only_where_needed() {
        assert_eq!(sh("traces/esft/law.parquet"), "traces/esft/law.parquet");
        assert_eq!(sh("my trace.parquet"), "'my trace.parquet'");
        assert_eq!(sh("it's"), "'it'\\''s'");
    }
}
