//! [`CacheSide`]: what the forward pass asks of the cache, answered in-process ([`super::local`])
//! or by the daemon over its socket ([`super::remote`]).

use crate::trace::Trace;

/// A transfer the data plane must make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// MoE layer of the expert.
    pub layer: u16,
    /// The expert.
    pub expert: u16,
    /// Its cache slot (`None`: through a transient buffer, not cached).
    pub slot: Option<u32>,
    /// The slot's previous occupant was evicted.
    pub evicts: bool,
}

/// A layer's answer: where each needed expert is and what to move now.
#[derive(Debug, Clone, Default)]
pub struct LayerPlan {
    /// Each distinct needed expert in the step's order, with its cache slot (`None`: transient).
    pub experts: Vec<(u16, Option<u32>)>,
    /// Demand transfers, in link order.
    pub loads: Vec<Move>,
}

/// The cache's counters at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Distinct experts demanded, over steps and layers.
    pub demands: u64,
    /// Demands found cached.
    pub hits: u64,
    /// Transfers asked of the data plane (demand, transient and prefetch).
    pub loads: u64,
    /// Of `loads`, prefetches.
    pub prefetch_loads: u64,
}

/// The cache as a runtime sees it, one layer at a time. Call order per layer: [`CacheSide::landed`]
/// (every transfer issued so far has landed), [`CacheSide::step`], [`CacheSide::landed`] once
/// the layer's loads landed, then [`CacheSide::release`] before the layer computes.
pub trait CacheSide {
    /// Layer `l` of the step of tokens `toks` (trace indices) needs `experts` (distinct);
    /// fills `plan`. With a predictor, the tokens' routing at `l` queues prefetches.
    fn step(
        &mut self,
        l: usize,
        experts: &[u16],
        toks: &[u32],
        trace: &Trace,
        plan: &mut LayerPlan,
    ) -> anyhow::Result<()>;
    /// Every transfer issued so far has landed.
    fn landed(&mut self) -> anyhow::Result<()>;
    /// Layer `l`'s step is over for the cache: its pins are released and, when `issue`, the
    /// queued prefetches are issued into `out` (they overlap the layer's compute).
    fn release(&mut self, l: usize, issue: bool, out: &mut Vec<Move>) -> anyhow::Result<()>;
    /// The counters; ends the session.
    fn finish(&mut self) -> anyhow::Result<Counts>;
}
