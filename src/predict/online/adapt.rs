//! The `learned` model's output heads adapting online: one gradient step per observed token,
//! reusing the hidden layer and logits its scores already computed.
//!
//! The step at layer l needs case (token, l, h = 1)'s hidden layer and logits, which the score
//! computed when the token was predicted. The score keeps them per layer ([`Memo`]), keyed by
//! the case's embedding rows (which fix the hidden layer); the step uses them when the key
//! matches and recomputes them otherwise. So a token that was predicted costs the update only.

use std::sync::Mutex;

use crate::predict::RoutingView;
use crate::predict::learned::{Heads, LearnedPredictor, MAX_HIDDEN, features};
use crate::trace::ModelShape;

/// Per layer, the last h = 1 case scored: its embedding rows, hidden layer and logits.
#[derive(Debug, Clone)]
struct Memo {
    /// `[layers][per_case]`: the case's rows (its key).
    keys: Vec<u32>,
    /// `[layers][hidden]`.
    hid: Vec<f32>,
    /// `[layers][experts]`.
    logits: Vec<f32>,
    /// Per layer, whether the entry holds a case not learned from yet.
    valid: Vec<bool>,
}

/// Adapted copies of the output heads and biases, with the memo and scratch of their update.
#[derive(Debug)]
pub(super) struct Adapted {
    /// `[moe_layers][hidden][experts]`, from the trained heads.
    w_out: Vec<f32>,
    /// `[moe_layers][experts]`, from the trained biases.
    b_out: Vec<f32>,
    /// Learning rate.
    lr: f32,
    /// Features per case.
    per_case: usize,
    /// What the scores left for the update (locked only to be `Sync`: scoring and learning
    /// take turns).
    memo: Mutex<Memo>,
    /// Scratch: a case's rows.
    key: Vec<u32>,
    /// Scratch: a case's hidden layer.
    hid: Vec<f32>,
    /// Scratch: a case's logits, then their loss gradient.
    grad: Vec<f32>,
}

impl Clone for Adapted {
    fn clone(&self) -> Adapted {
        let memo = self
            .memo
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        Adapted {
            w_out: self.w_out.clone(),
            b_out: self.b_out.clone(),
            lr: self.lr,
            per_case: self.per_case,
            memo: Mutex::new(memo),
            key: self.key.clone(),
            hid: self.hid.clone(),
            grad: self.grad.clone(),
        }
    }
}

/// Writes case (`view`, 1)'s embedding rows into `key`.
fn key_into(view: &RoutingView<'_>, lookahead: usize, key: &mut [u32]) {
    let mut i = 0;
    features::for_each(view, 1, lookahead, |row, _| {
        key[i] = row as u32;
        i += 1;
    });
}

impl Adapted {
    /// Copies of `m`'s trained heads for a model of `shape`, adapting at learning rate `lr`.
    pub fn new(m: &LearnedPredictor, shape: &ModelShape, lr: f32) -> Adapted {
        let (layers, e, hd) = (shape.moe_layers, shape.experts, m.hidden());
        let per_case = features::per_case(shape);
        let h = m.heads();
        Adapted {
            w_out: h.w_out.to_vec(),
            b_out: h.b_out.to_vec(),
            lr,
            per_case,
            memo: Mutex::new(Memo {
                keys: vec![0; layers * per_case],
                hid: vec![0.0; layers * hd],
                logits: vec![0.0; layers * e],
                valid: vec![false; layers],
            }),
            key: vec![0; per_case],
            hid: vec![0.0; hd],
            grad: vec![0.0; e],
        }
    }

    /// The adapted heads.
    pub fn heads(&self) -> Heads<'_> {
        Heads {
            w_out: &self.w_out,
            b_out: &self.b_out,
        }
    }

    /// The score of case (`view`, `h`) through the adapted heads; at h = 1 its hidden layer
    /// and logits are kept for the update.
    #[inline]
    pub fn score(
        &self,
        m: &LearnedPredictor,
        view: &RoutingView<'_>,
        h: usize,
        out: &mut [f32],
        markov: impl FnOnce(&mut [f32]),
    ) {
        let mut buf = [0f32; MAX_HIDDEN];
        let hid = &mut buf[..m.hidden()];
        m.hidden_into(view, h, hid);
        m.logits_into(view, h, hid, self.heads(), out, markov);
        if h != 1 {
            return;
        }
        // Busy only if another thread scores at the same time: the update then recomputes.
        if let Ok(mut memo) = self.memo.try_lock() {
            let (l, n, hd, e) = (view.layer, self.per_case, hid.len(), out.len());
            key_into(view, m.lookahead, &mut memo.keys[l * n..(l + 1) * n]);
            memo.hid[l * hd..(l + 1) * hd].copy_from_slice(hid);
            memo.logits[l * e..(l + 1) * e].copy_from_slice(out);
            memo.valid[l] = true;
        }
    }

    /// One gradient step of the training loss (binary cross-entropy with logits, summed over
    /// the experts) for case (`view`, 1), whose routing at layer `view.layer + 1` is `target`;
    /// `markov` writes its markov feature (for a case the memo does not hold).
    pub fn learn(
        &mut self,
        m: &LearnedPredictor,
        view: &RoutingView<'_>,
        target: &[u16],
        markov: impl FnOnce(&mut [f32]),
    ) {
        let (l, n, hd, e) = (view.layer, self.per_case, self.hid.len(), self.grad.len());
        key_into(view, m.lookahead, &mut self.key);
        let memo = self.memo.get_mut().unwrap_or_else(|p| p.into_inner());
        if memo.valid[l] && memo.keys[l * n..(l + 1) * n] == self.key[..] {
            self.hid.copy_from_slice(&memo.hid[l * hd..(l + 1) * hd]);
            self.grad.copy_from_slice(&memo.logits[l * e..(l + 1) * e]);
        } else {
            m.hidden_into(view, 1, &mut self.hid);
            let heads = Heads {
                w_out: &self.w_out,
                b_out: &self.b_out,
            };
            m.logits_into(view, 1, &self.hid, heads, &mut self.grad, markov);
        }
        memo.valid[l] = false;
        // d loss / d logit = sigmoid(logit) - [expert chosen], times the learning rate.
        let lr = self.lr;
        for g in self.grad.iter_mut() {
            *g = lr / (1.0 + (-*g).exp());
        }
        for &x in target {
            self.grad[x as usize] -= lr;
        }
        let t = l + 1;
        for (b, &g) in self.b_out[t * e..(t + 1) * e].iter_mut().zip(&self.grad) {
            *b -= g;
        }
        let head = &mut self.w_out[t * hd * e..(t + 1) * hd * e];
        for (&x, w) in self.hid.iter().zip(head.chunks_exact_mut(e)) {
            if x > 0.0 {
                for (w, &g) in w.iter_mut().zip(&self.grad) {
                    *w -= x * g;
                }
            }
        }
    }
}
