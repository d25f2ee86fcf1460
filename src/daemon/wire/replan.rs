//! `replan`: the move-budgeted re-plan the `moeplan` re-balancing policy would make now, from the
//! routing counts the session's `observe` requests reported since its last `replan` (blended with
//! the earlier ones, decayed), starting from the plan in service. For an engine's re-balancing
//! hook: the reply lists the physical slots whose expert changes, with the figures.

use serde::{Deserialize, Serialize};

/// Asks for a re-plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replan {
    /// Session id (registered with a `plan`).
    pub session: u64,
    /// Most (layer, expert) replicas copied to a GPU that did not hold them.
    pub move_budget: u32,
    /// The plan in service, `[moe_layers][physical slots]` logical expert of each slot (as a plan
    /// file's `physical_to_logical_map`). Default: the last re-plan this op returned, else the
    /// session's registered plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Vec<Vec<u16>>>,
    /// Weight of the imbalance term (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_weight: Option<f64>,
    /// Weight of the communication term (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_weight: Option<f64>,
    /// Half-life of the counts, in re-plans (default 1: the counts of the window before weigh
    /// half as much as the last window's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_half_life: Option<f64>,
}

impl Replan {
    /// A re-plan of `session` from the plan in service with at most `move_budget` moves.
    pub fn new(session: u64, move_budget: u32) -> Self {
        Replan {
            session,
            move_budget,
            current: None,
            balance_weight: None,
            comm_weight: None,
            history_half_life: None,
        }
    }
}

/// One physical slot whose expert the re-plan changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotChange {
    /// MoE layer.
    pub layer: u16,
    /// Physical slot in the layer (`gpu * slots_per_gpu + i`).
    pub slot: u32,
    /// The slot's GPU.
    pub gpu: u16,
    /// Expert it holds now.
    pub from: u16,
    /// Expert it holds after the re-plan.
    pub to: u16,
}

/// The re-plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplanReply {
    /// Slots whose expert changes, by layer then slot.
    pub changed: Vec<SlotChange>,
    /// Replicas copied to a GPU that did not hold them (at most `move_budget`).
    pub moves: u64,
    /// `moves` x the session's `bytes_per_expert`.
    pub bytes_moved: u64,
    /// Mean over layers of the busiest GPU's load / mean GPU load, plan in service.
    pub ir_before: f64,
    /// The same for the re-plan.
    pub ir_after: f64,
    /// Share of consecutive-layer expert pairs on different GPUs, plan in service.
    pub hop_before: f64,
    /// The same for the re-plan.
    pub hop_after: f64,
    /// Expert selections the counts hold (decayed).
    pub selections: f64,
    /// Seconds the re-plan took, in the daemon.
    pub seconds: f64,
}
