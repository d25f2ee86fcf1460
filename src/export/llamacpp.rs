//! llama.cpp: which layers' routed experts stay on the GPU under a memory budget.
//!
//! llama.cpp keeps a layer's experts in one tensor per projection (`blk.N.ffn_{gate,up,down}
//! _exps`, or fused `ffn_gate_up_exps`), so offload is per layer. `--n-cpu-moe N` keeps blocks
//! `0..N` on the CPU: common/arg.cpp pushes one `-ot`-style override per block built by
//! `llm_ffn_exps_block_regex(i)` = `blk\.{i}` + `LLM_FFN_EXPS_REGEX`
//! (`\.ffn_(up|down|gate|gate_up)_(ch|)exps`, common/common.h); `-ot PATTERN=CPU` matches tensor
//! names with a regex search. On the CPU a decode batch reads the weights of every distinct
//! expert its tokens route to, so the layers kept on the GPU are those whose batches touch the
//! most distinct experts in the trace.

use super::ExportError;
use crate::config::ModelConfig;
use crate::trace::Trace;

/// The layers chosen and the flags that say so.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LlamaCppChoice {
    /// Decoder block indices whose experts stay on the GPU.
    pub gpu_blocks: Vec<usize>,
    /// Decoder block indices whose experts go to the CPU.
    pub cpu_blocks: Vec<usize>,
    /// Bytes of one layer's routed experts.
    pub layer_bytes: u64,
    /// Mean distinct experts per batch, per MoE layer (the CPU cost of that layer).
    pub distinct_per_batch: Vec<f64>,
    /// The `-ot` argument (empty when every layer fits).
    pub override_tensor: String,
    /// `--n-cpu-moe N` when the CPU blocks are exactly the first N.
    pub n_cpu_moe: Option<usize>,
}

/// Parses `8GiB`, `512MiB`, `8GB`, `1e9` into bytes.
pub fn parse_bytes(s: &str) -> Result<u64, ExportError> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| ExportError(format!("cannot read {s:?} as a size (e.g. 8GiB, 512MiB)")))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        u => return Err(ExportError(format!("unknown size unit {u:?} in {s:?}"))),
    };
    if !(v.is_finite() && v >= 0.0) {
        return Err(ExportError(format!(
            "size {s:?} must be a non-negative number"
        )));
    }
    Ok((v * mul) as u64)
}

/// Chooses the GPU layers for a budget of `gpu_bytes` for routed experts.
pub fn llamacpp_offload(
    trace: &Trace,
    model: &ModelConfig,
    gpu_bytes: u64,
    batch_tokens: usize,
) -> Result<LlamaCppChoice, ExportError> {
    let s = trace.shape();
    if s.moe_layers != model.moe_layers || s.experts != model.experts {
        return Err(ExportError(format!(
            "trace shape {s:?} does not match model {}",
            model.name
        )));
    }
    let batch = batch_tokens.max(1);
    let layer_bytes = model.bytes_per_expert * model.experts as u64;
    let fit = ((gpu_bytes / layer_bytes.max(1)) as usize).min(model.moe_layers);
    let mut seen = vec![u32::MAX; model.experts];
    let mut distinct = vec![0f64; model.moe_layers];
    let batches = trace.num_tokens().div_ceil(batch).max(1);
    for (l, d) in distinct.iter_mut().enumerate() {
        let mut n = 0u64;
        for t in 0..trace.num_tokens() {
            let b = (t / batch) as u32;
            for &e in trace.experts(t, l) {
                if seen[e as usize] != b {
                    seen[e as usize] = b;
                    n += 1;
                }
            }
        }
        seen.fill(u32::MAX);
        *d = n as f64 / batches as f64;
    }
    let mut order: Vec<usize> = (0..model.moe_layers).collect();
    order.sort_by(|&a, &b| distinct[b].total_cmp(&distinct[a]).then(a.cmp(&b)));
    let mut gpu: Vec<usize> = order[..fit]
        .iter()
        .map(|l| l + model.first_moe_layer)
        .collect();
    gpu.sort_unstable();
    let cpu: Vec<usize> = (model.first_moe_layer..model.first_moe_layer + model.moe_layers)
        .filter(|b| !gpu.contains(b))
        .collect();
    let override_tensor = if cpu.is_empty() {
        String::new()
    } else {
        let alt: Vec<String> = cpu.iter().map(|b| b.to_string()).collect();
        format!(
            "blk\\.({})\\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU",
            alt.join("|")
        )
    };
    // `--n-cpu-moe N` covers blocks 0..N (dense blocks have no expert tensors).
    let n_cpu_moe = match cpu.last() {
        None => Some(0),
        Some(&last) if cpu.len() == last + 1 - model.first_moe_layer => Some(last + 1),
        Some(_) => None,
    };
    Ok(LlamaCppChoice {
        gpu_blocks: gpu,
        cpu_blocks: cpu,
        layer_bytes,
        distinct_per_batch: distinct,
        override_tensor,
        n_cpu_moe,
    })
}
