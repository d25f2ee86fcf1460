//! Applies `close`: removes the session, releasing its pins; answers its final counters.

use super::{Apply, Ctx};
use crate::daemon::wire::{Close, CloseReply, ErrorReply};

impl Apply for Close {
    type Reply = CloseReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<CloseReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        ctx.conn.sessions.remove(&self.session);
        Ok(CloseReply {
            stats: ctx.shared.registry.close(&handle),
        })
    }
}
