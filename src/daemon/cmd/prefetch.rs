//! `prefetch`: the runtime's copy engine is idle; issue up to `max` of the session's queued
//! prefetches (queued by hints: `next_scores`, or the session's predictor) now.

use serde::{Deserialize, Serialize};

use super::{Ctx, Transfer};
use crate::daemon::protocol::ErrorReply;
use crate::daemon::session::lock;

/// Pulls queued prefetches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prefetch {
    /// Session id.
    pub session: u64,
    /// Transfers to issue at most.
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

impl Prefetch {
    /// Issues the prefetches.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<PrefetchReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        if self.release {
            s.engine.release_all();
        }
        let mut reply = PrefetchReply::default();
        s.engine
            .issue_prefetches(self.max as usize, &mut reply.transfers);
        reply.queued = s.engine.queued() as u32;
        Ok(reply)
    }
}
