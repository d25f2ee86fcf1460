//! vLLM and vLLM-Ascend placement files.
//!
//! vLLM 0.33.0 loads no expert mapping: stock vLLM offers `--expert-placement-strategy
//! linear|round_robin` (`vllm/config/parallel.py`) and online EPLB (`--enable-eplb`). The
//! `eplb_initial_mapping` JSONL here follows the open offline-EPLB proposal (vLLM PR #41141: one
//! line per MoE layer, keyed by MoE-layer index, holding that layer's physical-to-logical map)
//! and is experimental. Released vLLM 0.33.0 refuses the printed `--eplb-config`: `EPLBConfig`
//! (`vllm/config/parallel.py`) has no mapping key and `@config` (`vllm/config/utils.py`) sets
//! `ConfigDict(extra="forbid")`; the layout is in no released source to check it against.
//!
//! vLLM-Ascend 0.23.0 (`vllm_ascend/eplb/core/eplb_utils.py`, `expert_file_to_tensor` and
//! `init_eplb_config`; `ascend_config.py`, `EplbConfig._validate_config`) reads
//! `--additional-config '{"eplb_config": {"expert_map_path": F}}'`, F ending in `.json`:
//! `{"moe_layer_count", "layer_list": [{"layer_id", "device_count", "device_list":
//! [{"device_id", "device_expert": [logical ids in local slot order]}]}]}`, `layer_list[i]`
//! being the i-th MoE layer (`AscendMoERunner.moe_counter`, from 0); the redundant count is the
//! physical total minus the experts. A logical expert may appear once per device.

use std::path::Path;

use moeplan_solver::Plan;

use super::{ExportError, Exported, require_json, write_atomic};

/// The `eplb_initial_mapping` JSONL (experimental).
pub fn vllm_initial_mapping(plan: &Plan, path: &Path) -> anyhow::Result<Exported> {
    let mut text = String::new();
    for l in 0..plan.layers {
        text += &serde_json::to_string(&serde_json::json!({ l.to_string(): plan.layer(l) }))?;
        text.push('\n');
    }
    write_atomic(path, &text)?;
    Ok(Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--enable-expert-parallel --enable-eplb --eplb-config \
             '{{\"num_redundant_experts\": {}, \"eplb_initial_mapping\": \"{}\"}}'",
            plan.physical() - plan.experts,
            path.display()
        ),
        notes: vec![
            "released vLLM (0.33.0) loads no mapping; it offers --expert-placement-strategy \
             linear|round_robin and online EPLB only"
                .into(),
        ],
        warnings: vec![
            "the file follows the open offline-EPLB proposal (vLLM PR #41141); the key name and \
             layout may change before it is released"
                .into(),
            "released vLLM (0.33.0) refuses this --eplb-config: EPLBConfig forbids unknown keys \
             such as eplb_initial_mapping; it needs a vLLM built with that proposal"
                .into(),
        ],
        experimental: true,
    })
}

/// vLLM-Ascend's `expert_map_path` JSON.
pub fn vllm_ascend_map(plan: &Plan, path: &Path) -> anyhow::Result<Exported> {
    require_json(path, "vLLM-Ascend")?;
    let mut layers = Vec::with_capacity(plan.layers);
    for l in 0..plan.layers {
        let row = plan.layer(l);
        let mut devices = Vec::with_capacity(plan.gpus);
        for g in 0..plan.gpus {
            let local = &row[g * plan.slots_per_gpu..(g + 1) * plan.slots_per_gpu];
            if let Some((i, e)) = local
                .iter()
                .enumerate()
                .find(|(i, e)| local[..*i].contains(e))
            {
                return Err(ExportError(format!(
                    "layer {l}: GPU {g} holds expert {e} twice (slot {i}); vLLM-Ascend maps a \
                     logical expert to one local slot per device"
                ))
                .into());
            }
            devices.push(serde_json::json!({"device_id": g, "device_expert": local}));
        }
        layers.push(serde_json::json!({
            "layer_id": l,
            "device_count": plan.gpus,
            "device_list": devices,
        }));
    }
    let doc = serde_json::json!({"moe_layer_count": plan.layers, "layer_list": layers});
    write_atomic(path, &(serde_json::to_string_pretty(&doc)? + "\n"))?;
    Ok(Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--enable-expert-parallel --additional-config '{{\"eplb_config\": {{\"expert_map_path\": \"{}\"}}}}'",
            path.display()
        ),
        notes: vec![format!(
            "{} MoE layers x {} devices x {} slots; vLLM-Ascend takes {} redundant experts from \
             the file",
            plan.layers,
            plan.gpus,
            plan.slots_per_gpu,
            plan.physical() - plan.experts
        )],
        warnings: vec![
            "with eplb_config.dynamic_eplb vLLM-Ascend re-balances this placement at run time"
                .into(),
        ],
        experimental: false,
    })
}
