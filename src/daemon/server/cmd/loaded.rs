//! Applies `loaded`: the transfers the runtime finished become resident.

use super::{Apply, Ctx, check_experts, check_layer};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorCode, ErrorReply, Loaded, LoadedReply};

impl Apply for Loaded {
    type Reply = LoadedReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<LoadedReply, ErrorReply> {
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
