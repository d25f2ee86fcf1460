//! Applies `stats`: reads the counters of one or all of this connection's sessions.

use super::{Apply, Ctx};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorReply, Stats, StatsReply};

impl Apply for Stats {
    type Reply = StatsReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<StatsReply, ErrorReply> {
        let mut sessions = match self.session {
            Some(id) => vec![lock(&ctx.session(id)?).stats()],
            None => ctx
                .conn
                .sessions
                .values()
                .map(|h| lock(h).stats())
                .collect(),
        };
        sessions.sort_by_key(|s| s.session);
        Ok(StatsReply { sessions })
    }
}
