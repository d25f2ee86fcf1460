//! Fitting the generator to a real trace: its statistics (load profile, temporal locality,
//! successor mass) measured with [`crate::stats`], matched on a probe trace.

use super::{SynthParams, generate, zipf_weights};
use crate::stats::{Transitions, expert_counts, temporal_locality};
use crate::trace::{ModelShape, Trace};

impl SynthParams {
    /// Fits popularity (per layer: the real sorted load profile, resampled to `shape.experts`),
    /// temporal locality (per layer) and affinity (global) to `real`, for a trace of `shape`;
    /// layers are mapped by relative depth. The fit runs the generator on a small probe trace
    /// and corrects the knobs until its statistics match the real ones.
    pub fn fit(real: &Trace, shape: ModelShape, seed: u64) -> Self {
        let rs = *real.shape();
        let counts = expert_counts(real);
        let real_temporal = temporal_locality(real);
        let real_mass = Transitions::count(real, 1).summary(0).top_k_successor_mass;
        let real_layer = |l: usize| -> usize {
            if shape.moe_layers > 1 {
                ((l as f64 / (shape.moe_layers - 1) as f64) * (rs.moe_layers - 1) as f64).round()
                    as usize
            } else {
                0
            }
        };
        // Target share by rank (descending), resampled to the target expert count.
        let target_profile: Vec<Vec<f64>> = (0..shape.moe_layers)
            .map(|l| {
                let rl = real_layer(l);
                let mut c: Vec<f64> = counts[rl * rs.experts..(rl + 1) * rs.experts]
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                c.sort_by(|a, b| b.total_cmp(a));
                let prof: Vec<f64> = (0..shape.experts)
                    .map(|r| c[(r * rs.experts / shape.experts).min(rs.experts - 1)].max(0.5))
                    .collect();
                let z: f64 = prof.iter().sum();
                prof.into_iter().map(|x| x / z).collect()
            })
            .collect();
        let mut p = SynthParams {
            mean_seq_len: real.num_tokens() as f64 / real.num_sequences().max(1) as f64,
            temporal: (0..shape.moe_layers)
                .map(|l| real_temporal[real_layer(l)] * 0.7)
                .collect(),
            structure_seed: seed,
            ..SynthParams::default_for(shape)
        };
        // Start from the real profile laid over a seeded random ranking of the experts.
        for (l, prof) in target_profile.iter().enumerate() {
            let order = zipf_weights(shape.experts, 1.0, l as u64 ^ seed);
            let mut idx: Vec<usize> = (0..shape.experts).collect();
            idx.sort_by(|&a, &b| order[b].total_cmp(&order[a]));
            for (r, &e) in idx.iter().enumerate() {
                p.popularity[l][e] = prof[r];
            }
        }
        let e = shape.experts;
        for _round in 0..10 {
            let tr = generate(&p, FIT_PROBE_TOKENS, seed ^ 0x5eed, None);
            let got_t = temporal_locality(&tr);
            let got_c = expert_counts(&tr);
            for l in 0..shape.moe_layers {
                p.temporal[l] = (p.temporal[l] + 1.1 * (real_temporal[real_layer(l)] - got_t[l]))
                    .clamp(0.0, 0.95);
                // Rank-matched multiplicative correction of the popularity.
                let got = &got_c[l * e..(l + 1) * e];
                let total = got.iter().sum::<u64>().max(1) as f64;
                let mut idx: Vec<usize> = (0..e).collect();
                idx.sort_by(|&a, &b| p.popularity[l][b].total_cmp(&p.popularity[l][a]));
                for (r, &x) in idx.iter().enumerate() {
                    let share = (got[x] as f64).max(0.5) / total;
                    p.popularity[l][x] *= (target_profile[l][r] / share).powf(0.8);
                }
            }
            let got_m = Transitions::count(&tr, 1).summary(0).top_k_successor_mass;
            p.affinity = (p.affinity + 1.5 * (real_mass - got_m)).clamp(0.0, 0.95);
        }
        p
    }
}

/// Tokens of the probe trace the fit generates per round.
const FIT_PROBE_TOKENS: usize = 6000;
