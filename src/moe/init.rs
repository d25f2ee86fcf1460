//! `moeplan model init`: a model directory with seeded random weights in a real model's routing
//! shape, scaled down in width.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};

use super::ModelError;
use super::config::{CONFIG_FILE, DENSE_FILE, EXPERTS_FILE, MoeConfig, VERSION};
use crate::config::ModelConfig;
use crate::dataplane::{PROJECTIONS, expert_tensor_name};

/// Uniform weights with variance 1 / `fan_in` (the scale of a trained layer's inputs).
fn weights(rng: &mut ChaCha8Rng, n: usize, fan_in: usize) -> Vec<u8> {
    let a = (3.0 / fan_in as f32).sqrt();
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        out.extend_from_slice(&rng.random_range(-a..a).to_le_bytes());
    }
    out
}

/// The three projections of a SwiGLU of width `ffn`: (name suffix, shape, bytes).
fn swiglu(
    rng: &mut ChaCha8Rng,
    hidden: usize,
    ffn: usize,
) -> [(&'static str, Vec<usize>, Vec<u8>); 3] {
    [
        (
            PROJECTIONS[0],
            vec![ffn, hidden],
            weights(rng, ffn * hidden, hidden),
        ),
        (
            PROJECTIONS[1],
            vec![ffn, hidden],
            weights(rng, ffn * hidden, hidden),
        ),
        (
            PROJECTIONS[2],
            vec![hidden, ffn],
            weights(rng, hidden * ffn, ffn),
        ),
    ]
}

fn write(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    meta: &MoeConfig,
) -> anyhow::Result<()> {
    let views = tensors
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let info: HashMap<String, String> = [
        ("model".to_string(), meta.model.clone()),
        ("seed".to_string(), meta.seed.to_string()),
    ]
    .into();
    let bytes = safetensors::serialize(views, Some(info))?;
    crate::util::atomic_write_bytes(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a model directory `dir` for `model` at `scale` (hidden and expert FFN sizes times
/// `scale`, at least 4 and 2) with weights from `seed`; returns its config.
pub fn init(model: &ModelConfig, scale: f64, seed: u64, dir: &Path) -> anyhow::Result<MoeConfig> {
    if !(scale > 0.0 && scale <= 1.0) {
        return Err(ModelError::Args(format!("--scale {scale}: must be in (0, 1]")).into());
    }
    let cfg = MoeConfig {
        version: VERSION,
        model: model.name.clone(),
        scale,
        first_moe_layer: model.first_moe_layer,
        moe_layers: model.moe_layers,
        experts: model.experts,
        shared_experts: model.shared_experts,
        top_k: model.top_k,
        hidden: ((model.hidden_size as f64 * scale).round() as usize).max(4),
        expert_ffn: ((model.expert_ffn_size as f64 * scale).round() as usize).max(2),
        rms_eps: 1e-6,
        seed,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, f) = (cfg.hidden, cfg.expert_ffn);
    let mut experts = Vec::with_capacity(cfg.moe_layers * cfg.experts * 3);
    let mut dense = Vec::new();
    for l in 0..cfg.moe_layers {
        let layer = cfg.first_moe_layer + l;
        for e in 0..cfg.experts {
            for (proj, shape, bytes) in swiglu(&mut rng, h, f) {
                experts.push((expert_tensor_name(layer, e, proj), shape, bytes));
            }
        }
        let norm: Vec<u8> = (0..h)
            .flat_map(|_| (1.0 + rng.random_range(-0.1f32..0.1)).to_le_bytes())
            .collect();
        dense.push((
            format!("model.layers.{layer}.post_attention_layernorm.weight"),
            vec![h],
            norm,
        ));
        dense.push((
            format!("model.layers.{layer}.mlp.gate.weight"),
            vec![cfg.experts, h],
            weights(&mut rng, cfg.experts * h, h),
        ));
        if cfg.shared_experts > 0 {
            for (proj, shape, bytes) in swiglu(&mut rng, h, f * cfg.shared_experts) {
                dense.push((
                    format!("model.layers.{layer}.mlp.shared_experts.{proj}.weight"),
                    shape,
                    bytes,
                ));
            }
        }
    }
    write(&dir.join(EXPERTS_FILE), &experts, &cfg)?;
    write(&dir.join(DENSE_FILE), &dense, &cfg)?;
    let path = dir.join(CONFIG_FILE);
    crate::util::atomic_write_bytes(
        &path,
        (serde_json::to_string_pretty(&cfg)? + "\n").as_bytes(),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(cfg)
}
