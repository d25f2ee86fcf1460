//! `loaded`: the runtime reports transfers it finished (the slots become resident).

use serde::{Deserialize, Serialize};

/// Finished transfers of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    /// Session id.
    pub session: u64,
    /// MoE layer of the experts.
    pub layer: u16,
    /// Experts now resident in the slots the daemon gave them.
    pub experts: Vec<u16>,
}

/// What remains in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadedReply {
    /// Transfers asked for and not yet reported (the session's queue depth).
    pub pending: u64,
}
