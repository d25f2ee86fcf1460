//! Workload shift between two traces: per-layer Jensen-Shannon divergence of expert load.

use serde::Serialize;

use crate::trace::ModelShape;

/// Shift of expert load against a second trace.
#[derive(Debug, Clone, Serialize)]
pub struct Shift {
    /// What the second trace is (its path).
    pub against: String,
    /// Per MoE layer, JSD (base 2, in [0, 1]) between the two load distributions.
    pub jsd_per_layer: Vec<f64>,
    /// Mean over layers.
    pub jsd_mean: f64,
    /// Largest layer value.
    pub jsd_max: f64,
}

/// Jensen-Shannon divergence, base 2, of two count vectors (normalised internally).
pub fn js_divergence(a: &[u64], b: &[u64]) -> f64 {
    let (sa, sb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if sa == 0.0 || sb == 0.0 {
        return 0.0;
    }
    let kl = |p: f64, m: f64| if p > 0.0 { p * (p / m).log2() } else { 0.0 };
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (p, q) = (x as f64 / sa, y as f64 / sb);
            let m = 0.5 * (p + q);
            0.5 * kl(p, m) + 0.5 * kl(q, m)
        })
        .sum::<f64>()
        .clamp(0.0, 1.0)
}

/// Shift between two traces' per-layer counts (`[layers][experts]`); shapes must agree.
pub fn shift(
    against: &str,
    a: &[u64],
    b: &[u64],
    sa: &ModelShape,
    sb: &ModelShape,
) -> Result<Shift, String> {
    if (sa.moe_layers, sa.experts) != (sb.moe_layers, sb.experts) {
        return Err(format!(
            "cannot compare traces of different shapes: {} layers x {} experts vs {} x {}",
            sa.moe_layers, sa.experts, sb.moe_layers, sb.experts
        ));
    }
    let e = sa.experts;
    let jsd_per_layer: Vec<f64> = (0..sa.moe_layers)
        .map(|l| js_divergence(&a[l * e..(l + 1) * e], &b[l * e..(l + 1) * e]))
        .collect();
    let jsd_mean = jsd_per_layer.iter().sum::<f64>() / jsd_per_layer.len() as f64;
    let jsd_max = jsd_per_layer.iter().copied().fold(0.0, f64::max);
    Ok(Shift {
        against: against.to_string(),
        jsd_per_layer,
        jsd_mean,
        jsd_max,
    })
}
