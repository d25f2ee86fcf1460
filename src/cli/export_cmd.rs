//! `moeplan export`: write what a serving engine loads, from a plan or a trace.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::choices::{FormatArg, TargetArg};
use super::{BadInput, TraceArgs, load_model, load_traces};
use crate::config::ModelConfig;
use crate::export::{
    Exported, Target, kt_counts, kt_permutation, llamacpp_offload, parse_bytes, sglang_counts,
    sglang_placement, vllm_ascend_map, vllm_initial_mapping,
};
use crate::placement::PlanFile;
use crate::trace::Trace;

const EXAMPLES: &str = "\
Examples:
  moeplan export --plan plan.json --to sglang -o placement.json
  moeplan export --plan plan.json --to vllm-ascend -o expert_map.json
  moeplan export --to sglang-counts -t served.parquet --model deepseek-v2-lite -o counts.json
  moeplan export --to kt -t served.parquet --model deepseek-v2-lite --gpu-experts 8 -o counts.pt
  moeplan export --to kt -t served.parquet --model deepseek-v2-lite --gpu-experts 8 -o first.json
  moeplan export --to llamacpp -t served.parquet --model deepseek-v2-lite --gpu-memory 8GiB

Plan targets (sglang, vllm, vllm-ascend) read --plan; trace targets (sglang-counts, kt,
llamacpp) read -t and --model. The launch flags that load the file are printed.";

/// Arguments of `moeplan export`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ExportArgs {
    /// What to write.
    #[arg(long, value_enum)]
    pub to: TargetArg,
    /// A moeplan plan file (`place -o`), for sglang, vllm and vllm-ascend.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Trace(s) for sglang-counts, kt and llamacpp (any format moeplan reads). Repeat to
    /// concatenate.
    #[arg(long = "trace", short = 't', value_name = "PATH")]
    pub traces: Vec<PathBuf>,
    /// Force the trace format instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Model config (default: the plan's model).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Output file (required except for llamacpp, where it receives the choice as JSON).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// kt: experts per MoE layer kept on the GPU (`--kt-num-gpu-experts`).
    #[arg(long)]
    pub gpu_experts: Option<usize>,
    /// llamacpp: GPU memory for routed experts (8GiB, 512MiB, 24GB).
    #[arg(long)]
    pub gpu_memory: Option<String>,
    /// llamacpp: tokens per decode batch when counting distinct experts per layer.
    #[arg(long, default_value_t = 16)]
    pub batch_tokens: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn bad(m: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(m.to_string()))
}

fn out_path(args: &ExportArgs) -> anyhow::Result<&Path> {
    args.output
        .as_deref()
        .ok_or_else(|| bad(format!("--to {:?} needs -o FILE", args.to)))
}

fn model_of(args: &ExportArgs, plan: Option<&PlanFile>) -> anyhow::Result<ModelConfig> {
    match (&args.model, plan) {
        (Some(m), _) => load_model(m),
        (None, Some(p)) => load_model(&p.model).with_context(|| {
            format!(
                "the plan was built for model {:?}: pass --model with its config file",
                p.model
            )
        }),
        (None, None) => Err(bad(format!("--to {:?} needs --model", args.to))),
    }
}

fn traces(args: &ExportArgs, model: &ModelConfig) -> anyhow::Result<Trace> {
    if args.traces.is_empty() {
        return Err(bad(format!("--to {:?} needs -t TRACE", args.to)));
    }
    let input = TraceArgs {
        traces: args.traces.clone(),
        format: args.format,
    };
    load_traces(&input, Some(&model.shape()))
}

/// Runs `moeplan export` and prints the report.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let report = export(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// Writes the export `args` ask for.
pub fn export(args: &ExportArgs) -> anyhow::Result<Exported> {
    if let Some(o) = &args.output {
        super::check_output("--output", o)?;
    }
    let plan_file = match &args.plan {
        Some(p) => Some(PlanFile::read(p)?),
        None if Target::from(args.to).needs_plan() => {
            return Err(bad(format!("--to {:?} needs --plan PLAN", args.to)));
        }
        None => None,
    };
    let plan = plan_file
        .as_ref()
        .map(|p| {
            p.plan().map_err(|e| {
                bad(format!(
                    "{}: {e}",
                    args.plan.as_ref().expect("set").display()
                ))
            })
        })
        .transpose()?;
    let export_err = |e: anyhow::Error| match e.downcast::<crate::export::ExportError>() {
        Ok(x) => bad(x),
        Err(e) => e,
    };
    match Target::from(args.to) {
        Target::Sglang => {
            let model = model_of(args, plan_file.as_ref())?;
            sglang_placement(plan.as_ref().expect("needs_plan"), &model, out_path(args)?)
                .map_err(export_err)
        }
        Target::Vllm => vllm_initial_mapping(plan.as_ref().expect("needs_plan"), out_path(args)?)
            .map_err(export_err),
        Target::VllmAscend => {
            vllm_ascend_map(plan.as_ref().expect("needs_plan"), out_path(args)?).map_err(export_err)
        }
        Target::SglangCounts => {
            let model = model_of(args, plan_file.as_ref())?;
            let t = traces(args, &model)?;
            sglang_counts(&t, &model, out_path(args)?).map_err(export_err)
        }
        Target::Kt => {
            let model = model_of(args, plan_file.as_ref())?;
            let t = traces(args, &model)?;
            let out = out_path(args)?;
            if out.extension().and_then(|e| e.to_str()) == Some("json") {
                let n = args
                    .gpu_experts
                    .ok_or_else(|| bad("--to kt with a .json output needs --gpu-experts N"))?;
                kt_permutation(&t, &model, n, out).map_err(export_err)
            } else {
                kt_counts(&t, &model, args.gpu_experts, out).map_err(export_err)
            }
        }
        Target::Llamacpp => {
            let model = model_of(args, plan_file.as_ref())?;
            let t = traces(args, &model)?;
            let budget = parse_bytes(
                args.gpu_memory
                    .as_deref()
                    .ok_or_else(|| bad("--to llamacpp needs --gpu-memory SIZE"))?,
            )
            .map_err(bad)?;
            let c = llamacpp_offload(&t, &model, budget, args.batch_tokens).map_err(bad)?;
            let mut r = Exported::default();
            if let Some(o) = &args.output {
                crate::export::write_atomic(o, &(serde_json::to_string_pretty(&c)? + "\n"))?;
                r.files.push(o.display().to_string());
            }
            r.launch = match (&c.n_cpu_moe, c.override_tensor.is_empty()) {
                (_, true) => "(none: every layer's experts fit on the GPU)".into(),
                (Some(n), false) => {
                    format!("-ot \"{}\"   (same as --n-cpu-moe {n})", c.override_tensor)
                }
                (None, false) => format!("-ot \"{}\"", c.override_tensor),
            };
            r.notes.push(format!(
                "{} of {} MoE layers' experts on the GPU ({:.2} GiB a layer): blocks {:?}; on the \
                 CPU: blocks {:?}",
                c.gpu_blocks.len(),
                model.moe_layers,
                c.layer_bytes as f64 / 1024f64.powi(3),
                c.gpu_blocks,
                c.cpu_blocks
            ));
            r.notes.push(format!(
                "kept the layers whose {}-token batches touch the most distinct experts (the \
                 weights a CPU layer reads per batch); use with -ngl 999 so the rest is on the GPU",
                args.batch_tokens
            ));
            Ok(r)
        }
    }
}
