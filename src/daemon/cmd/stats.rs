//! `stats`: the counters of one or all of this connection's sessions.

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::daemon::protocol::ErrorReply;
use crate::daemon::session::{SessionStats, lock};

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

impl Stats {
    /// Reads the counters.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<StatsReply, ErrorReply> {
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
