//! Applies `observe`: adds routing counts to the session's `observed` and, with a plan, to the
//! counts (and consecutive-layer pairs) `replan` re-plans on (the cache is unchanged).

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
            if !self.pairs.is_empty() {
                check_pairs(&self.pairs, l, s.shape.moe_layers, s.shape.experts)?;
            }
            Ok(l)
        });
        let layer = checked.inspect_err(|_| s.rejected += 1)?;
        if let Some(r) = &mut s.replanner {
            r.observe(layer, &self.experts, &self.counts);
            if !self.pairs.is_empty() {
                r.observe_pairs(layer, &self.pairs);
            }
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

/// `pairs` start at a layer that has a next one and name experts of the model.
fn check_pairs(
    pairs: &[(u16, u16, u32)],
    layer: usize,
    layers: usize,
    experts: usize,
) -> Result<(), ErrorReply> {
    if layer + 1 >= layers {
        return Err(ErrorReply::new(
            ErrorCode::BadRequest,
            format!(
                "pairs: layer {layer} is the last MoE layer (pairs go from a layer to the next)"
            ),
        ));
    }
    match pairs
        .iter()
        .position(|&(a, b, _)| a as usize >= experts || b as usize >= experts)
    {
        Some(i) => Err(ErrorReply::new(
            ErrorCode::OutOfRange,
            format!(
                "pairs[{i}]: expert {} or {} outside 0..{experts}",
                pairs[i].0, pairs[i].1
            ),
        )),
        None => Ok(()),
    }
}
