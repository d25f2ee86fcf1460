//! The replay report: one row per policy, the constants used, as a table or JSON.

use std::fmt::Write;

use serde::Serialize;

use super::batching::Batching;
use super::run::PolicyReport;
use super::sim::PrefetchOptions;
use super::timing::TimingModel;

/// Everything a replay reports (`moeplan replay --json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Trace path(s).
    pub trace: String,
    /// Tokens replayed.
    pub tokens: usize,
    /// Model config name.
    pub model: String,
    /// Hardware config name.
    pub hardware: String,
    /// Experts per layer resident (per-layer), or the same total shared.
    pub capacity: usize,
    /// `per-layer` or `shared`.
    pub capacity_mode: String,
    /// Slots of the device.
    pub total_slots: usize,
    /// How tokens form steps.
    pub batching: Batching,
    /// Timing constants.
    pub constants: TimingModel,
    /// Prefetch settings of `predictive`.
    pub prefetch: PrefetchOptions,
    /// What `static` ranks on: `train` (the training traces) or `replayed` (in-sample).
    pub static_source: String,
    /// The predictor `predictive` used, if any.
    pub predictor: Option<String>,
    /// `predictive` ran with an online predictor (learning from the steps served).
    pub online: bool,
    /// One entry per policy, in the order asked.
    pub policies: Vec<PolicyReport>,
    /// With token scheduling: the same policies without it (first-come first-served).
    pub unscheduled: Option<Vec<PolicyReport>>,
}

fn rows(out: &mut String, title: &str, ps: &[PolicyReport]) {
    let _ = writeln!(out, "{title}");
    let shared = ps.iter().any(|p| p.hit_ratio_with_shared.is_some());
    let _ = write!(out, "{:<11} {:>9} ", "policy", "hit_ratio");
    if shared {
        let _ = write!(out, "{:>11} ", "+shared");
    }
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>15} {:>10} {:>13} {:>13} {:>9}",
        "loads/token",
        "MB/token",
        "stall_ms/token",
        "tokens/s",
        "experts/batch",
        "experts/token",
        "pf_acc"
    );
    for p in ps {
        let _ = write!(out, "{:<11} {:>9.4} ", p.name, p.hit_ratio);
        if shared {
            let _ = write!(
                out,
                "{:>11.4} ",
                p.hit_ratio_with_shared.unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(
            out,
            "{:>12.2} {:>14.1} {:>15.3} {:>10.1} {:>13.2} {:>13.2} {:>9.3}",
            p.loads_per_token,
            p.bytes_per_token / 1e6,
            p.stall_ms_per_token,
            p.tokens_per_s,
            p.experts_per_batch,
            p.experts_per_token,
            p.prefetch_accuracy
        );
    }
}

impl ReplayReport {
    /// The human-readable table with the constants used.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = &self.constants;
        let _ = writeln!(
            s,
            "trace {} ({} tokens), model {}, hardware {}",
            self.trace, self.tokens, self.model, self.hardware
        );
        let _ = writeln!(
            s,
            "capacity {} ({}, {} slots), batching {:?}, static ranked on {} data, predictor {}",
            self.capacity,
            self.capacity_mode,
            self.total_slots,
            self.batching,
            self.static_source,
            self.predictor.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            s,
            "constants: expert {} B, link {} GB/s -> {:.3} ms/transfer, layer compute {} ms \
             + {} ms/extra token, cpu expert {} ms/token, cpu offload {}, look-ahead {}, \
             prefetch top {}\n",
            c.expert_bytes,
            c.link_gbps,
            c.transfer_ms,
            c.layer_ms,
            c.layer_ms_per_token,
            c.cpu_expert_ms,
            if c.cpu_offload { "on" } else { "off" },
            self.prefetch.lookahead,
            self.prefetch.top_n
        );
        let title = if self.unscheduled.is_some() {
            "with token scheduling:"
        } else {
            ""
        };
        rows(&mut s, title, &self.policies);
        if let Some(u) = &self.unscheduled {
            rows(
                &mut s,
                "\nwithout token scheduling (first-come first-served):",
                u,
            );
        }
        s
    }
}
