//! `observe`: fire-and-forget routing counts (e.g. tokens served without asking the cache) and
//! consecutive-layer pairs; they are counted in the session's stats and metrics, feed `replan`,
//! and do not change the cache.

use serde::{Deserialize, Serialize};

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
    /// Consecutive-layer pairs: `(src, dst, tokens)`, tokens routed to expert `src` at `layer`
    /// and to `dst` at `layer + 1` (all k x k pairs of each token). With a plan they feed the
    /// communication term of `replan`; empty: none reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<(u16, u16, u32)>,
}
