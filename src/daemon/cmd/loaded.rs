//! `loaded`: the runtime reports transfers it finished (the slots become resident).

use serde::{Deserialize, Serialize};

use super::{Ctx, check_experts, check_layer};
use crate::daemon::protocol::{ErrorCode, ErrorReply};
use crate::daemon::session::lock;

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

impl Loaded {
    /// Marks the transfers done.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<LoadedReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        let checked = check_layer(self.layer, s.shape.moe_layers)
            .and_then(|l| check_experts(&self.experts, s.shape.experts).map(|()| l));
        let layer = checked.inspect_err(|_| s.rejected += 1)?;
        let pending = s
            .engine
            .loaded(layer, &self.experts)
            .map_err(|e| ErrorReply::new(ErrorCode::BadRequest, e.to_string()))?;
        Ok(LoadedReply { pending })
    }
}
