//! A small in-process predictor for replay when no predictor file is given: per layer pair
//! (l, l+h) transition frequencies from training traces, mixed with the previous token's experts
//! at the target layer and the target layer's expert frequency.

use crate::predict::{Predictor, RoutingView};
use crate::trace::{ModelShape, Trace, dequantize_weight};

/// Transition + temporal + frequency mix, fitted by counting.
#[derive(Debug, Clone)]
pub struct TransitionMix {
    shape: ModelShape,
    lookahead: usize,
    /// `P(e' at l+h | e at l)`, `[h-1][l][e][e']`, rows normalised to sum `top_k`.
    trans: Vec<f32>,
    /// Expert frequency per layer, `[l][e]`, normalised to sum `top_k`.
    freq: Vec<f32>,
    /// Weights of (transition, previous token, frequency).
    mix: [f32; 3],
}

impl TransitionMix {
    /// Fits on `traces` (all of `shape`), scoring up to `lookahead` layers ahead.
    pub fn fit(traces: &[&Trace], lookahead: usize) -> Option<Self> {
        let shape = *traces.first()?.shape();
        let (ls, es, k) = (shape.moe_layers, shape.experts, shape.top_k);
        let d = lookahead.clamp(1, ls.saturating_sub(1).max(1));
        let mut trans = vec![0f32; d * ls * es * es];
        let mut freq = vec![0f32; ls * es];
        for tr in traces {
            for t in 0..tr.num_tokens() {
                let ex = tr.token_experts(t);
                for l in 0..ls {
                    for &e in &ex[l * k..(l + 1) * k] {
                        freq[l * es + e as usize] += 1.0;
                        for h in 1..=d {
                            if l + h >= ls {
                                break;
                            }
                            let row = (((h - 1) * ls + l) * es + e as usize) * es;
                            for &e2 in &ex[(l + h) * k..(l + h + 1) * k] {
                                trans[row + e2 as usize] += 1.0;
                            }
                        }
                    }
                }
            }
        }
        for row in trans.chunks_mut(es).chain(freq.chunks_mut(es)) {
            let s: f32 = row.iter().sum();
            if s > 0.0 {
                row.iter_mut().for_each(|x| *x *= k as f32 / s);
            }
        }
        Some(TransitionMix {
            shape,
            lookahead: d,
            trans,
            freq,
            mix: [0.55, 0.35, 0.10],
        })
    }
}

impl Predictor for TransitionMix {
    fn name(&self) -> &str {
        "transition-mix"
    }
    fn lookahead(&self) -> usize {
        self.lookahead
    }
    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        let (ls, es, k) = (self.shape.moe_layers, self.shape.experts, self.shape.top_k);
        let (l, target) = (view.layer, view.layer + h);
        let f = &self.freq[target * es..(target + 1) * es];
        for (o, &x) in out.iter_mut().zip(f) {
            *o = self.mix[2] * x;
        }
        let cur = &view.current[l * k..(l + 1) * k];
        let w = &view.current_weights[l * k..(l + 1) * k];
        let wsum: f32 = w.iter().map(|&q| dequantize_weight(q)).sum::<f32>().max(1e-6);
        for (&e, &q) in cur.iter().zip(w) {
            let c = self.mix[0] * dequantize_weight(q) / wsum * k as f32;
            let row = (((h - 1) * ls + l) * es + e as usize) * es;
            for (o, &p) in out.iter_mut().zip(&self.trans[row..row + es]) {
                *o += c * p / k as f32;
            }
        }
        match view.previous {
            Some(prev) => {
                for &e in &prev[target * k..(target + 1) * k] {
                    out[e as usize] += self.mix[1];
                }
            }
            None => {
                for (o, &x) in out.iter_mut().zip(f) {
                    *o += self.mix[1] * x;
                }
            }
        }
    }
}
