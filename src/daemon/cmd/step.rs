//! `step`: the experts one layer needs now; answers where they are, what to load into which slot
//! (evicting what), and what to prefetch for the next layers.

use serde::{Deserialize, Serialize};

use super::{Ctx, check_experts, check_layer};
use crate::daemon::protocol::{ErrorCode, ErrorReply};
use crate::daemon::session::lock;

/// Largest number of expert ids one step may carry (a batch's union is at most `experts`).
pub const MAX_STEP_EXPERTS: usize = 1 << 16;

/// The experts layer `layer` needs now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Session id.
    pub session: u64,
    /// MoE layer, 0-based.
    pub layer: u16,
    /// Expert ids the layer's gate selected (a batch may repeat ids; their union is demanded).
    pub experts: Vec<u16>,
    /// Optional hint: the next layer's gate scores, one per expert (e.g. from the current
    /// hidden state through the next gate), for the prefetch plan.
    #[serde(default)]
    pub next_scores: Option<Vec<f32>>,
    /// Keep the pins of earlier steps (a pipelined runtime asking for layer l+1 before layer l's
    /// compute finished). By default a step releases every earlier pin first.
    #[serde(default)]
    pub keep_pins: bool,
}

/// An expert of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpertRef {
    /// MoE layer.
    pub layer: u16,
    /// Expert id.
    pub expert: u16,
}

/// Where a demanded expert is, as the step found or left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Resident in its slot: a hit.
    Resident,
    /// An earlier transfer into its slot is still in flight: a hit that may have to wait.
    InFlight,
    /// A miss: this step asks for a load into its slot (see `loads`).
    Loading,
    /// A miss with no slot to spare: stream it through a temporary buffer, it is not cached.
    Transient,
}

/// One demanded expert's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Expert id.
    pub expert: u16,
    /// Its slot (none for `transient`).
    pub slot: Option<u32>,
    /// Hit, in-flight hit, or miss.
    pub state: State,
}

/// One transfer the runtime should make: host -> GPU slot, evicting the slot's occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// MoE layer of the expert to load.
    pub layer: u16,
    /// Expert to load.
    pub expert: u16,
    /// Destination slot (none: a temporary buffer, not cached).
    pub slot: Option<u32>,
    /// The expert the slot held, now evicted (none if the slot was free).
    pub evict: Option<ExpertRef>,
}

/// Where the step's experts are and what to move.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReply {
    /// One entry per distinct requested expert, in request order.
    pub placements: Vec<Placement>,
    /// Distinct requested experts resident or in flight.
    pub hits: u32,
    /// Distinct requested experts not cached.
    pub misses: u32,
    /// Loads needed now (demand misses), in link order: issue them in this order.
    pub loads: Vec<Transfer>,
    /// Prefetches for the next layers (from `next_scores`), in link order, after `loads`;
    /// report them with `loaded` like demand loads.
    pub prefetch: Vec<Transfer>,
}

impl StepReply {
    /// The `loaded` report a runtime sends once this step's demand loads into slots are done,
    /// or `None` when there were none.
    pub fn loaded_report(&self, session: u64, layer: u16) -> Option<super::Loaded> {
        let experts: Vec<u16> = self
            .loads
            .iter()
            .filter(|t| t.slot.is_some())
            .map(|t| t.expert)
            .collect();
        (!experts.is_empty()).then_some(super::Loaded {
            session,
            layer,
            experts,
        })
    }
}

impl Step {
    /// Checks ranges against the session's shape, then asks its cache.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<StepReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        let checked = (|| {
            let layer = check_layer(self.layer, s.shape.moe_layers)?;
            if self.experts.len() > MAX_STEP_EXPERTS {
                return Err(ErrorReply::new(
                    ErrorCode::BadRequest,
                    format!(
                        "experts: {} ids, at most {MAX_STEP_EXPERTS}",
                        self.experts.len()
                    ),
                ));
            }
            check_experts(&self.experts, s.shape.experts)?;
            if let Some(sc) = &self.next_scores
                && (sc.len() != s.shape.experts || sc.iter().any(|x| !x.is_finite()))
            {
                return Err(ErrorReply::new(
                    ErrorCode::BadRequest,
                    format!(
                        "next_scores: expected {} finite scores, got {}",
                        s.shape.experts,
                        sc.len()
                    ),
                ));
            }
            Ok(layer)
        })();
        let layer = match checked {
            Ok(l) => l,
            Err(e) => {
                s.rejected += 1;
                return Err(e);
            }
        };
        let mut reply = StepReply::default();
        let scores = self.next_scores.as_deref();
        s.engine
            .step(layer, &self.experts, scores, self.keep_pins, &mut reply)
            .map_err(|e| ErrorReply::new(ErrorCode::BadRequest, e.to_string()))?;
        s.steps += 1;
        Ok(reply)
    }
}
