//! Applies `prefetch`: issues up to `max` of the session's queued prefetches now.

use super::step::transfer;
use super::{Apply, Ctx};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorReply, Prefetch, PrefetchReply};

impl Apply for Prefetch {
    type Reply = PrefetchReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<PrefetchReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        if self.release {
            s.engine.release_all();
        }
        let mut reply = PrefetchReply::default();
        reply.transfers.extend(
            s.engine
                .issue_prefetches(self.max as usize)
                .map(|ld| transfer(&ld)),
        );
        reply.queued = s.engine.queued() as u32;
        Ok(reply)
    }
}
