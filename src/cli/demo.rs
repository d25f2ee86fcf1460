//! `moeplan demo`: the main job on the shipped sample trace and the default configs.

use crate::stats::{StatsOptions, compute, render_table};
use crate::trace::read_trace;
use crate::util::shipped;

/// The sample trace the demo runs on.
pub const SAMPLE_TRACE: &str = "traces/sample.parquet";

/// Demo options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Trace to run on instead of the shipped sample.
    #[arg(long, short)]
    pub trace: Option<std::path::PathBuf>,
}

/// Runs the demo.
pub fn run(args: DemoArgs, _quiet: bool) -> anyhow::Result<()> {
    let path = args.trace.unwrap_or_else(|| shipped(SAMPLE_TRACE));
    let trace = read_trace(&path, None, None)?;
    println!("== moeplan demo: {} ==\n", path.display());
    println!("-- trace statistics --");
    let stats = compute(&trace, None, &StatsOptions::default()).map_err(anyhow::Error::msg)?;
    print!("{}", render_table(&stats));
    println!("\n-- expert cache replay (16 of 64 experts per layer resident, batch 1) --");
    println!("(static and the markov predictor are fitted on this same trace: in-sample)");
    let mut args = super::replay_cmd::ReplayArgs::demo(path.clone());
    args.predictor = "markov".into();
    let model = super::load_model(&args.model)?;
    let hw =
        crate::config::HardwareConfig::load(&crate::config::resolve("hardware", &args.hardware))?;
    let report = super::replay_cmd::replay(
        &args,
        &trace,
        &[],
        crate::replay::Batching::Single,
        &model,
        &hw,
    )?;
    print!("{}", report.render());
    Ok(())
}
