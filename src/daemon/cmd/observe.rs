//! `observe`: fire-and-forget routing counts (e.g. tokens served without asking the cache); they
//! are counted in the session's stats and metrics and do not change the cache.

use serde::{Deserialize, Serialize};

use super::{Ctx, check_experts, check_layer};
use crate::daemon::protocol::{ErrorCode, ErrorReply};
use crate::daemon::session::lock;

/// Routing counts of one layer. There is no reply, not even an error: errors are only counted
/// in the metrics (`moeplan_errors_total`) and the session's `rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observe {
    /// Session id.
    pub session: u64,
    /// MoE layer.
    pub layer: u16,
    /// Experts routed to.
    pub experts: Vec<u16>,
    /// How many tokens went to each (aligned with `experts`; empty means 1 each).
    #[serde(default)]
    pub counts: Vec<u32>,
}

impl Observe {
    /// Adds the counts to the session's `observed`.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<(), ErrorReply> {
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
        let _ = layer;
        let n = if self.counts.is_empty() {
            self.experts.len() as u64
        } else {
            self.counts.iter().map(|&c| u64::from(c)).sum()
        };
        s.observed = s.observed.saturating_add(n);
        Ok(())
    }
}
