//! `close`: ends a session, releasing its pins; answers its final counters.

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::daemon::protocol::ErrorReply;
use crate::daemon::session::SessionStats;

/// Ends a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Close {
    /// Session id.
    pub session: u64,
}

/// The session's final counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseReply {
    /// Counters at close.
    pub stats: SessionStats,
}

impl Close {
    /// Removes the session.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<CloseReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        ctx.conn.sessions.remove(&self.session);
        Ok(CloseReply {
            stats: ctx.shared.registry.close(&handle),
        })
    }
}
