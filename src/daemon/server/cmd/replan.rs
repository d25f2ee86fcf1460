//! Applies `replan`: the session's move-budgeted re-plan from its observed counts.

use super::{Apply, Ctx};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorCode, ErrorReply, Replan, ReplanReply};

impl Apply for Replan {
    type Reply = ReplanReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<ReplanReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        let res = match &mut s.replanner {
            Some(r) => r.replan(&self),
            None => Err("replan: the session has no plan (register it with plan and gpu)".into()),
        };
        res.map_err(|m| {
            s.rejected += 1;
            ErrorReply::new(ErrorCode::BadRequest, m)
        })
    }
}
