//! `step`: the experts one layer needs now; its reply says where they are, what to load into
//! which slot (evicting what), and what to prefetch for the next layers.

use serde::{Deserialize, Serialize};

use super::Loaded;

/// Largest number of expert ids one step may carry (a batch's union is at most `experts`).
pub const MAX_STEP_EXPERTS: usize = 1 << 16;

/// Largest number of tokens one step's `routing` may describe.
pub const MAX_STEP_TOKENS: usize = 4096;

/// Each token's routing at the step's layer, for the session's predictor: flattened
/// `[tokens][top_k]`, each token's experts highest gate weight first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// Sequence (request) id of each token: the predictor also looks at the sequence's
    /// previous token. At most one token per sequence per step.
    pub seqs: Vec<u64>,
    /// Each token's `top_k` experts, `[tokens][top_k]` flattened.
    pub experts: Vec<u16>,
    /// Gate weights in `[0, 1]` aligned with `experts` (empty: unknown, read as 0).
    #[serde(default)]
    pub weights: Vec<f32>,
}

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
    /// Optional: each token's routing at this layer, which a session registered with a
    /// predictor turns into prefetch hints for the next layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    /// Prefetches to issue into this reply at most (default: the session's `prefetch_top`;
    /// 0 leaves them queued for `prefetch` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u32>,
}

impl Step {
    /// A step of `layer` needing `experts`, without hints.
    pub fn new(session: u64, layer: u16, experts: Vec<u16>) -> Self {
        Step {
            session,
            layer,
            experts,
            next_scores: None,
            keep_pins: false,
            routing: None,
            prefetch: None,
        }
    }
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
    /// Served by another GPU of the session's placement plan (see `gpu`): not this cache's.
    Remote,
}

/// One demanded expert's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpertSlot {
    /// Expert id.
    pub expert: u16,
    /// Its slot (none for `transient`).
    pub slot: Option<u32>,
    /// Hit, in-flight hit, or miss.
    pub state: State,
    /// With a placement plan: the GPU that serves this expert (this session's own for every
    /// state but `remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u16>,
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
    /// One entry per distinct requested expert, in request order (with a plan: the experts of
    /// other GPUs first, then this GPU's).
    pub placements: Vec<ExpertSlot>,
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
    pub fn loaded_report(&self, session: u64, layer: u16) -> Option<Loaded> {
        let experts: Vec<u16> = self
            .loads
            .iter()
            .filter(|t| t.slot.is_some())
            .map(|t| t.expert)
            .collect();
        (!experts.is_empty()).then_some(Loaded {
            session,
            layer,
            experts,
        })
    }
}

/// Encoded bytes of one [`ExpertSlot`] at most (MessagePack map with every field at its largest).
const PLACEMENT_BYTES: usize = 48;
/// Encoded bytes of one [`Transfer`] at most.
const TRANSFER_BYTES: usize = 72;
/// Encoded bytes of a step reply's envelope and counters at most.
const REPLY_OVERHEAD: usize = 128;

/// An upper bound on the encoded size of the reply to a step of `distinct` experts that may
/// issue `prefetch` prefetches: each expert has a placement and at most one load.
pub fn reply_bound(distinct: usize, prefetch: usize) -> usize {
    REPLY_OVERHEAD + distinct * (PLACEMENT_BYTES + TRANSFER_BYTES) + prefetch * TRANSFER_BYTES
}

/// The most transfers a reply carrying only transfers (a `prefetch` reply) may hold within a
/// frame limit of `max_frame` bytes: [`reply_bound`] of that many stays within it.
pub fn transfers_within(max_frame: usize) -> usize {
    max_frame.saturating_sub(REPLY_OVERHEAD) / TRANSFER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::wire::protocol::{Response, ResponseBody};

    /// [`reply_bound`] holds for a reply whose every field is at its largest.
    #[test]
    fn reply_bound_covers_the_largest_fields() {
        let big = ExpertRef {
            layer: u16::MAX,
            expert: u16::MAX,
        };
        let t = Transfer {
            layer: u16::MAX,
            expert: u16::MAX,
            slot: Some(u32::MAX),
            evict: Some(big),
        };
        let p = ExpertSlot {
            expert: u16::MAX,
            slot: Some(u32::MAX),
            state: State::InFlight,
            gpu: Some(u16::MAX),
        };
        for (n, m) in [(0, 0), (1, 0), (7, 3), (300, 1000)] {
            let reply = StepReply {
                placements: vec![p; n],
                hits: u32::MAX,
                misses: u32::MAX,
                loads: vec![t; n],
                prefetch: vec![t; m],
            };
            let resp = Response {
                id: u64::MAX,
                body: ResponseBody::Step(reply),
            };
            let mut out = Vec::new();
            crate::daemon::wire::frame::encode(&resp, usize::MAX, &mut out).unwrap();
            assert!(
                out.len() <= reply_bound(n, m),
                "{n} {m}: {} bytes",
                out.len()
            );
        }
    }

    /// A `prefetch` reply of [`transfers_within`] transfers at their largest fits the limit.
    #[test]
    fn a_prefetch_reply_of_transfers_within_fits_the_frame() {
        use crate::daemon::wire::PrefetchReply;
        let t = Transfer {
            layer: u16::MAX,
            expert: u16::MAX,
            slot: Some(u32::MAX),
            evict: Some(ExpertRef {
                layer: u16::MAX,
                expert: u16::MAX,
            }),
        };
        for frame in [1024, 4096, 1 << 20] {
            let n = transfers_within(frame);
            assert!(reply_bound(0, n) <= frame);
            let resp = Response {
                id: u64::MAX,
                body: ResponseBody::Prefetch(PrefetchReply {
                    transfers: vec![t; n],
                    queued: u32::MAX,
                }),
            };
            let mut out = Vec::new();
            crate::daemon::wire::frame::encode(&resp, frame, &mut out).unwrap();
        }
    }
}
