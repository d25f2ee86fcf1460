//! The count-level inputs of `moeplan report` (expert loads, consecutive-layer pairs, the
//! re-balancing stream), from traces or from a routing statistics file: everything the load,
//! shift, placement, affinity and re-balancing charts need.

use moeplan_solver::Workload;

use super::report_cmd::{Inputs, bad, sh};
use crate::fleet::{RoutingStats, stats_windows};
use crate::placement::{DEFAULT_BATCH_TOKENS, combined_workload, workload_from_trace};
use crate::rebalance::{StreamWindow, trace_windows};
use crate::stats::{StatsOptions, TransitionSummary, compute, expert_counts, layer_load};
use crate::trace::{ModelShape, Trace};

/// Fewest windows a re-balancing chart is drawn with (one learned from, two scored).
pub const MIN_WINDOWS: usize = 3;

/// The re-balancing stream, or why there is none.
pub struct Stream {
    /// The windows in order.
    pub windows: Vec<StreamWindow>,
    /// Tokens per window.
    pub window: usize,
    /// What the stream is made of.
    pub name: String,
    /// The `rebalance` input flags (`-t A -t B` or `--stats FILE`).
    pub flags: String,
}

/// The counts of the build workloads.
pub struct Counts {
    /// Shape of the counts.
    pub shape: ModelShape,
    /// Names of the build workloads.
    pub names: Vec<String>,
    /// Tokens of the build workloads together.
    pub tokens: usize,
    /// `[layer][expert]` selections of all build workloads.
    pub load: Vec<Vec<u64>>,
    /// Per layer, busiest expert / mean.
    pub imbalance: Vec<f64>,
    /// One solver workload per build workload (the placement problem).
    pub workloads: Vec<Workload>,
    /// All build workloads together, with per-batch loads (the in-sample scores).
    pub in_sample: Workload,
    /// The 1-hop affinity summary.
    pub hop1: TransitionSummary,
    /// Named flat `[layer][expert]` loads the shift chart compares (the first two).
    pub parts: Vec<(String, Vec<u64>)>,
    /// The command behind the load counts, and the one behind the affinity.
    pub load_command: String,
    /// The command behind the affinity pairs.
    pub affinity_command: String,
    /// The re-balancing stream, or why there is none.
    pub stream: Result<Stream, String>,
}

/// `[layer][expert]` rows of a flat count vector.
fn rows(flat: &[u64], experts: usize) -> Vec<Vec<u64>> {
    flat.chunks(experts.max(1)).map(<[u64]>::to_vec).collect()
}

fn imbalances(shape: &ModelShape, load: &[Vec<u64>]) -> Vec<f64> {
    load.iter()
        .enumerate()
        .map(|(l, c)| layer_load(shape, l, c, 0.0).imbalance)
        .collect()
}

/// A default window for `tokens`: sixteen windows (the last one a little shorter), at least 16
/// tokens each.
pub fn default_window(tokens: usize) -> usize {
    tokens.div_ceil(16).max(16)
}

/// The counts of the build traces of `inp`; the stream is the build traces then the eval trace.
pub fn from_traces(inp: &Inputs, combined: &Trace) -> anyhow::Result<Counts> {
    let shape = *combined.shape();
    let stats = compute(
        combined,
        None,
        &StatsOptions {
            max_hops: 1,
            top_pairs: inp.top_pairs,
        },
    )
    .map_err(bad)?;
    let stats_cmd = format!(
        "moeplan trace stats {} --model {} --max-hops 1 --top-pairs {} --json",
        inp.build_flags("-t"),
        sh(&inp.model.0),
        inp.top_pairs
    );
    let hop1 = stats
        .transitions
        .first()
        .cloned()
        .ok_or_else(|| bad("the traces have a single MoE layer: no inter-layer affinity"))?;
    let mut parts: Vec<(String, Vec<u64>)> = inp
        .build
        .iter()
        .map(|n| (n.name.clone(), expert_counts(&n.trace)))
        .collect();
    if let Some(e) = &inp.eval {
        parts.push((e.name.clone(), expert_counts(&e.trace)));
    }
    let mut all: Vec<&Trace> = inp.build.iter().map(|n| &n.trace).collect();
    all.extend(inp.eval.as_ref().map(|e| &e.trace));
    let stream_trace = Trace::concat(&all).map_err(bad)?;
    let window = inp
        .window
        .unwrap_or_else(|| default_window(stream_trace.num_tokens()));
    let names: Vec<String> = inp
        .build
        .iter()
        .chain(inp.eval.as_ref())
        .map(|n| n.name.clone())
        .collect();
    let windows = trace_windows(&stream_trace, window).map_err(|e| bad(e.to_string()))?;
    let stream = if windows.len() < MIN_WINDOWS {
        Err(format!(
            "The stream ({}) has {} tokens: {} window(s) of {window}, and re-balancing needs at \
             least {MIN_WINDOWS} (give more or longer traces, or a smaller --window).",
            names.join(" then "),
            stream_trace.num_tokens(),
            windows.len()
        ))
    } else {
        Ok(Stream {
            windows,
            window,
            name: names.join(" then "),
            flags: names
                .iter()
                .map(|n| format!("-t {}", sh(n)))
                .collect::<Vec<_>>()
                .join(" "),
        })
    };
    let load: Vec<Vec<u64>> = stats.layers.iter().map(|l| l.counts.clone()).collect();
    Ok(Counts {
        shape,
        names: inp.build.iter().map(|n| n.name.clone()).collect(),
        tokens: combined.num_tokens(),
        imbalance: stats.layers.iter().map(|l| l.imbalance).collect(),
        load,
        workloads: inp
            .build
            .iter()
            .map(|n| workload_from_trace(&n.trace, 0))
            .collect(),
        in_sample: workload_from_trace(combined, DEFAULT_BATCH_TOKENS),
        hop1,
        parts,
        load_command: format!("{stats_cmd}   # layers[].counts"),
        affinity_command: format!("{stats_cmd}   # transitions[0].strongest"),
        stream,
    })
}

/// The counts of a statistics file (`name` is its path): one build workload per label; the
/// stream is the file's windows (with `trace aggregate --window-pairs`).
pub fn from_stats(inp: &Inputs, name: &str, stats: &RoutingStats) -> anyhow::Result<Counts> {
    let shape = stats.shape;
    let e = shape.experts;
    let total = stats.sum_except(None);
    let load = rows(&total.load, e);
    let hop1 = total
        .transitions(&shape, 1)
        .map_err(|m| bad(format!("{name}: {m}")))?
        .summary(inp.top_pairs);
    let window = inp.window.unwrap_or(stats.window_tokens as usize);
    let stream = match stats_windows(stats, &inp.model.1, window) {
        Err(m) => Err(format!(
            "No re-balancing from {name}: {m}. The command would be `moeplan rebalance --stats \
             {} --model {} --hardware {} --window {window}`.",
            sh(name),
            sh(&inp.model.0),
            sh(&inp.hardware.0)
        )),
        Ok(w) if w.len() < MIN_WINDOWS => Err(format!(
            "{name} has {} window(s) of {window} tokens; re-balancing needs at least \
             {MIN_WINDOWS} (aggregate with a smaller --window).",
            w.len()
        )),
        Ok(w) => Ok(Stream {
            windows: w,
            window,
            name: format!(
                "The windows of {name} (workloads {}, one after the other)",
                stats
                    .workloads
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            flags: format!("--stats {}", sh(name)),
        }),
    };
    let query = |filter: &str, cols: &str| {
        format!(
            "python3 -c \"import duckdb; print(duckdb.sql(\\\"select {cols}, sum(count) from \
             '{name}' where {filter} group by all order by all\\\"))\""
        )
    };
    let parts: Vec<Workload> = stats
        .workloads
        .values()
        .map(|w| w.solver_workload(&shape, true))
        .collect();
    Ok(Counts {
        shape,
        names: stats.workloads.keys().cloned().collect(),
        tokens: stats.tokens() as usize,
        imbalance: imbalances(&shape, &load),
        load,
        workloads: stats
            .workloads
            .values()
            .map(|w| w.solver_workload(&shape, false))
            .collect(),
        in_sample: combined_workload(&parts),
        hop1,
        parts: stats
            .workloads
            .iter()
            .map(|(n, w)| (format!("{n} ({name})"), w.load.clone()))
            .chain(
                inp.eval
                    .as_ref()
                    .map(|n| (n.name.clone(), expert_counts(&n.trace))),
            )
            .collect(),
        load_command: query("kind = 'load'", "layer, src"),
        affinity_command: format!(
            "{}   # lift = P(dst | src) / P(dst), as moeplan trace stats computes it on traces",
            query("kind = 'pair' and hop = 1", "layer, src, dst")
        ),
        stream,
    })
}
