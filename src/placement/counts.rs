//! Expert load counts without token-level routing (`place --counts`): SGLang's `stat`-mode
//! recorder dump (`logical_count` int32 `[buffer, num_hidden_layers, experts]`), the `.pt` of
//! `export --to kt`, or the `{"logical_count": [num_hidden_layers][experts]}` JSON of
//! `export --to sglang-counts`, as a solver workload of loads alone (no layer-to-layer pairs).

use std::path::Path;

use moeplan_solver::Workload;

use crate::config::ModelConfig;
use crate::trace::sglang::{is_torch_file, read_stat_counts};

/// Reads the counts at `path`, `[num_hidden_layers][experts]` (a torch file or JSON).
pub fn read_counts(path: &Path) -> Result<Vec<Vec<u64>>, String> {
    if is_torch_file(path) {
        return read_stat_counts(path).map_err(|e| e.to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CountsJson {
        logical_count: Vec<Vec<u64>>,
    }
    let v: CountsJson = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: {e} (expected an SGLang stat dump (.pt) or {{\"logical_count\": \
             [num_hidden_layers][experts]}} of non-negative integers)",
            path.display()
        )
    })?;
    Ok(v.logical_count)
}

/// The MoE layers' counts of `counts` (`[num_hidden_layers][experts]`, dense rows zero) as a
/// workload for `model`. Each token adds `top_k` to each MoE layer, so the token count is the
/// busiest layer's total over `top_k` (rounded up).
pub fn counts_workload(
    counts: &[Vec<u64>],
    model: &ModelConfig,
    path: &Path,
) -> Result<Workload, String> {
    let at = |m: String| format!("{}: {m}", path.display());
    if counts.len() != model.layers {
        return Err(at(format!(
            "`logical_count` has {} layers, model `{}` has {} decoder layers (dense ones included)",
            counts.len(),
            model.name,
            model.layers
        )));
    }
    let mut w = Workload::zeros(model.moe_layers, model.experts);
    let mut busiest = 0u64;
    for (l, row) in counts.iter().enumerate() {
        if row.len() != model.experts {
            return Err(at(format!(
                "`logical_count` layer {l} has {} experts, model `{}` has {}",
                row.len(),
                model.name,
                model.experts
            )));
        }
        let total = row.iter().try_fold(0u64, |a, &c| a.checked_add(c));
        let total =
            total.ok_or_else(|| at(format!("`logical_count` layer {l}: counts overflow")))?;
        let moe = l
            .checked_sub(model.first_moe_layer)
            .filter(|&m| m < model.moe_layers);
        match moe {
            None if total > 0 => {
                return Err(at(format!(
                    "`logical_count` layer {l} is dense in model `{}` (MoE layers {}..{}) but \
                     counts {total} selections",
                    model.name,
                    model.first_moe_layer,
                    model.first_moe_layer + model.moe_layers
                )));
            }
            None => {}
            Some(m) => {
                busiest = busiest.max(total);
                for (d, &c) in w.load[m * model.experts..].iter_mut().zip(row) {
                    *d = c as f64;
                }
            }
        }
    }
    if busiest == 0 {
        return Err(at("`logical_count` counts no token (all zero)".into()));
    }
    w.tokens = busiest.div_ceil(model.top_k as u64) as usize;
    Ok(w)
}
