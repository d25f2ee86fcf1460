//! The `moeplan rebalance` report: one row per policy (the JSON keys are a contract) with the
//! per-window series behind it.

use std::fmt::Write;

use moeplan_solver::TimeModel;
use serde::{Deserialize, Serialize};

use super::RebalancePolicy;

/// One scored window of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    /// First token of the window in the stream.
    pub start: usize,
    /// Tokens of the window.
    pub tokens: usize,
    /// Mean over layers of the busiest GPU's load / mean GPU load.
    pub ir: f64,
    /// Share of consecutive-layer expert pairs on different GPUs.
    pub hop: f64,
    /// All-to-all bytes per token (cross-GPU pairs x one bf16 hidden vector).
    pub a2a_bytes_per_token: f64,
    /// Layer-time model, milliseconds per MoE layer.
    pub layer_ms: f64,
    /// Moves of the re-balance before this window.
    pub moves: usize,
}

/// One policy over the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRow {
    /// `static`, `eplb` or `moeplan`.
    pub name: String,
    /// Mean over scored windows of the next-window IR.
    pub mean_ir: f64,
    /// The worst scored window's IR.
    pub worst_ir: f64,
    /// Mean over scored windows of the hop rate.
    pub mean_hop: f64,
    /// Mean over scored windows of the all-to-all bytes per token.
    pub a2a_bytes_per_token: f64,
    /// Mean over scored windows of the layer time, milliseconds.
    pub mean_layer_ms: f64,
    /// Mean moves (replicas copied) per re-balance.
    pub moves_per_rebalance: f64,
    /// `moves_per_rebalance` x the model's bytes per expert.
    pub bytes_moved_per_rebalance: f64,
    /// Mean wall-clock seconds of one re-plan.
    pub replan_seconds: f64,
    /// Re-balances done (0 for `static`).
    pub rebalances: usize,
    /// The scored windows, in order.
    pub series: Vec<WindowRow>,
}

impl PolicyRow {
    /// Summarises a policy's windows; `seconds` is the re-planning time over all of them.
    pub fn summarise(
        policy: RebalancePolicy,
        series: &[WindowRow],
        seconds: f64,
        expert_bytes: f64,
    ) -> PolicyRow {
        let n = series.len().max(1) as f64;
        let mean = |f: fn(&WindowRow) -> f64| series.iter().map(f).sum::<f64>() / n;
        let rebalances = match policy {
            RebalancePolicy::Static => 0,
            _ => series.len(),
        };
        let moves = mean(|w| w.moves as f64);
        PolicyRow {
            name: policy.name().into(),
            mean_ir: mean(|w| w.ir),
            worst_ir: series.iter().map(|w| w.ir).fold(0.0, f64::max),
            mean_hop: mean(|w| w.hop),
            a2a_bytes_per_token: mean(|w| w.a2a_bytes_per_token),
            mean_layer_ms: mean(|w| w.layer_ms),
            moves_per_rebalance: moves,
            bytes_moved_per_rebalance: moves * expert_bytes,
            replan_seconds: if rebalances > 0 {
                seconds / rebalances as f64
            } else {
                0.0
            },
            rebalances,
            series: series.to_vec(),
        }
    }
}

/// What `moeplan rebalance --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebalanceReport {
    /// Tokens per window.
    pub window: usize,
    /// Tokens of the stream.
    pub tokens: usize,
    /// Windows (the first is only learned from; the others are scored).
    pub windows: usize,
    /// GPUs.
    pub gpus: usize,
    /// Most moves per re-balance of `moeplan`.
    pub move_budget: usize,
    /// Half-life, in windows, of the counts `moeplan` re-plans on.
    pub history_half_life: f64,
    /// The layer-time model's constants.
    pub time_model: TimeModel,
    /// Model config name.
    pub model: String,
    /// Hardware config name.
    pub hardware: String,
    /// One row per policy, in the order asked.
    pub policies: Vec<PolicyRow>,
}

impl RebalanceReport {
    /// The plain-text table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "stream of {} tokens, {} windows of {}, {} GPUs ({}, {}), moeplan move budget {}, \
             layer time at batch {}",
            self.tokens,
            self.windows,
            self.window,
            self.gpus,
            self.model,
            self.hardware,
            self.move_budget,
            self.time_model.batch_tokens
        );
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>9} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10} {:>6}",
            "policy",
            "mean_ir",
            "worst_ir",
            "hop",
            "a2aKB/tok",
            "layer_ms",
            "moves",
            "GB_moved",
            "replan_s",
            "count"
        );
        for p in &self.policies {
            let _ = writeln!(
                s,
                "{:<8} {:>8.3} {:>9.3} {:>8.3} {:>10.2} {:>9.4} {:>9.1} {:>10.2} {:>10.4} {:>6}",
                p.name,
                p.mean_ir,
                p.worst_ir,
                p.mean_hop,
                p.a2a_bytes_per_token / 1024.0,
                p.mean_layer_ms,
                p.moves_per_rebalance,
                p.bytes_moved_per_rebalance / 1e9,
                p.replan_seconds,
                p.rebalances
            );
        }
        s
    }
}
