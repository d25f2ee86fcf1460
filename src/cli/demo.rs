//! `moeplan demo`: the main job on the shipped sample trace and the default configs.

use moeplan_solver::{Method, MethodOptions, Weights};

use super::control::CliControl;
use crate::placement::{Comparison, build_problem, compare, split, topology, workload_from_trace};
use crate::replay::{ReplayInputs, ReplayOptions, replay_trace};
use crate::stats::{StatsOptions, compute, render_table as render_stats};
use crate::trace::sample::{SAMPLE_TRACE, read_or_sample, uses_embedded};

/// Demo options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Trace to run on instead of the shipped sample.
    #[arg(long, short)]
    pub trace: Option<std::path::PathBuf>,
    /// Time limit of the demo's ILP solve, seconds.
    #[arg(long, default_value_t = 5.0, value_parser = super::values::positive)]
    pub time_limit: f64,
    /// Write the HTML report of the sample (`moeplan report`) to FILE instead of the tables:
    /// built on the first half of its sequences, scored on the second.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
}

/// Runs the demo: statistics, the placement comparison and the cache replay table.
pub fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(out) = &args.report {
        super::check_output("--report", out)?;
    }
    let path = args.trace.clone().unwrap_or_else(|| SAMPLE_TRACE.into());
    let trace = read_or_sample(&path)?;
    let built_in = if uses_embedded(&path) {
        " (built in)"
    } else {
        ""
    };
    if let Some(out) = &args.report {
        return super::report_cmd::demo_report(&path, &trace, args.time_limit, out, quiet);
    }
    println!("== moeplan demo: {}{built_in} ==\n", path.display());
    println!("-- trace statistics --");
    let stats = compute(&trace, None, &StatsOptions::default()).map_err(anyhow::Error::msg)?;
    print!("{}", render_stats(&stats));
    placement(&args, &path, &trace, quiet)?;
    replay(&path, &trace)
}

/// The placement comparison: built on the first half of the sequences, scored on the second.
fn placement(
    args: &DemoArgs,
    path: &std::path::Path,
    trace: &crate::trace::Trace,
    quiet: bool,
) -> anyhow::Result<()> {
    // Placement: build on the first half of the sequences, score on the second (out-of-sample).
    let model = super::load_model("deepseek-v2-lite")?;
    let hw = super::load_hardware("h100-8x-nvlink")?;
    if trace.shape().moe_layers != model.moe_layers || trace.shape().experts != model.experts {
        println!("\n(placement comparison skipped: the trace is not DeepSeek-V2-Lite shaped)");
        return Ok(());
    }
    let halves = split(trace, 2);
    let (build, eval) = (&halves[0], halves.get(1).unwrap_or(&halves[0]));
    println!(
        "\n-- expert placement: {} on {} (built on the first {} tokens, eval on the other {}) --",
        model.name,
        hw.name,
        build.num_tokens(),
        eval.num_tokens()
    );
    let batch = crate::placement::DEFAULT_BATCH_TOKENS;
    let problem = build_problem(&[build], &model, &hw, None, Weights::default(), 0)?;
    let topo = topology(&hw);
    let in_sample = workload_from_trace(build, batch);
    let comparison = Comparison {
        problem: &problem,
        model: &model,
        hardware: &hw,
        topology: &topo,
        in_sample: &in_sample,
        eval: Some(eval),
        batch_tokens: batch,
        time: None,
        methods: Method::ALL.to_vec(),
        options: MethodOptions::default(),
        time_limit: args.time_limit,
        previous: None,
        move_budget: None,
        built_on: vec![format!("{} (first half)", path.display())],
        eval_trace: Some(format!("{} (second half)", path.display())),
    };
    let mut ctl = CliControl::new(super::progress_enabled(quiet));
    let compared = compare(&comparison, &mut ctl)?;
    ctl.finish();
    print!("{}", compared.report.render());
    Ok(())
}

/// The cache replay table (16 of 64 experts per layer resident, batch 1).
fn replay(path: &std::path::Path, trace: &crate::trace::Trace) -> anyhow::Result<()> {
    println!("\n-- expert cache replay (16 of 64 experts per layer resident, batch 1) --");
    println!("(static and the markov predictor are fitted on this same trace: in-sample)");
    let model = super::load_model("deepseek-v2-lite")?;
    let hw = super::load_hardware("rtx4090-pcie4")?;
    let opts = ReplayOptions {
        predictor: "markov".into(),
        ..ReplayOptions::default()
    };
    let inputs = ReplayInputs {
        trace,
        trace_name: &path.display().to_string(),
        train: &[],
        model: &model,
        hardware: &hw,
        predictor_set: None,
    };
    print!("{}", replay_trace(&opts, &inputs)?.render());
    Ok(())
}
