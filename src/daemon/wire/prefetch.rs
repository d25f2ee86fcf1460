//! `prefetch`: the runtime's copy engine is idle; issue up to `max` of the session's queued
//! prefetches (queued by hints: `next_scores`, or the session's predictor) now.

use serde::{Deserialize, Serialize};

use super::Transfer;

/// Pulls queued prefetches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prefetch {
    /// Session id.
    pub session: u64,
    /// Transfers to issue at most (fewer when more would not fit the daemon's frame limit:
    /// the rest stay queued, see the reply's `queued`).
    pub max: u32,
    /// The layers stepped so far have finished computing: release their pins first (so a
    /// prefetch may evict what they used). Without it, running steps stay pinned.
    #[serde(default)]
    pub release: bool,
}

/// The transfers issued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefetchReply {
    /// In link order; report them with `loaded` like demand loads.
    pub transfers: Vec<Transfer>,
    /// Prefetch requests still queued.
    pub queued: u32,
}
