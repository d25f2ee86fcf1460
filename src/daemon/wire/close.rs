//! `close`: ends a session, releasing its pins; answers its final counters.

use serde::{Deserialize, Serialize};

use super::SessionStats;

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
