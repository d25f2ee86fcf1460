//! `moeplan model init`: writes a small MoE model directory in a real model's routing shape.

use std::path::PathBuf;

use super::{BadInput, load_model};

/// Model directories for `moeplan run`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Write a small MoE model: a real model's routing shape (layers, experts, top-k, shared
    /// experts), widths scaled down, seeded random weights; one tensor group per expert.
    #[command(after_help = "Examples:\n  \
        moeplan model init --model deepseek-v2-lite --scale 0.03125 -o tiny-moe\n  \
        moeplan run --model-dir tiny-moe --trace traces/sample.parquet --capacity 16 --policy lru\n\n\
        The directory holds config.json, experts.safetensors (model.layers.L.mlp.experts.E.\
        {gate,up,down}_proj.weight, f32) and dense.safetensors (routers, norms, shared experts).")]
    Init(InitArgs),
}

/// `model init` options.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Model whose routing shape to take: a name in configs/models or a TOML path.
    #[arg(long, short, default_value = "deepseek-v2-lite")]
    pub model: String,
    /// Factor on the hidden and expert FFN sizes (0.03125: DeepSeek-V2-Lite's 2048 x 1408
    /// becomes 64 x 44, 33.8 KB per f32 expert).
    #[arg(long, short, default_value_t = 0.03125, value_parser = super::values::unit_fraction)]
    pub scale: f64,
    /// Seed of the weights.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output directory (created).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Runs a `model` subcommand.
pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Init(a) => {
            let model = load_model(&a.model)?;
            // The directory is made (and checked to take files) before the weights are.
            std::fs::create_dir_all(&a.output)
                .map_err(|e| BadInput::err(format!("--output {}: {e}", a.output.display())))?;
            super::check_output("--output", &a.output)?;
            let cfg = crate::moe::init(&model, a.scale, a.seed, &a.output)?;
            println!(
                "wrote {}: {} MoE layers x {} experts (top-{}, {} shared), hidden {}, expert ffn {}, \
                 {} bytes per expert",
                a.output.display(),
                cfg.moe_layers,
                cfg.experts,
                cfg.top_k,
                cfg.shared_experts,
                cfg.hidden,
                cfg.expert_ffn,
                cfg.expert_bytes()
            );
            Ok(())
        }
    }
}
