//! The embedding bag of the learned model, trained by hand: the weighted sum of a case's
//! embedding rows, its gradient, and AdamW on the table.
//!
//! candle would gather `[cases][features][hidden]` (tens of MB per batch), multiply, sum, and
//! scatter the same back, then run AdamW as a dozen whole-table tensor ops, allocating at every
//! step; this does the same arithmetic in place, which is most of the training time saved.

/// An embedding table `[rows][hidden]` with its AdamW state.
pub(super) struct Bag {
    /// Hidden width.
    pub hidden: usize,
    /// The table, `[rows][hidden]`.
    pub table: Vec<f32>,
    /// Gradient of the last batch, same shape.
    grad: Vec<f32>,
    /// AdamW first moment.
    m: Vec<f32>,
    /// AdamW second moment.
    v: Vec<f32>,
    /// AdamW steps taken.
    steps: i32,
}

/// AdamW constants (candle's defaults for the betas and ε).
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

impl Bag {
    /// A table of `table.len() / hidden` rows.
    pub fn new(table: Vec<f32>, hidden: usize) -> Bag {
        let n = table.len();
        Bag {
            hidden,
            table,
            grad: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            steps: 0,
        }
    }

    /// `out[i] = Σ_f weights[i*nf+f] · table[rows[i*nf+f]]`, `out` being `[n][hidden]`.
    pub fn forward(&self, rows: &[u32], weights: &[f32], nf: usize, out: &mut Vec<f32>) {
        let hd = self.hidden;
        let n = rows.len() / nf;
        out.clear();
        out.resize(n * hd, 0.0);
        for ((o, r), w) in out
            .chunks_exact_mut(hd)
            .zip(rows.chunks_exact(nf))
            .zip(weights.chunks_exact(nf))
        {
            for (&row, &w) in r.iter().zip(w) {
                if w != 0.0 {
                    let src = &self.table[row as usize * hd..(row as usize + 1) * hd];
                    for (x, &s) in o.iter_mut().zip(src) {
                        *x += w * s;
                    }
                }
            }
        }
    }

    /// Accumulates the table's gradient from `d_out` (the loss gradient of `forward`'s output)
    /// into a zeroed buffer.
    pub fn backward(&mut self, rows: &[u32], weights: &[f32], nf: usize, d_out: &[f32]) {
        let hd = self.hidden;
        self.grad.fill(0.0);
        for ((g, r), w) in d_out
            .chunks_exact(hd)
            .zip(rows.chunks_exact(nf))
            .zip(weights.chunks_exact(nf))
        {
            for (&row, &w) in r.iter().zip(w) {
                if w != 0.0 {
                    let dst = &mut self.grad[row as usize * hd..(row as usize + 1) * hd];
                    for (x, &s) in dst.iter_mut().zip(g) {
                        *x += w * s;
                    }
                }
            }
        }
    }

    /// One AdamW step with the last gradient (the same update as `candle_nn::AdamW`).
    pub fn step(&mut self, lr: f32, weight_decay: f32) {
        self.steps += 1;
        let scale_m = 1.0 / (1.0 - BETA1.powi(self.steps));
        let scale_v = 1.0 / (1.0 - BETA2.powi(self.steps));
        let decay = 1.0 - lr * weight_decay;
        for (((t, &g), m), v) in self
            .table
            .iter_mut()
            .zip(&self.grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *t = *t * decay - lr * (*m * scale_m) / ((*v * scale_v).sqrt() + EPS);
        }
    }
}
