//! Exponentially decayed routing counts, updated per observed token without touching the whole
//! table: each new token adds `unit`, which grows by `2^(1/half_life)` per token, so older
//! tokens weigh `2^(-age/half_life)` relative to the newest; the table is rescaled (rarely) when
//! `unit` gets large.

use crate::trace::ModelShape;

/// `unit` above which every count is divided by it (keeps f32 far from overflow).
const RESCALE_AT: f32 = 1e18;

/// Decayed static and h-hop transition counts of the tokens observed so far.
#[derive(Debug, Clone)]
pub struct DecayedCounts {
    /// Routing shape.
    shape: ModelShape,
    /// Weight the next observed token adds (in table units).
    unit: f32,
    /// Factor `unit` grows by per token (1 without decay).
    growth: f32,
    /// Observed tokens, decayed, in table units.
    tokens: f32,
    /// Tokens observed, not decayed.
    seen: u64,
    /// `[moe_layers][experts]`: how often each expert was chosen.
    stat: Vec<f32>,
    /// `rows[h - 1]`: `[moe_layers - h][experts]`, tokens that chose `a` at layer l.
    rows: Vec<Vec<f32>>,
    /// `trans[h - 1]`: `[moe_layers - h][experts][experts]`, a at l followed by b at l + h.
    trans: Vec<Vec<f32>>,
}

impl DecayedCounts {
    /// Empty counts for look-ahead `1..=lookahead` with `half_life` tokens (`f64::INFINITY`: no
    /// decay).
    pub fn new(shape: ModelShape, lookahead: usize, half_life: f64) -> DecayedCounts {
        let (l, e) = (shape.moe_layers, shape.experts);
        let growth = if half_life.is_finite() && half_life > 0.0 {
            2f64.powf(1.0 / half_life) as f32
        } else {
            1.0
        };
        DecayedCounts {
            shape,
            unit: 1.0,
            growth,
            tokens: 0.0,
            seen: 0,
            stat: vec![0.0; l * e],
            rows: (1..=lookahead).map(|h| vec![0.0; (l - h) * e]).collect(),
            trans: (1..=lookahead)
                .map(|h| vec![0.0; (l - h) * e * e])
                .collect(),
        }
    }

    /// Adds one token's routing (`[moe_layers][top_k]` flattened). Allocation-free.
    pub fn observe(&mut self, experts: &[u16]) {
        let (layers, e, k) = (self.shape.moe_layers, self.shape.experts, self.shape.top_k);
        let u = self.unit;
        for (l, sel) in experts.chunks_exact(k).enumerate().take(layers) {
            let row = &mut self.stat[l * e..(l + 1) * e];
            for &a in sel {
                row[a as usize] += u;
            }
        }
        for (i, (rows, trans)) in self.rows.iter_mut().zip(&mut self.trans).enumerate() {
            let h = i + 1;
            for l in 0..layers - h {
                let src = &experts[l * k..(l + 1) * k];
                let dst = &experts[(l + h) * k..(l + h + 1) * k];
                for &a in src {
                    rows[l * e + a as usize] += u;
                    let t = &mut trans[(l * e + a as usize) * e..(l * e + a as usize + 1) * e];
                    for &b in dst {
                        t[b as usize] += u;
                    }
                }
            }
        }
        self.tokens += u;
        self.seen += 1;
        self.unit *= self.growth;
        if self.unit > RESCALE_AT {
            self.rescale();
        }
    }

    /// Divides every count by `unit` (so `unit` becomes 1).
    fn rescale(&mut self) {
        let inv = 1.0 / self.unit;
        let all = std::iter::once(&mut self.stat)
            .chain(self.rows.iter_mut())
            .chain(self.trans.iter_mut());
        for v in all {
            for x in v.iter_mut() {
                *x *= inv;
            }
        }
        self.tokens *= inv;
        self.unit = 1.0;
    }

    /// Multiplier turning table units into effective token counts (the newest token ~ 1).
    #[inline]
    pub fn scale(&self) -> f32 {
        self.growth / self.unit
    }

    /// Effective (decayed) number of tokens observed.
    #[inline]
    pub fn tokens(&self) -> f32 {
        self.tokens * self.scale()
    }

    /// Tokens observed, not decayed.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Raw counts of layer `l` (multiply by [`DecayedCounts::scale`]).
    #[inline]
    pub fn stat_layer(&self, l: usize) -> &[f32] {
        let e = self.shape.experts;
        &self.stat[l * e..(l + 1) * e]
    }

    /// Raw count of tokens choosing `a` at layer `l`, for look-ahead `h`.
    #[inline]
    pub fn row_total(&self, h: usize, l: usize, a: usize) -> f32 {
        self.rows[h - 1][l * self.shape.experts + a]
    }

    /// Raw transition counts from `a` at layer `l` to layer `l + h`.
    #[inline]
    pub fn row(&self, h: usize, l: usize, a: usize) -> &[f32] {
        let e = self.shape.experts;
        &self.trans[h - 1][(l * e + a) * e..(l * e + a + 1) * e]
    }

    /// Largest look-ahead counted.
    pub fn lookahead(&self) -> usize {
        self.trans.len()
    }

    /// The routing shape.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ModelShape {
        ModelShape {
            moe_layers: 3,
            experts: 4,
            top_k: 2,
            first_moe_layer: 0,
        }
    }

    #[test]
    fn decays_by_half_per_half_life() {
        let mut c = DecayedCounts::new(shape(), 1, 2.0);
        c.observe(&[0, 1, 0, 1, 0, 1]);
        c.observe(&[2, 3, 2, 3, 2, 3]);
        c.observe(&[2, 3, 2, 3, 2, 3]);
        // Expert 0 was seen two tokens ago: weight 1/2 of the newest.
        let s = c.scale();
        assert!((c.stat_layer(0)[0] * s - 0.5).abs() < 1e-5);
        assert!((c.row(1, 0, 2)[3] * s - (1.0 + 2f32.powf(-0.5))).abs() < 1e-5);
        assert_eq!(c.seen(), 3);
    }

    #[test]
    fn rescale_keeps_effective_counts() {
        let mut c = DecayedCounts::new(shape(), 2, 0.5);
        for i in 0..40 {
            let x = (i % 4) as u16;
            c.observe(&[x, (x + 1) % 4, x, (x + 1) % 4, x, (x + 1) % 4]);
        }
        assert!(c.unit <= RESCALE_AT);
        let total: f32 = c.stat_layer(1).iter().map(|&x| x * c.scale()).sum();
        assert!((total / c.tokens() - 2.0).abs() < 1e-3, "{total}");
    }
}
