//! `stats`: the counters of one or all of this connection's sessions.

use serde::{Deserialize, Serialize};

/// Asks for counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// One session, or every session of this connection when absent.
    #[serde(default)]
    pub session: Option<u64>,
}

/// The counters, by session id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// One entry per session asked about.
    pub sessions: Vec<SessionStats>,
}

/// One session's counters, as `stats`, `close`, `/metrics` and the shutdown report give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Session id.
    pub session: u64,
    /// The runtime's label.
    pub name: String,
    /// Policy name.
    pub policy: String,
    /// Steps answered.
    pub steps: u64,
    /// Distinct experts demanded.
    pub demands: u64,
    /// Demands found resident.
    pub hits: u64,
    /// Demands not resident.
    pub misses: u64,
    /// `hits / demands` (0 when no demand yet).
    pub hit_ratio: f64,
    /// Transfers asked of the runtime (demand loads and prefetches).
    pub loads: u64,
    /// Bytes those transfers move.
    pub bytes_loaded: u64,
    /// Prefetches planned.
    pub prefetches: u64,
    /// Prefetched experts later demanded.
    pub prefetch_hits: u64,
    /// `prefetch_hits / prefetches` (0 when none).
    pub prefetch_accuracy: f64,
    /// Transfers not yet reported `loaded` (the session's queue depth).
    pub pending_loads: u64,
    /// Experts pinned now.
    pub pinned: u64,
    /// Requests refused.
    pub rejected: u64,
    /// Expert selections reported by `observe`.
    pub observed: u64,
    /// Experts the predictor put in a token's top-k (k = `top_k`) for its next layer, compared
    /// with the routing the next step reported for the token.
    #[serde(default)]
    pub predicted: u64,
    /// Of those, the experts the token was routed to.
    #[serde(default)]
    pub predicted_hits: u64,
    /// `predicted_hits / predicted`: the predictor's live recall@top_k at one layer ahead (0
    /// when nothing was predicted).
    #[serde(default)]
    pub live_recall: f64,
    /// Tokens an online predictor (`online` at register) learned from.
    #[serde(default)]
    pub learned: u64,
}
