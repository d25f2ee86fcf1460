//! Applies `prefetch`: issues up to `max` of the session's queued prefetches now (at most as
//! many as the reply can carry within the frame limit; the rest stay queued).

use super::step::transfer;
use super::{Apply, Ctx};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorReply, Prefetch, PrefetchReply, transfers_within};

impl Apply for Prefetch {
    type Reply = PrefetchReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<PrefetchReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        if self.release {
            s.engine.release_all();
        }
        // Capped before any is issued: a reply over the frame limit would be refused after
        // the transfers were already in flight, and the runtime would never load them.
        let max = (self.max as usize).min(transfers_within(ctx.shared.config.max_frame));
        let mut reply = PrefetchReply::default();
        reply
            .transfers
            .extend(s.engine.issue_prefetches(max).map(|ld| transfer(&ld)));
        reply.queued = s.engine.queued() as u32;
        Ok(reply)
    }
}
