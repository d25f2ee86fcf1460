//! Files that serving engines load, written from a moeplan plan or a trace: SGLang, vLLM,
//! vLLM-Ascend, KTransformers (in SGLang) and llama.cpp. Each writer returns what it wrote, the
//! engine's launch flags that load it, and warnings about what the engine will not honour.

mod kt;
mod llamacpp;
mod sglang;
mod vllm;

pub use kt::{kt_counts, kt_permutation};
pub use llamacpp::{LlamaCppChoice, llamacpp_offload, parse_bytes};
pub use sglang::{sglang_counts, sglang_placement};
pub use vllm::{vllm_ascend_map, vllm_initial_mapping};

use crate::config::ModelConfig;
use crate::trace::Trace;

/// The engines `moeplan export --to` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A plan as SGLang's `physical_to_logical_map` ([`sglang_placement`]).
    Sglang,
    /// A trace's token counts as SGLang's `logical_count` ([`sglang_counts`]).
    SglangCounts,
    /// A plan as the offline-EPLB `eplb_initial_mapping` JSONL ([`vllm_initial_mapping`]).
    Vllm,
    /// A plan as vLLM-Ascend's `expert_map_path` JSON ([`vllm_ascend_map`]).
    VllmAscend,
    /// A trace's counts as sglang-kt's `.pt`, and a GPU-first permutation for stock SGLang.
    Kt,
    /// A trace's per-layer loads as llama.cpp's `-ot` / `--n-cpu-moe` choice.
    Llamacpp,
}

impl Target {
    /// Whether this target reads a plan (the others read a trace).
    pub fn needs_plan(self) -> bool {
        matches!(self, Target::Sglang | Target::Vllm | Target::VllmAscend)
    }
}

/// What an export wrote and how to use it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Exported {
    /// Files written.
    pub files: Vec<String>,
    /// The engine flags that load them (one string, shell-ready).
    pub launch: String,
    /// Notes on what the engine does with the file.
    pub notes: Vec<String>,
    /// What the engine will not honour, or may not.
    pub warnings: Vec<String>,
    /// Whether the target relies on an unreleased or unverified engine path.
    pub experimental: bool,
}

impl Exported {
    /// The report as text: files, launch flags, notes and warnings, one per line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            s += &format!("wrote {f}\n");
        }
        if self.experimental {
            s += "EXPERIMENTAL: the engine side of this export is not in a released engine's \
                  stable interface; check it before relying on it\n";
        }
        s += &format!("launch flags: {}\n", self.launch);
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        for w in &self.warnings {
            s += &format!("warning: {w}\n");
        }
        s
    }
}

/// An export that cannot be made from these inputs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

/// Token counts per decoder layer and expert, `[model.layers][experts]` (dense rows 0).
pub fn decoder_counts(trace: &Trace, model: &ModelConfig) -> Result<Vec<Vec<u64>>, ExportError> {
    let s = trace.shape();
    if s.moe_layers != model.moe_layers
        || s.experts != model.experts
        || s.first_moe_layer != model.first_moe_layer
    {
        return Err(ExportError(format!(
            "trace shape {s:?} does not match model {} ({} MoE layers from layer {}, {} experts)",
            model.name, model.moe_layers, model.first_moe_layer, model.experts
        )));
    }
    let mut out = vec![vec![0u64; model.experts]; model.layers];
    for t in 0..trace.num_tokens() {
        for l in 0..s.moe_layers {
            for &e in trace.experts(t, l) {
                out[model.first_moe_layer + l][e as usize] += 1;
            }
        }
    }
    Ok(out)
}

/// Fails unless `path` ends in `.json` (SGLang parses any other string as inline JSON; vLLM-Ascend
/// refuses it).
pub fn require_json(path: &std::path::Path, engine: &str) -> Result<(), ExportError> {
    if path.extension().and_then(|e| e.to_str()) != Some("json") {
        return Err(ExportError(format!(
            "{}: the file name must end in .json ({engine} reads any other value differently)",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `text` to `path` with [`crate::util::atomic_write_bytes`] (a synced temporary file
/// renamed over it), the error naming `path`.
pub fn write_atomic(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    crate::util::atomic_write_bytes(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
