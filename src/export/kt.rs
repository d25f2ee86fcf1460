//! KTransformers expert offload in SGLang: which experts stay on the GPU.
//!
//! Checked against sglang-kt 0.7.2, `srt/layers/moe/kt_ep_wrapper.py` (the mask builder that
//! reads `server_args.kt_expert_placement_strategy`): with `frequency` and an
//! `--init-expert-location` ending in `.pt`, it `torch.load(.., weights_only=True)`s a dict with
//! `logical_count` (or a bare tensor), 3-D `[buffer, num_hidden_layers, experts]`, sums dim 0 and
//! keeps the `--kt-num-gpu-experts` x MoE-layers most frequent (layer, expert) pairs on the GPU
//! (`generate_gpu_experts_masks`). Stock sglang 0.5.23 (`layers/moe/kt_ep_wrapper.py`,
//! `mask_cpu_expert_ids`) keeps ids `< kt_num_gpu_experts` on the GPU: the first N slots of each
//! layer, which a per-layer permutation through `--init-expert-location` (`physical_to_logical_map`)
//! can fill with the experts moeplan chooses (experimental: the routed ids it masks are the
//! physical ids after that map only where expert-location dispatch is active).

use std::path::Path;

use super::{ExportError, Exported, decoder_counts, write_atomic};
use crate::config::ModelConfig;
use crate::trace::Trace;
use crate::trace::torch::{DType, Tensor, TensorData, TorchValue, write_torch};

/// The `.pt` with `logical_count` int32 `[1, num_hidden_layers, experts]` token counts.
pub fn kt_counts(
    trace: &Trace,
    model: &ModelConfig,
    gpu_experts: Option<usize>,
    path: &Path,
) -> anyhow::Result<Exported> {
    if path.extension().and_then(|e| e.to_str()) != Some("pt") {
        return Err(ExportError(format!(
            "{}: sglang-kt reads activation counts only from a file ending in .pt",
            path.display()
        ))
        .into());
    }
    let counts = decoder_counts(trace, model)?;
    let mut data = Vec::with_capacity(model.layers * model.experts);
    for row in &counts {
        for &c in row {
            data.push(
                i32::try_from(c).map_err(|_| ExportError(format!("count {c} exceeds int32")))?,
            );
        }
    }
    let value = TorchValue::Dict(vec![(
        "logical_count".into(),
        TorchValue::Tensor(Tensor {
            dtype: DType::I32,
            shape: vec![1, model.layers, model.experts],
            data: TensorData::I32(data),
        }),
    )]);
    write_torch(path, &value)?;
    let n = gpu_experts.map_or("N".to_string(), |n| n.to_string());
    Ok(Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--kt-expert-placement-strategy frequency --kt-num-gpu-experts {n} \
             --init-expert-location {}",
            path.display()
        ),
        notes: vec![
            format!(
                "sglang-kt keeps the {n} x {} most frequent (layer, expert) pairs of these counts \
                 on the GPU (N is per MoE layer on average, not per layer)",
                model.moe_layers
            ),
            "stock SGLang reads the same file as init_by_eplb counts when expert parallelism is on"
                .into(),
        ],
        warnings: Vec::new(),
        experimental: false,
    })
}

/// Experts of each MoE layer ordered by descending token count (ties by id).
fn by_count(counts: &[Vec<u64>], model: &ModelConfig) -> Vec<Vec<u16>> {
    (model.first_moe_layer..model.first_moe_layer + model.moe_layers)
        .map(|d| {
            let mut order: Vec<u16> = (0..model.experts as u16).collect();
            order.sort_by_key(|&e| (std::cmp::Reverse(counts[d][e as usize]), e));
            order
        })
        .collect()
}

/// An `--init-expert-location` JSON permutation putting each layer's `n` most used experts in
/// the first `n` physical slots (experimental).
pub fn kt_permutation(
    trace: &Trace,
    model: &ModelConfig,
    n: usize,
    path: &Path,
) -> anyhow::Result<Exported> {
    super::require_json(path, "SGLang")?;
    if n == 0 || n > model.experts {
        return Err(ExportError(format!(
            "--gpu-experts must be in 1..={} (experts per layer), got {n}",
            model.experts
        ))
        .into());
    }
    let counts = decoder_counts(trace, model)?;
    let order = by_count(&counts, model);
    let trivial: Vec<u16> = (0..model.experts as u16).collect();
    let rows: Vec<&[u16]> = (0..model.layers)
        .map(|d| match d.checked_sub(model.first_moe_layer) {
            Some(l) if l < model.moe_layers => order[l].as_slice(),
            _ => trivial.as_slice(),
        })
        .collect();
    let text =
        serde_json::to_string(&serde_json::json!({ "physical_to_logical_map": rows }))? + "\n";
    write_atomic(path, &text)?;
    let total: u64 = counts.iter().flatten().sum();
    let kept: u64 = order
        .iter()
        .enumerate()
        .map(|(l, o)| {
            o[..n]
                .iter()
                .map(|&e| counts[model.first_moe_layer + l][e as usize])
                .sum::<u64>()
        })
        .sum();
    Ok(Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--kt-num-gpu-experts {n} --init-expert-location {}",
            path.display()
        ),
        notes: vec![format!(
            "the first {n} slots of each MoE layer hold its {n} most used experts: {:.1}% of the \
             trace's expert selections",
            100.0 * kept as f64 / total.max(1) as f64
        )],
        warnings: vec![
            "stock SGLang masks ids >= --kt-num-gpu-experts after the logical-to-physical map only \
             when expert-location dispatch is active (expert parallelism): check the GPU experts \
             in the server log"
                .into(),
        ],
        experimental: true,
    })
}
