//! Synthetic traces for any model shape, deterministic by seed, with per-layer popularity skew,
//! inter-layer affinity (latent route clusters) and temporal locality (reuse of the previous
//! token's experts). [`SynthParams::fit`] (in [`fit`]) fits those knobs to a real trace by
//! matching its statistics on a probe trace: the generator itself only produces traces.

mod fit;

use serde::{Deserialize, Serialize};

use crate::trace::{ModelShape, Trace, quantize_weight};
use crate::util::Progress;
use crate::util::rng::SeededRng as Rng;

/// Generator parameters (all fitted by [`SynthParams::fit`]).
///
/// The model: every token carries a latent *route cluster* (kept from the previous token of its
/// sequence with probability `stickiness`); at every layer the experts are partitioned among the
/// clusters (groups of equal popularity mass).
/// Each of a token's top-k slots at layer l reuses one of the previous token's experts there with
/// probability `temporal[l]`, else draws from its cluster's preferred set with probability
/// `affinity` (this is what makes experts of different layers co-occur, at every hop distance, as
/// in real traces), else draws from the layer's popularity. Duplicates are redrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthParams {
    /// Shape of the generated trace.
    pub shape: ModelShape,
    /// Popularity weight per (layer, expert), `[moe_layers][experts]` (unnormalised).
    pub popularity: Vec<Vec<f64>>,
    /// Probability that a slot reuses one of the previous token's experts at the same layer.
    pub temporal: Vec<f64>,
    /// Probability that a slot draws from the token's route cluster.
    pub affinity: f64,
    /// Number of route clusters.
    pub clusters: usize,
    /// Probability that a token keeps the previous token's cluster.
    pub stickiness: f64,
    /// Mean sequence length in tokens (lengths are uniform in [mean/2, 3*mean/2]).
    pub mean_seq_len: f64,
    /// Seed of the route-cluster structure (fixed by the fit, independent of the sampling seed).
    pub structure_seed: u64,
}

/// Zipf(s) weights over a fixed pseudo-random ranking of `n` experts.
fn zipf_weights(n: usize, s: f64, salt: u64) -> Vec<f64> {
    let mut rng = Rng::new(0xC0FFEE ^ salt);
    let mut rank: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        rank.swap(i, rng.below(i + 1));
    }
    let mut w = vec![0.0; n];
    for (r, &e) in rank.iter().enumerate() {
        w[e] = ((r + 1) as f64).powf(-s);
    }
    w
}

impl SynthParams {
    /// Moderate defaults for a shape (no real trace to fit).
    pub fn default_for(shape: ModelShape) -> Self {
        SynthParams {
            shape,
            popularity: (0..shape.moe_layers)
                .map(|l| zipf_weights(shape.experts, 0.6, l as u64))
                .collect(),
            temporal: vec![0.15; shape.moe_layers],
            affinity: 0.4,
            clusters: (shape.experts / shape.top_k).max(1),
            stickiness: 0.0,
            mean_seq_len: 256.0,
            structure_seed: 0,
        }
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
    /// `clusters[c * moe_layers + l]`: cluster c's experts at layer l and a popularity-weighted
    /// sampler over them.
    clusters: Vec<(Vec<u16>, Alias)>,
    /// `WEIGHT_PATTERNS` quantised gate-weight patterns of length top_k, decreasing, drawn once.
    weight_patterns: Vec<u16>,
}

/// Gate-weight patterns drawn per parameter set (a (token, layer) picks one at random).
const WEIGHT_PATTERNS: usize = 4096;

/// Gate weights: exponential draws, sorted decreasing, scaled to a total in [0.3, 1.0] (the
/// real traces are not renormalised: a token's top-6 weights sum to 0.14..1.0).
fn weight_patterns(k: usize, rng: &mut Rng) -> Vec<u16> {
    let mut out = Vec::with_capacity(WEIGHT_PATTERNS * k);
    let mut raw = vec![0f64; k];
    for _ in 0..WEIGHT_PATTERNS {
        for x in raw.iter_mut() {
            *x = -(1.0 - rng.unit()).ln();
        }
        raw.sort_unstable_by(|a, b| b.total_cmp(a));
        let sum: f64 = raw.iter().sum();
        let total = 0.3 + 0.7 * rng.unit();
        out.extend(
            raw.iter()
                .map(|x| quantize_weight((x / sum * total) as f32)),
        );
    }
    out
}

/// Per layer, the experts are partitioned into `clusters` groups of equal size and about equal
/// popularity mass (greedy, heaviest first, ties broken by a seeded shuffle), so that drawing a uniform cluster and then an
/// expert of it by popularity keeps each expert's overall share equal to its popularity.
fn tables(p: &SynthParams) -> Tables {
    let s = p.shape;
    let mut rng = Rng::new(p.structure_seed ^ 0xA5A5_5A5A_1234_5678);
    let popularity: Vec<Alias> = p.popularity.iter().map(|w| Alias::new(w)).collect();
    let nc = p.clusters.clamp(1, s.experts);
    let mut per_layer: Vec<Vec<Vec<u16>>> = Vec::with_capacity(s.moe_layers);
    for w in &p.popularity {
        let mut order: Vec<usize> = (0..s.experts).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
        // Heaviest first into the lightest group that still has room: near-equal mass, and
        // equal sizes (so every cluster has at least top_k experts when clusters <= E / k).
        let cap = s.experts.div_ceil(nc);
        let mut groups: Vec<Vec<u16>> = vec![Vec::new(); nc];
        let mut mass = vec![0.0f64; nc];
        for e in order {
            let g = (0..nc)
                .filter(|&g| groups[g].len() < cap)
                .min_by(|&a, &b| mass[a].total_cmp(&mass[b]))
                .expect("total capacity covers every expert");
            groups[g].push(e as u16);
            mass[g] += w[e];
        }
        per_layer.push(groups);
    }
    let mut clusters = Vec::with_capacity(nc * s.moe_layers);
    for c in 0..nc {
        for (l, groups) in per_layer.iter().enumerate() {
            let members = groups[c].clone();
            let weights: Vec<f64> = members
                .iter()
                .map(|&e| p.popularity[l][e as usize])
                .collect();
            let alias = Alias::new(&weights);
            clusters.push((members, alias));
        }
    }
    let weight_patterns = weight_patterns(s.top_k, &mut rng);
    Tables {
        popularity,
        clusters,
        weight_patterns,
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
    let tab = tables(params);
    // Sequence lengths first (sequentially), so each sequence has a fixed offset and seed.
    let mut rng = Rng::new(seed);
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
                        &mut Rng::new(seed_j),
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
    Trace::from_columns(s, seq, pos, experts, weights)
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
    let clusters = tab.clusters.len() / layers;
    let mut cluster = rng.below(clusters);
    for t in 0..experts.len() / n {
        if t > 0 && rng.unit() >= p.stickiness {
            cluster = rng.below(clusters);
        }
        for l in 0..layers {
            let o = (t * layers + l) * k;
            let (members, sampler) = &tab.clusters[cluster * layers + l];
            let mut chosen = 0;
            let mut tries = 0usize;
            while chosen < k {
                // After many rejected draws (small cluster, all reused experts taken), fall back
                // to the popularity draw, which reaches every expert: the loop always ends.
                tries += 1;
                let r = if tries > 8 * k { 1.0 } else { rng.unit() };
                let cand = if t > 0 && r < p.temporal[l] {
                    experts[o - n + rng.below(k)]
                } else if r < p.temporal[l] + p.affinity {
                    members[sampler.sample(rng) as usize]
                } else {
                    tab.popularity[l].sample(rng)
                };
                if !experts[o..o + chosen].contains(&cand) {
                    experts[o + chosen] = cand;
                    chosen += 1;
                }
            }
            let w = rng.below(WEIGHT_PATTERNS) * k;
            weights[o..o + k].copy_from_slice(&tab.weight_patterns[w..w + k]);
        }
    }
}
