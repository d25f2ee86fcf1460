//! What a session's predictor may look at: per sequence, the routing of its current token so far
//! (layer by layer, as the runtime's steps report it) and of its previous token.
//!
//! A runtime sends, with each step, every token's top-k experts (highest weight first), gate
//! weights and sequence id ([`crate::daemon::wire::Routing`]). A token of a sequence starts when the
//! sequence is reported at a layer not after the last one recorded for it; the token before
//! becomes its `previous`. This is exactly what [`crate::predict::RoutingView::from_trace`]
//! gives the in-process replay when each step holds at most one token per sequence (batch 1 or
//! continuous batching). At most [`MAX_SEQUENCES`] sequences are remembered (the least recently
//! seen is forgotten first).
//!
//! It also keeps the live recall of a session's predictor: the top-k experts predicted for a
//! sequence's next layer ([`RoutingMemory::predict`]) are compared with the routing the next
//! step reports for it; and it says when a token is complete (every MoE layer reported, in
//! order), which is when an online predictor learns it.

use std::collections::HashMap;

use crate::predict::{RoutingView, top_k_into};
use crate::trace::{ModelShape, quantize_weight};

/// Sequences remembered per session at most.
pub const MAX_SEQUENCES: usize = 4096;

/// One sequence's routing.
#[derive(Debug, Clone)]
struct SeqRouting {
    /// Current token's experts, `[moe_layers][top_k]`; valid up to `layer`.
    current: Vec<u16>,
    /// Current token's quantised gate weights, aligned with `current`; empty when the runtime
    /// sends none.
    weights: Vec<u16>,
    /// Last layer recorded for the current token.
    layer: usize,
    /// Layers recorded for the current token.
    recorded: usize,
    /// The top-k experts predicted for layer `predicted_for` of the current token.
    predicted: Vec<u16>,
    /// The layer `predicted` is for (`usize::MAX`: none pending).
    predicted_for: usize,
    /// The previous token's experts, all layers.
    previous: Option<Vec<u16>>,
    /// When the sequence was last reported (for forgetting the stalest).
    seen: u64,
}

/// Routing of the sequences a session's steps report.
#[derive(Debug, Clone)]
pub struct RoutingMemory {
    /// The session's model shape.
    shape: ModelShape,
    /// By sequence id.
    seqs: HashMap<u64, SeqRouting>,
    /// Tokens recorded so far (the `seen` clock).
    clock: u64,
    /// Scratch for the top-k of a prediction.
    scratch: Vec<u16>,
    /// Predicted experts the next step's routing confirmed.
    recall_hits: u64,
    /// Predicted experts compared with the next step's routing.
    recall_cases: u64,
}

impl RoutingMemory {
    /// An empty memory for `shape`.
    pub fn new(shape: ModelShape) -> Self {
        RoutingMemory {
            shape,
            seqs: HashMap::new(),
            clock: 0,
            scratch: vec![0; shape.experts],
            recall_hits: 0,
            recall_cases: 0,
        }
    }

    /// Records that token of sequence `seq` was routed at `layer` to `experts` (`top_k` ids,
    /// highest weight first) with gate `weights`, and scores a pending prediction of `layer`
    /// against them. Returns the token's routing, all layers, when this completes it (every
    /// layer reported, in order). Ranges are the caller's to check.
    pub fn record(
        &mut self,
        seq: u64,
        layer: usize,
        experts: &[u16],
        weights: &[f32],
    ) -> Option<(&[u16], Option<&[u16]>)> {
        let n = self.shape.entries_per_token();
        let k = self.shape.top_k;
        self.clock += 1;
        if !self.seqs.contains_key(&seq) && self.seqs.len() >= MAX_SEQUENCES {
            let stalest = self
                .seqs
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(&id, _)| id);
            if let Some(id) = stalest {
                self.seqs.remove(&id);
            }
        }
        let s = self.seqs.entry(seq).or_insert_with(|| SeqRouting {
            current: vec![0; n],
            weights: vec![0; n],
            layer: usize::MAX,
            recorded: 0,
            predicted: vec![0; k],
            predicted_for: usize::MAX,
            previous: None,
            seen: 0,
        });
        if s.layer != usize::MAX && layer <= s.layer {
            let done = std::mem::replace(&mut s.current, s.previous.take().unwrap_or_default());
            s.current.resize(n, 0);
            s.previous = Some(done);
            s.recorded = 0;
            s.predicted_for = usize::MAX;
        }
        if s.predicted_for == layer {
            let hits = s.predicted.iter().filter(|e| experts.contains(e)).count();
            self.recall_hits += hits as u64;
            self.recall_cases += s.predicted.len() as u64;
            s.predicted_for = usize::MAX;
        }
        s.current[layer * k..(layer + 1) * k].copy_from_slice(experts);
        if weights.is_empty() {
            // A runtime that sends no gate weights gets a view without them (none invented).
            s.weights.clear();
        } else {
            s.weights.resize(n, 0);
            for (q, &w) in s.weights[layer * k..(layer + 1) * k]
                .iter_mut()
                .zip(weights)
            {
                *q = quantize_weight(w);
            }
        }
        s.layer = layer;
        s.recorded += 1;
        s.seen = self.clock;
        let complete = layer + 1 == self.shape.moe_layers && s.recorded == self.shape.moe_layers;
        complete.then_some((&s.current[..], s.previous.as_deref()))
    }

    /// Keeps the top-k of `scores` (one per expert) as the prediction for sequence `seq`'s
    /// next layer `layer`, scored when the routing of that layer is recorded.
    pub fn predict(&mut self, seq: u64, layer: usize, scores: &[f32]) {
        if let Some(s) = self.seqs.get_mut(&seq) {
            top_k_into(scores, &mut self.scratch, &mut s.predicted);
            s.predicted_for = layer;
        }
    }

    /// Predicted experts confirmed by the next step's routing, and predicted experts compared.
    pub fn recall(&self) -> (u64, u64) {
        (self.recall_hits, self.recall_cases)
    }

    /// The predictor's view of sequence `seq`'s current token once `layer` is routed, if the
    /// sequence was recorded.
    pub fn view(&self, seq: u64, layer: usize) -> Option<RoutingView<'_>> {
        let s = self.seqs.get(&seq)?;
        Some(RoutingView {
            shape: &self.shape,
            layer,
            current: &s.current,
            current_weights: &s.weights,
            previous: s.previous.as_deref(),
        })
    }

    /// Sequences remembered now.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether no sequence is remembered.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::dequantize_weight;

    #[test]
    fn weights_survive_the_float_round_trip() {
        for q in 0..=quantize_weight(1.0) {
            assert_eq!(quantize_weight(dequantize_weight(q)), q);
        }
    }

    #[test]
    fn a_new_token_moves_the_current_one_to_previous() {
        let shape = ModelShape {
            moe_layers: 2,
            experts: 4,
            top_k: 1,
            first_moe_layer: 0,
        };
        let mut m = RoutingMemory::new(shape);
        m.record(7, 0, &[1], &[1.0]);
        m.record(7, 1, &[2], &[1.0]);
        assert!(m.view(7, 1).unwrap().previous.is_none());
        m.record(7, 0, &[3], &[0.5]);
        let v = m.view(7, 0).unwrap();
        assert_eq!(v.previous, Some(&[1u16, 2][..]));
        assert_eq!(v.current_at(0), &[3]);
        assert_eq!(v.current_weights[0], quantize_weight(0.5));
        assert!(m.view(8, 0).is_none());
    }
}
