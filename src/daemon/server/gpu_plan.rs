//! One GPU's share of a placement plan (expert parallelism): which experts live on this
//! session's GPU, and which GPU serves each of the others.
//!
//! With a plan, a session's cache manages only its GPU's experts (those the plan gives it a
//! physical slot for); a demanded expert of another GPU is answered `remote` with the GPU that
//! serves it: the first GPU after this one, in ring order, holding a replica (so the sessions of
//! a node spread their remote tokens over the replicas).

use std::path::Path;

use moeplan_solver::Plan;

use crate::placement::PlanFile;
use crate::trace::ModelShape;

/// One GPU's view of a plan.
#[derive(Debug, Clone)]
pub struct GpuPlan {
    /// This session's GPU in the plan.
    pub gpu: u16,
    /// Experts per layer.
    experts: usize,
    /// `[moe_layers][experts]`: the GPU serving each expert for this session (`gpu` itself when
    /// it holds a replica).
    owner: Vec<u16>,
}

/// A plan file read at `register`: this GPU's share, the file and its checked plan.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// This session's GPU's share.
    pub gpu: GpuPlan,
    /// The file (its hardware and model names).
    pub file: PlanFile,
    /// The whole plan.
    pub plan: Plan,
}

impl GpuPlan {
    /// Reads the plan JSON at `path` (`moeplan place -o`) and takes GPU `gpu`'s share; the plan
    /// must be for `shape` (MoE layers and experts).
    pub fn load(path: &Path, shape: &ModelShape, gpu: u16) -> Result<LoadedPlan, String> {
        let file = PlanFile::read(path).map_err(|e| format!("{e:#}"))?;
        let plan = file
            .plan()
            .map_err(|e| format!("plan {}: {e}", path.display()))?;
        if (plan.layers, plan.experts) != (shape.moe_layers, shape.experts) {
            return Err(format!(
                "plan {}: built for {} MoE layers x {} experts, the session has {} x {}",
                path.display(),
                plan.layers,
                plan.experts,
                shape.moe_layers,
                shape.experts
            ));
        }
        let g = gpu as usize;
        if g >= plan.gpus {
            return Err(format!(
                "gpu {gpu} out of range: plan {} has {} GPUs (0-based)",
                path.display(),
                plan.gpus
            ));
        }
        let spg = plan.slots_per_gpu;
        let mut owner = Vec::with_capacity(plan.layers * plan.experts);
        let mut holds = vec![false; plan.gpus];
        for l in 0..plan.layers {
            let map = plan.layer(l);
            for e in 0..plan.experts {
                holds.fill(false);
                for (p, &x) in map.iter().enumerate() {
                    if x as usize == e {
                        holds[p / spg] = true;
                    }
                }
                let serve = (0..plan.gpus)
                    .map(|i| (g + i) % plan.gpus)
                    .find(|&c| holds[c])
                    .expect("a checked plan places every expert");
                owner.push(serve as u16);
            }
        }
        Ok(LoadedPlan {
            gpu: GpuPlan {
                gpu,
                experts: plan.experts,
                owner,
            },
            file,
            plan,
        })
    }

    /// The GPU serving (`layer`, `expert`) for this session.
    #[inline]
    pub fn owner(&self, layer: usize, expert: u16) -> u16 {
        self.owner[layer * self.experts + expert as usize]
    }

    /// Whether this session's GPU holds (`layer`, `expert`).
    #[inline]
    pub fn is_local(&self, layer: usize, expert: u16) -> bool {
        self.owner(layer, expert) == self.gpu
    }
}
