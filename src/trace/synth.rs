//! Synthetic traces for any model shape, deterministic by seed, with per-layer popularity skew
//! (Zipf over a random expert ranking), inter-layer affinity (each expert has a few preferred
//! successors at the next layer) and temporal locality (reuse of the previous token's experts).
//! [`SynthParams::fit`] fits those knobs to a real trace by matching its statistics.

use serde::{Deserialize, Serialize};

use super::{ModelShape, Trace, quantize_weight};
use crate::stats::{Transitions, expert_counts, temporal_locality};
use crate::util::Progress;

/// Generator parameters (all fitted by [`SynthParams::fit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthParams {
    /// Shape of the generated trace.
    pub shape: ModelShape,
    /// Zipf exponent of expert popularity, per MoE layer (0 = uniform).
    pub zipf: Vec<f64>,
    /// Probability that a slot reuses one of the previous token's experts at the same layer.
    pub temporal: Vec<f64>,
    /// Probability that a slot follows the affinity of one of the token's previous-layer experts.
    pub affinity: f64,
    /// Preferred successors per expert.
    pub successors: usize,
    /// Geometric decay of the successor weights (1, d, d^2, ...).
    pub successor_decay: f64,
    /// Mean sequence length in tokens (lengths are uniform in [mean/2, 3*mean/2]).
    pub mean_seq_len: f64,
}

impl SynthParams {
    /// Moderate defaults for a shape (no real trace to fit).
    pub fn default_for(shape: ModelShape) -> Self {
        SynthParams {
            shape,
            zipf: vec![0.6; shape.moe_layers],
            temporal: vec![0.2; shape.moe_layers],
            affinity: 0.3,
            successors: shape.top_k.max(2),
            successor_decay: 0.7,
            mean_seq_len: 256.0,
        }
    }

    /// Fits skew (per layer, by entropy), temporal locality (per layer) and affinity (global, by
    /// simulation) to `real`, for a generated trace of `shape` (layers are mapped by relative depth).
    pub fn fit(real: &Trace, shape: ModelShape, seed: u64) -> Self {
        let rs = *real.shape();
        let counts = expert_counts(real);
        let real_entropy: Vec<f64> = (0..rs.moe_layers)
            .map(|l| {
                crate::stats::LayerLoad::normalised_entropy(
                    &counts[l * rs.experts..(l + 1) * rs.experts],
                )
            })
            .collect();
        let real_temporal = temporal_locality(real);
        let real_mass = Transitions::count(real, 1).summary(0).top_k_successor_mass;
        let map = |v: &[f64], l: usize| -> f64 {
            let x = if shape.moe_layers > 1 {
                l as f64 / (shape.moe_layers - 1) as f64
            } else {
                0.0
            };
            let pos = x * (v.len() - 1) as f64;
            let (i, f) = (pos.floor() as usize, pos.fract());
            if i + 1 < v.len() {
                v[i] * (1.0 - f) + v[i + 1] * f
            } else {
                v[i]
            }
        };
        let zipf: Vec<f64> = (0..shape.moe_layers)
            .map(|l| zipf_for_entropy(map(&real_entropy, l), shape.experts))
            .collect();
        let mut p = SynthParams {
            zipf,
            mean_seq_len: real.num_tokens() as f64 / real.num_sequences().max(1) as f64,
            ..SynthParams::default_for(shape)
        };
        let target_t: Vec<f64> = (0..shape.moe_layers)
            .map(|l| map(&real_temporal, l))
            .collect();
        // Simulation fit on a small trace: adjust temporal per layer and affinity globally.
        let probe_tokens = 4000;
        for _round in 0..6 {
            let tr = generate(&p, probe_tokens, seed ^ 0x5eed, None);
            let got_t = temporal_locality(&tr);
            for l in 0..shape.moe_layers {
                let err = target_t[l] - got_t[l];
                p.temporal[l] = (p.temporal[l] + 1.1 * err).clamp(0.0, 0.95);
            }
            let got_m = Transitions::count(&tr, 1).summary(0).top_k_successor_mass;
            p.affinity = (p.affinity + 1.5 * (real_mass - got_m)).clamp(0.0, 0.95);
        }
        p
    }
}

/// The Zipf exponent whose distribution over `n` items has normalised entropy `target`.
fn zipf_for_entropy(target: f64, n: usize) -> f64 {
    let ent = |s: f64| {
        let w: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-s)).collect();
        let z: f64 = w.iter().sum();
        -w.iter().map(|x| x / z).map(|p| p * p.log2()).sum::<f64>() / (n as f64).log2()
    };
    let (mut lo, mut hi) = (0.0, 4.0);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if ent(mid) > target {
            lo = mid
        } else {
            hi = mid
        }
    }
    0.5 * (lo + hi)
}

/// SplitMix64: small, fast and good enough for sampling; seeded per sequence for determinism.
struct Rng(u64);

impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in 0..n.
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 32) * n as u64 >> 32) as usize
    }
}

/// Walker alias table: O(1) sampling from a discrete distribution.
struct Alias {
    prob: Vec<f64>,
    alias: Vec<u16>,
}

impl Alias {
    fn new(w: &[f64]) -> Alias {
        let n = w.len();
        let z: f64 = w.iter().sum();
        let mut scaled: Vec<f64> = w.iter().map(|x| x * n as f64 / z).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u16> = (0..n as u16).collect();
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u16;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Alias { prob, alias }
    }
    #[inline]
    fn sample(&self, rng: &mut Rng) -> u16 {
        let i = rng.below(self.prob.len());
        if rng.unit() < self.prob[i] {
            i as u16
        } else {
            self.alias[i]
        }
    }
}

/// Precomputed sampling tables for a parameter set.
struct Tables {
    popularity: Vec<Alias>,
    /// `succ[(l * experts + e) * m + j]`: j-th preferred successor at layer l+1 of expert e at l.
    succ: Vec<u16>,
    /// Cumulative successor weights, length m (shared by all experts).
    succ_cdf: Vec<f64>,
}

fn tables(p: &SynthParams, seed: u64) -> Tables {
    let s = p.shape;
    let mut rng = Rng(seed ^ 0xA5A5_5A5A_1234_5678);
    let mut popularity = Vec::with_capacity(s.moe_layers);
    for l in 0..s.moe_layers {
        // A random ranking of the experts, then Zipf weights by rank.
        let mut rank: Vec<usize> = (0..s.experts).collect();
        for i in (1..rank.len()).rev() {
            rank.swap(i, rng.below(i + 1));
        }
        let mut w = vec![0.0; s.experts];
        for (r, &e) in rank.iter().enumerate() {
            w[e] = ((r + 1) as f64).powf(-p.zipf[l]);
        }
        popularity.push(Alias::new(&w));
    }
    let m = p.successors.min(s.experts);
    let mut succ = Vec::with_capacity(s.moe_layers * s.experts * m);
    for l in 0..s.moe_layers {
        let next = &popularity[(l + 1).min(s.moe_layers - 1)];
        for _ in 0..s.experts {
            let start = succ.len();
            while succ.len() - start < m {
                let c = next.sample(&mut rng);
                if !succ[start..].contains(&c) {
                    succ.push(c);
                }
            }
        }
    }
    let mut acc = 0.0;
    let mut succ_cdf: Vec<f64> = (0..m)
        .map(|j| {
            acc += p.successor_decay.powi(j as i32);
            acc
        })
        .collect();
    for c in &mut succ_cdf {
        *c /= acc;
    }
    Tables {
        popularity,
        succ,
        succ_cdf,
    }
}

/// Generates `tokens` tokens with `params`, deterministically from `seed` (independent of the
/// number of threads). Uses every core; `progress` is told tokens as they are done.
pub fn generate(
    params: &SynthParams,
    tokens: usize,
    seed: u64,
    progress: Option<&dyn Progress>,
) -> Trace {
    let s = params.shape;
    let tab = tables(params, seed);
    // Sequence lengths first (sequentially), so each sequence has a fixed offset and seed.
    let mut rng = Rng(seed);
    let mean = params.mean_seq_len.max(1.0);
    let mut lens = Vec::new();
    let mut total = 0;
    while total < tokens {
        let len = ((mean * (0.5 + rng.unit())).round() as usize).clamp(1, tokens - total);
        lens.push(len);
        total += len;
    }
    let n = s.entries_per_token();
    let mut seq = Vec::with_capacity(tokens);
    let mut pos = Vec::with_capacity(tokens);
    for (i, &len) in lens.iter().enumerate() {
        seq.extend(std::iter::repeat_n(i as u32, len));
        pos.extend(0..len as u32);
    }
    let mut experts = vec![0u16; tokens * n];
    let mut weights = vec![0u16; tokens * n];
    let threads = std::thread::available_parallelism()
        .map_or(1, |x| x.get())
        .min(lens.len())
        .max(1);
    // Split sequences into `threads` contiguous groups of about equal tokens.
    let per = tokens.div_ceil(threads);
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first sequence, first token)
    let mut acc = 0;
    for (i, &len) in lens.iter().enumerate() {
        if groups.is_empty() || acc >= per * groups.len() {
            groups.push((i, acc));
        }
        acc += len;
    }
    std::thread::scope(|scope| {
        let mut e_rest: &mut [u16] = &mut experts;
        let mut w_rest: &mut [u16] = &mut weights;
        for gi in 0..groups.len() {
            let (first_seq, first_tok) = groups[gi];
            let (last_seq, end_tok) = groups
                .get(gi + 1)
                .map_or((lens.len(), tokens), |&(s2, t2)| (s2, t2));
            let (e_mine, e_next) =
                std::mem::take(&mut e_rest).split_at_mut((end_tok - first_tok) * n);
            let (w_mine, w_next) =
                std::mem::take(&mut w_rest).split_at_mut((end_tok - first_tok) * n);
            e_rest = e_next;
            w_rest = w_next;
            let lens = &lens[first_seq..last_seq];
            let tab = &tab;
            scope.spawn(move || {
                let mut off = 0;
                for (j, &len) in lens.iter().enumerate() {
                    let seed_j = seed.wrapping_mul(0x100_0000_01B3)
                        ^ ((first_seq + j) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let span = off * n..(off + len) * n;
                    fill_sequence(
                        params,
                        tab,
                        &mut Rng(seed_j),
                        &mut e_mine[span.clone()],
                        &mut w_mine[span],
                    );
                    off += len;
                    if let Some(p) = progress {
                        p.inc(len as u64);
                    }
                }
            });
        }
    });
    Trace {
        shape: s,
        seq,
        pos,
        experts,
        weights,
    }
}

/// Generates one sequence in place (`experts`/`weights` hold its tokens, token-major).
fn fill_sequence(
    p: &SynthParams,
    tab: &Tables,
    rng: &mut Rng,
    experts: &mut [u16],
    weights: &mut [u16],
) {
    let s = p.shape;
    let (layers, k) = (s.moe_layers, s.top_k);
    let n = layers * k;
    let m = tab.succ_cdf.len();
    let mut raw = [0f64; 64];
    let kk = k.min(64);
    for t in 0..experts.len() / n {
        for l in 0..layers {
            let o = (t * layers + l) * k;
            let mut chosen = 0;
            while chosen < k {
                let r = rng.unit();
                let cand = if t > 0 && r < p.temporal[l] {
                    experts[o - n + rng.below(k)]
                } else if l > 0 && r < p.temporal[l] + p.affinity {
                    let src = experts[o - k + rng.below(k)] as usize;
                    let u = rng.unit();
                    let j = tab.succ_cdf.iter().position(|&c| u < c).unwrap_or(m - 1);
                    tab.succ[((l - 1) * s.experts + src) * m + j]
                } else {
                    tab.popularity[l].sample(rng)
                };
                if !experts[o..o + chosen].contains(&cand) {
                    experts[o + chosen] = cand;
                    chosen += 1;
                }
            }
            // Gate weights: decreasing, summing to a total in [0.3, 1.0] (no renormalisation).
            let mut sum = 0.0;
            for x in raw.iter_mut().take(kk) {
                *x = -(1.0 - rng.unit()).ln();
                sum += *x;
            }
            raw[..kk].sort_unstable_by(|a, b| b.total_cmp(a));
            let total = 0.3 + 0.7 * rng.unit();
            for j in 0..k {
                weights[o + j] = quantize_weight((raw[j.min(kk - 1)] / sum * total) as f32);
            }
        }
    }
}
