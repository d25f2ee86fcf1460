//! `moeplan demo`: the main job on the shipped sample trace and the default configs.

use moeplan_solver::{Method, MethodOptions, Weights, place};

use super::control::CliControl;
use super::place_cmd::{MethodJson, MetricsJson, PlaceJson, render_table, split};
use crate::placement::{build_problem, score, topology};
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
    let sc = moeplan_solver::objective::Scaled::new(&problem);
    let mut ctl = CliControl::new(super::progress_enabled(quiet));
    let mut rows = Vec::new();
    for m in Method::ALL {
        ctl.restart(args.time_limit, m.name());
        let placed = place(m, &problem, &MethodOptions::default(), &ctl)?;
        rows.push(MethodJson {
            name: m.name().into(),
            in_sample: MetricsJson::new(score(&placed.plan, build, &topo, batch), &model),
            eval: Some(MetricsJson::new(
                score(&placed.plan, eval, &topo, batch),
                &model,
            )),
            solver: placed
                .report
                .clone()
                .map(|report| super::place_cmd::SolverJson {
                    report,
                    seconds: ctl.elapsed(),
                }),
            objective: sc.value(&placed.plan),
            seconds: ctl.elapsed(),
            experts_moved: None,
        });
    }
    ctl.finish();
    print!(
        "{}",
        render_table(&PlaceJson {
            model: model.name.clone(),
            hardware: hw.name.clone(),
            gpus: hw.gpus(),
            slots_per_gpu: problem.slots_per_gpu,
            built_on: vec![format!("{} (first half)", path.display())],
            eval_trace: Some(format!("{} (second half)", path.display())),
            methods: rows,
        })
    );
    Ok(())
}

/// The cache replay table (16 of 64 experts per layer resident, batch 1).
fn replay(path: &std::path::Path, trace: &crate::trace::Trace) -> anyhow::Result<()> {
    println!("\n-- expert cache replay (16 of 64 experts per layer resident, batch 1) --");
    println!("(static and the markov predictor are fitted on this same trace: in-sample)");
    let mut args = super::replay_cmd::ReplayArgs::demo(path.to_path_buf());
    args.predictor = "markov".into();
    let model = super::load_model(&args.model)?;
    let hw = super::load_hardware(&args.hardware)?;
    let report = super::replay_cmd::replay(
        &args,
        trace,
        &[],
        crate::replay::Batching::Single,
        &model,
        &hw,
    )?;
    print!("{}", report.render());
    Ok(())
}
