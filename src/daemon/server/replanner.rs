//! A session's re-balancing state for `replan`: the plan in service, the topology its plan file
//! names, and the routing counts and consecutive-layer pairs `observe` reported, folded into a
//! history (decayed totals and the last windows apart) at each re-plan exactly as the `moeplan`
//! policy of `moeplan rebalance` folds its windows. Pure: the plan file is read at `register`.

use std::time::Instant;

use moeplan_solver::{BudgetOptions, Plan, ReplanHistory, Topology, Workload, evaluate};

use crate::config::{HardwareConfig, Kind, builtin};
use crate::daemon::wire::{Replan, ReplanReply, SlotChange};
use crate::placement::{PlanFile, topology};
use crate::rebalance::{DEFAULT_COMM_WEIGHT, DEFAULT_HISTORY_HALF_LIFE};

/// A session's plan in service and the counts it re-plans on.
#[derive(Debug, Clone)]
pub struct Replanner {
    /// The plan in service: the registered plan, then the last re-plan returned.
    plan: Plan,
    /// GPUs and link costs, from the plan file's hardware config (or why they are unknown).
    topology: Result<Topology, String>,
    /// `[moe_layers][experts]` selections reported since the last re-plan.
    window: Vec<f64>,
    /// `[moe_layers - 1][experts][experts]` consecutive-layer pairs reported since the last
    /// re-plan (empty until the first `observe` with pairs).
    window_pairs: Vec<f64>,
    /// The counts of the windows before (decayed totals, the last windows apart).
    history: ReplanHistory,
    /// Bytes of one expert's weights (the session's `bytes_per_expert`).
    bytes_per_expert: u64,
    /// Experts each token selects per layer.
    top_k: usize,
}

impl Replanner {
    /// The state of a session registered with `file`'s plan (already checked as `plan`).
    pub fn new(file: &PlanFile, plan: Plan, bytes_per_expert: u64, top_k: usize) -> Replanner {
        let topology = builtin::find(Kind::Hardware, &file.hardware)
            .ok_or_else(|| {
                format!(
                    "the plan's hardware {:?} is not a built-in config: its link costs are unknown",
                    file.hardware
                )
            })
            .and_then(|b| HardwareConfig::parse(b.text, &b.origin()).map_err(|e| e.to_string()))
            .and_then(|hw| {
                if hw.gpus() == plan.gpus {
                    Ok(topology(&hw))
                } else {
                    Err(format!(
                        "the plan has {} GPUs, its hardware {:?} has {}",
                        plan.gpus,
                        file.hardware,
                        hw.gpus()
                    ))
                }
            });
        Replanner {
            window: vec![0.0; plan.layers * plan.experts],
            window_pairs: Vec::new(),
            history: ReplanHistory::new(plan.layers, plan.experts),
            plan,
            topology,
            bytes_per_expert,
            top_k,
        }
    }

    /// Adds an `observe`'s counts (range-checked): `experts` of `layer`, `counts` each (empty:
    /// one each).
    pub fn observe(&mut self, layer: usize, experts: &[u16], counts: &[u32]) {
        let row = &mut self.window[layer * self.plan.experts..(layer + 1) * self.plan.experts];
        for (i, &e) in experts.iter().enumerate() {
            row[e as usize] += counts.get(i).map_or(1.0, |&c| f64::from(c));
        }
    }

    /// Adds an `observe`'s consecutive-layer pairs (range-checked): `(src, dst, tokens)` from
    /// `layer` to `layer + 1`.
    pub fn observe_pairs(&mut self, layer: usize, pairs: &[(u16, u16, u32)]) {
        let e = self.plan.experts;
        if self.window_pairs.is_empty() {
            self.window_pairs = vec![0.0; self.plan.layers.saturating_sub(1) * e * e];
        }
        let block = &mut self.window_pairs[layer * e * e..(layer + 1) * e * e];
        for &(a, b, n) in pairs {
            block[a as usize * e + b as usize] += f64::from(n);
        }
    }

    /// The re-plan `req` asks for; on success the counts are folded into the history and the
    /// re-plan becomes the plan in service. Errors name the field at fault; nothing changes then.
    pub fn replan(&mut self, req: &Replan) -> Result<ReplanReply, String> {
        let start = Instant::now();
        let hl = req.history_half_life.unwrap_or(DEFAULT_HISTORY_HALF_LIFE);
        if !(hl.is_finite() && hl > 0.0) {
            return Err(format!(
                "history_half_life: must be finite and > 0, got {hl}"
            ));
        }
        let weight = |v: Option<f64>, default: f64, field: &str| match v.unwrap_or(default) {
            w if w.is_finite() && w >= 0.0 => Ok(w),
            w => Err(format!("{field}: must be finite and >= 0, got {w}")),
        };
        let balance = weight(req.balance_weight, 1.0, "balance_weight")?;
        let comm = weight(req.comm_weight, DEFAULT_COMM_WEIGHT, "comm_weight")?;
        let topo = self.topology.clone()?;
        let current = match &req.current {
            Some(map) => Some(self.check_current(map)?),
            None => None,
        };
        // This window's counts (no pairs reported yet: zeros), folded into a copy of the
        // history that is kept only if the re-plan succeeds.
        let mut window = Workload::zeros(self.plan.layers, self.plan.experts);
        window.load.copy_from_slice(&self.window);
        for (w, &p) in window.pairs.iter_mut().zip(&self.window_pairs) {
            *w = p;
        }
        let per_token = (self.plan.layers * self.top_k) as f64;
        window.tokens = (self.window.iter().sum::<f64>() / per_token).round() as usize;
        let mut history = self.history.clone();
        history.push(&window, hl);
        let selections: f64 = history.decayed().load.iter().sum();
        if selections <= 0.0 {
            return Err(
                "replan: no routing counts yet (report them with `observe` first)".to_string(),
            );
        }
        let prev = current.unwrap_or_else(|| self.plan.clone());
        let opts = BudgetOptions {
            moves: (req.move_budget as usize).min(prev.layers * prev.physical()),
            balance,
            comm,
        };
        let r = history.replan(&prev, &topo, opts);
        let before = evaluate(history.decayed(), &prev, &topo);
        let after = evaluate(history.decayed(), &r.plan, &topo);
        let changed = changed_slots(&prev, &r.plan);
        self.history = history;
        self.window.fill(0.0);
        self.window_pairs.fill(0.0);
        self.plan = r.plan;
        Ok(ReplanReply {
            changed,
            moves: r.moves as u64,
            bytes_moved: (r.moves as u64).saturating_mul(self.bytes_per_expert),
            ir_before: before.ir_mean,
            ir_after: after.ir_mean,
            hop_before: before.hop_rate,
            hop_after: after.hop_rate,
            selections,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// `current` as a plan of the registered plan's shape.
    fn check_current(&self, map: &[Vec<u16>]) -> Result<Plan, String> {
        let p = &self.plan;
        if map.len() != p.layers {
            return Err(format!(
                "current: {} layers, the session's plan has {}",
                map.len(),
                p.layers
            ));
        }
        if let Some((l, row)) = map
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != p.physical())
        {
            return Err(format!(
                "current: layer {l} has {} slots, the session's plan has {} per layer",
                row.len(),
                p.physical()
            ));
        }
        Plan::new(p.layers, p.experts, p.gpus, p.slots_per_gpu, map.concat())
            .map_err(|e| format!("current: {e}"))
    }
}

/// The slots whose expert differs between `old` and `new` (same shape), by layer then slot.
fn changed_slots(old: &Plan, new: &Plan) -> Vec<SlotChange> {
    let mut out = Vec::new();
    for l in 0..old.layers {
        for (slot, (&from, &to)) in old.layer(l).iter().zip(new.layer(l)).enumerate() {
            if from != to {
                out.push(SlotChange {
                    layer: l as u16,
                    slot: slot as u32,
                    gpu: old.gpu_of_slot(slot) as u16,
                    from,
                    to,
                });
            }
        }
    }
    out
}
