//! A placement plan: per layer, which logical expert each physical slot holds. Physical slot p of
//! a layer lives on GPU `p / slots_per_gpu` (SGLang's layout), so replica counts and GPU shares
//! follow from the map.

use serde::{Deserialize, Serialize};

/// Physical-to-logical expert maps for every layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// MoE layers.
    pub layers: usize,
    /// Logical experts per layer.
    pub experts: usize,
    /// GPUs.
    pub gpus: usize,
    /// Physical slots per GPU per layer.
    pub slots_per_gpu: usize,
    /// Logical expert of each physical slot, `[layers][gpus * slots_per_gpu]`.
    pub phy2log: Vec<u16>,
}

/// A plan that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The map has the wrong length.
    #[error("phy2log has {got} entries, expected layers x physical = {want}")]
    Length { got: usize, want: usize },
    /// A slot names an expert that does not exist.
    #[error("layer {layer} slot {slot}: expert {expert} is out of range (experts = {experts})")]
    OutOfRange {
        layer: usize,
        slot: usize,
        expert: usize,
        experts: usize,
    },
    /// A logical expert has no slot.
    #[error("layer {layer}: expert {expert} has no physical slot")]
    Unplaced { layer: usize, expert: usize },
}

/// How one expert's tokens spread over GPUs: `(gpu, share)` pairs, shares summing to 1.
pub type Spread = Vec<(usize, f64)>;

impl Plan {
    /// Builds and checks a plan.
    pub fn new(
        layers: usize,
        experts: usize,
        gpus: usize,
        slots_per_gpu: usize,
        phy2log: Vec<u16>,
    ) -> Result<Plan, PlanError> {
        let plan = Plan {
            layers,
            experts,
            gpus,
            slots_per_gpu,
            phy2log,
        };
        plan.check()?;
        Ok(plan)
    }

    /// Physical slots per layer.
    pub fn physical(&self) -> usize {
        self.gpus * self.slots_per_gpu
    }

    /// The map of layer `l`, `[physical]`.
    pub fn layer(&self, l: usize) -> &[u16] {
        let p = self.physical();
        &self.phy2log[l * p..(l + 1) * p]
    }

    /// Mutable map of layer `l`.
    pub fn layer_mut(&mut self, l: usize) -> &mut [u16] {
        let p = self.physical();
        &mut self.phy2log[l * p..(l + 1) * p]
    }

    /// GPU of physical slot `p`.
    #[inline]
    pub fn gpu_of_slot(&self, p: usize) -> usize {
        p / self.slots_per_gpu
    }

    /// Replicas per logical expert at layer `l`, `[experts]`.
    pub fn counts(&self, l: usize) -> Vec<u32> {
        let mut c = vec![0u32; self.experts];
        for &e in self.layer(l) {
            c[e as usize] += 1;
        }
        c
    }

    /// Per expert of layer `l`, the GPUs serving it and the share each serves (1 / replicas per
    /// replica; two replicas on one GPU add up).
    pub fn spread(&self, l: usize) -> Vec<Spread> {
        let counts = self.counts(l);
        let mut out: Vec<Spread> = vec![Vec::new(); self.experts];
        for (p, &e) in self.layer(l).iter().enumerate() {
            let g = self.gpu_of_slot(p);
            let share = 1.0 / counts[e as usize] as f64;
            let s = &mut out[e as usize];
            match s.iter_mut().find(|(h, _)| *h == g) {
                Some((_, x)) => *x += share,
                None => s.push((g, share)),
            }
        }
        out
    }

    /// Checks the invariants: right length, ids in range, every logical expert placed.
    pub fn check(&self) -> Result<(), PlanError> {
        let want = self.layers * self.physical();
        if self.phy2log.len() != want {
            return Err(PlanError::Length {
                got: self.phy2log.len(),
                want,
            });
        }
        for l in 0..self.layers {
            let mut seen = vec![false; self.experts];
            for (slot, &e) in self.layer(l).iter().enumerate() {
                let expert = e as usize;
                if expert >= self.experts {
                    return Err(PlanError::OutOfRange {
                        layer: l,
                        slot,
                        expert,
                        experts: self.experts,
                    });
                }
                seen[expert] = true;
            }
            if let Some(expert) = seen.iter().position(|&s| !s) {
                return Err(PlanError::Unplaced { layer: l, expert });
            }
        }
        Ok(())
    }

    /// Expert replicas this plan holds that `prev` does not hold on the same GPU (what a switch
    /// from `prev` to this plan must copy), summed over layers.
    pub fn moved_from(&self, prev: &Plan) -> usize {
        let mut moved = 0;
        for l in 0..self.layers.min(prev.layers) {
            let mut have = vec![0i64; prev.gpus.max(self.gpus) * self.experts.max(prev.experts)];
            for (p, &e) in prev.layer(l).iter().enumerate() {
                have[prev.gpu_of_slot(p) * prev.experts + e as usize] += 1;
            }
            for (p, &e) in self.layer(l).iter().enumerate() {
                let i = self.gpu_of_slot(p) * prev.experts + e as usize;
                if self.gpu_of_slot(p) < prev.gpus && (e as usize) < prev.experts && have[i] > 0 {
                    have[i] -= 1;
                } else {
                    moved += 1;
                }
            }
        }
        moved
    }

    /// Builds a plan from per-GPU expert lists of each layer (`[layers][gpus][slots_per_gpu]`).
    pub fn from_gpu_lists(
        experts: usize,
        slots_per_gpu: usize,
        lists: &[Vec<Vec<u16>>],
    ) -> Result<Plan, PlanError> {
        let gpus = lists.first().map_or(0, |l| l.len());
        let phy2log = lists.iter().flatten().flatten().copied().collect();
        Plan::new(lists.len(), experts, gpus, slots_per_gpu, phy2log)
    }
}
