//! Human-readable rendering of [`TraceStats`](super::TraceStats).

use std::fmt::Write;

use super::TraceStats;

/// Renders the statistics as aligned text tables.
pub fn render_table(s: &TraceStats) -> String {
    let mut o = String::new();
    let sh = &s.shape;
    let _ = writeln!(
        o,
        "trace: {} tokens in {} sequences; {} MoE layers (first at layer {}), {} experts, top-{}",
        s.tokens, s.sequences, sh.moe_layers, sh.first_moe_layer, sh.experts, sh.top_k
    );
    let _ = writeln!(
        o,
        "\nper-layer load (imbalance = busiest expert / mean; entropy normalised, 1 = uniform)"
    );
    let _ = writeln!(
        o,
        "{:>5} {:>6} {:>10} {:>9} {:>8} {:>9}  top experts (share)",
        "moe", "layer", "imbalance", "entropy", "norm", "temporal"
    );
    for x in &s.layers {
        let total: u64 = x.counts.iter().sum::<u64>().max(1);
        let mut idx: Vec<usize> = (0..x.counts.len()).collect();
        idx.sort_by(|&a, &b| x.counts[b].cmp(&x.counts[a]));
        let top: Vec<String> = idx
            .iter()
            .take(3)
            .map(|&e| format!("{e}({:.1}%)", 100.0 * x.counts[e] as f64 / total as f64))
            .collect();
        let _ = writeln!(
            o,
            "{:>5} {:>6} {:>10.3} {:>9.3} {:>8.3} {:>9.3}  {}",
            x.layer,
            x.model_layer,
            x.imbalance,
            x.entropy_bits,
            x.entropy_norm,
            x.temporal_locality,
            top.join(" ")
        );
    }
    let m = &s.summary;
    let _ = writeln!(
        o,
        "mean: imbalance {:.3} (worst {:.3}), entropy {:.3}, temporal locality {:.3} (chance {:.3})",
        m.imbalance_mean,
        m.imbalance_max,
        m.entropy_norm_mean,
        m.temporal_locality_mean,
        m.temporal_chance
    );
    let _ = writeln!(
        o,
        "\ninter-layer affinity (share of an expert's transitions to its top-{} successors)",
        sh.top_k
    );
    let _ = writeln!(
        o,
        "{:>4} {:>10} {:>12}  strongest pairs (layer:from->to, lift, P)",
        "hops", "top-k mass", "independent"
    );
    for t in &s.transitions {
        let pairs: Vec<String> = t
            .strongest
            .iter()
            .take(4)
            .map(|p| {
                format!(
                    "{}:{}->{} x{:.1} {:.2}",
                    p.layer, p.from, p.to, p.lift, p.prob
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "{:>4} {:>10.3} {:>12.3}  {}",
            t.hops,
            t.top_k_successor_mass,
            t.independent_mass,
            pairs.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\nchunk sparsity (share of experts used by n consecutive tokens of a sequence)"
    );
    let _ = writeln!(o, "{:>4} {:>8} {:>10}", "n", "active", "chunks");
    for c in &s.chunk_sparsity {
        let _ = writeln!(o, "{:>4} {:>8.3} {:>10}", c.n, c.active_fraction, c.chunks);
    }
    if let Some(sh) = &s.shift {
        let _ = writeln!(
            o,
            "\nshift against {}: Jensen-Shannon divergence of expert load (base 2)",
            sh.against
        );
        let per: Vec<String> = sh.jsd_per_layer.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(
            o,
            "mean {:.4}, max {:.4}; per layer: {}",
            sh.jsd_mean,
            sh.jsd_max,
            per.join(" ")
        );
    }
    o
}
