//! Applies `observe`: adds routing counts to the session's `observed` and, with a plan, to the
//! counts `replan` re-plans on (the cache is unchanged).

use super::{Apply, Ctx, check_experts, check_layer};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{ErrorCode, ErrorReply, Observe};

impl Apply for Observe {
    type Reply = ();

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<(), ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        let checked = check_layer(self.layer, s.shape.moe_layers).and_then(|l| {
            check_experts(&self.experts, s.shape.experts)?;
            if !self.counts.is_empty() && self.counts.len() != self.experts.len() {
                return Err(ErrorReply::new(
                    ErrorCode::BadRequest,
                    "counts: must be empty or as long as experts",
                ));
            }
            Ok(l)
        });
        let layer = checked.inspect_err(|_| s.rejected += 1)?;
        if let Some(r) = &mut s.replanner {
            r.observe(layer, &self.experts, &self.counts);
        }
        let n = if self.counts.is_empty() {
            self.experts.len() as u64
        } else {
            self.counts.iter().map(|&c| u64::from(c)).sum()
        };
        s.observed = s.observed.saturating_add(n);
        Ok(())
    }
}
