//! SGLang's `--init-expert-location` files.
//!
//! Checked against sglang 0.5.23, `srt/eplb/expert_location.py`:
//! `compute_initial_expert_location_metadata` reads the value as a `.pt` (torch.load,
//! weights_only), a `.json` file, or else as inline JSON; a dict with `physical_to_logical_map`
//! goes to `ExpertLocationMetadata.init_by_mapping(model_config, **data_dict, moe_ep_rank=..)`
//! (so any other key is an unexpected keyword argument), one with `logical_count` to
//! `init_by_eplb` (SGLang's own EPLB on those counts; 2-D `[num_hidden_layers, experts]` is
//! unsqueezed to one buffer step). Rows are per decoder layer (`ModelConfigForExpertLocation
//! .num_layers` is `num_hidden_layers`); physical slot p lives on EP rank
//! `p / (num_physical / ep_size)`. Models whose class has no
//! `get_model_config_for_expert_location` (Mixtral, OLMoE in 0.5.23) get no expert-location
//! metadata at all, and the file is ignored.

use std::path::Path;

use moeplan_solver::Plan;

use super::{ExportError, Exported, decoder_counts, require_json, write_atomic};
use crate::config::ModelConfig;
use crate::placement::sglang_location;
use crate::trace::Trace;

/// Models whose SGLang 0.5.23 class ignores `--init-expert-location`.
fn ignored_by(model: &ModelConfig) -> Option<&'static str> {
    let n = model.name.to_ascii_lowercase();
    if n.contains("mixtral") {
        Some("Mixtral (sglang/srt/models/mixtral.py)")
    } else if n.contains("olmoe") {
        Some("OLMoE (sglang/srt/models/olmoe.py)")
    } else {
        None
    }
}

fn common_warnings(model: &ModelConfig, out: &mut Exported) {
    if let Some(m) = ignored_by(model) {
        out.warnings.push(format!(
            "SGLang 0.5.23's {m} has no get_model_config_for_expert_location: it builds no \
             expert-location metadata and ignores --init-expert-location"
        ));
    }
}

/// The `physical_to_logical_map` file for `plan`, and its launch flags.
pub fn sglang_placement(plan: &Plan, model: &ModelConfig, path: &Path) -> anyhow::Result<Exported> {
    require_json(path, "SGLang")?;
    if plan.layers != model.moe_layers || plan.experts != model.experts {
        return Err(ExportError(format!(
            "plan has {} MoE layers x {} experts, model {} has {} x {}",
            plan.layers, plan.experts, model.name, model.moe_layers, model.experts
        ))
        .into());
    }
    let text = serde_json::to_string(&sglang_location(plan, model))? + "\n";
    write_atomic(path, &text)?;
    let redundant = plan.physical() - plan.experts;
    let mut out = Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--ep-size {} --ep-num-redundant-experts {redundant} --init-expert-location {}",
            plan.gpus,
            path.display()
        ),
        ..Default::default()
    };
    out.notes.push(format!(
        "{} decoder layers x {} physical slots; GPU g (EP rank g) holds slots {}g..{}(g+1)",
        model.layers,
        plan.physical(),
        plan.slots_per_gpu,
        plan.slots_per_gpu
    ));
    out.notes.push(
        "with --enable-eplb SGLang re-balances this placement away after \
         --eplb-rebalance-num-iterations forward passes: leave EPLB off to keep it"
            .into(),
    );
    common_warnings(model, &mut out);
    Ok(out)
}

/// `{"logical_count": [num_hidden_layers][experts]}` token counts of `trace`, for SGLang to run
/// its own EPLB from.
pub fn sglang_counts(trace: &Trace, model: &ModelConfig, path: &Path) -> anyhow::Result<Exported> {
    require_json(path, "SGLang")?;
    let counts = decoder_counts(trace, model)?;
    let text = serde_json::to_string(&serde_json::json!({ "logical_count": counts }))? + "\n";
    write_atomic(path, &text)?;
    let mut out = Exported {
        files: vec![path.display().to_string()],
        launch: format!(
            "--ep-size G --ep-num-redundant-experts R --init-expert-location {}",
            path.display()
        ),
        ..Default::default()
    };
    out.notes.push(format!(
        "{} tokens counted over {} decoder layers (dense rows 0); SGLang places experts with its \
         EPLB (init_by_eplb) on these counts at start; choose G and R",
        trace.num_tokens(),
        model.layers
    ));
    common_warnings(model, &mut out);
    Ok(out)
}
