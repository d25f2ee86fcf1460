//! The in-memory trace: columnar, token-major, 4 bytes per (token, layer, k) entry.
//!
//! Layout: entry `(t, l, j)` lives at index `(t * moe_layers + l) * top_k + j` of `experts` and
//! `weights`. Within a (token, layer) the top-k are ordered by gate weight, highest first (ties
//! keep their input order), so `experts(t, l)[0]` is the top-1 expert. Gate weights are stored as
//! 16-bit fixed point (`w * 65535`, rounded): absolute error at most 7.6e-6, far below the 1e-4
//! resolution of the ESFT text files, and exact under write/read round trips.
//! Tokens are stored sequence by sequence, each sequence contiguous and in position order.
//! Gate weights are optional: traces imported from serving engines (SGLang, vLLM) carry expert
//! ids only. Such a trace stores no weights at all ([`Trace::has_weights`] is false and the
//! weight accessors return empty slices); nothing fills them in.

use std::ops::Range;

use super::ModelShape;

/// Scale of the 16-bit fixed-point gate weights.
const WEIGHT_SCALE: f32 = 65535.0;

/// Quantises a gate weight in `[0, 1]` to its stored 16-bit form.
#[inline]
pub fn quantize_weight(w: f32) -> u16 {
    (w.clamp(0.0, 1.0) * WEIGHT_SCALE).round() as u16
}

/// The weight a stored 16-bit value stands for.
#[inline]
pub fn dequantize_weight(q: u16) -> f32 {
    q as f32 / WEIGHT_SCALE
}

/// A routing trace: for every token, its sequence and position, and at every MoE layer its top-k
/// experts with their gate weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub(super) shape: ModelShape,
    /// Sequence id per token.
    pub(super) seq: Vec<u32>,
    /// Position of the token within its sequence.
    pub(super) pos: Vec<u32>,
    /// Expert ids, `[tokens][moe_layers][top_k]`.
    pub(super) experts: Vec<u16>,
    /// Quantised gate weights aligned with `experts`; empty when the trace has none.
    pub(super) weights: Vec<u16>,
}

impl Trace {
    /// A trace from its columns, as the synthetic generator fills them (consistent by
    /// construction: nothing is checked).
    pub(crate) fn from_columns(
        shape: ModelShape,
        seq: Vec<u32>,
        pos: Vec<u32>,
        experts: Vec<u16>,
        weights: Vec<u16>,
    ) -> Trace {
        Trace {
            shape,
            seq,
            pos,
            experts,
            weights,
        }
    }

    /// The routing shape.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }

    /// Whether the trace carries gate weights (engine-recorded traces do not).
    pub fn has_weights(&self) -> bool {
        !self.weights.is_empty() || self.experts.is_empty()
    }

    /// Fails with a message naming `consumer` when the trace has no gate weights.
    pub fn require_weights(&self, consumer: &str) -> Result<(), String> {
        if self.has_weights() {
            Ok(())
        } else {
            Err(format!(
                "{consumer} needs gate weights, and this trace has none (traces recorded by \
                 SGLang or vLLM carry expert ids only)"
            ))
        }
    }

    /// Number of tokens.
    pub fn num_tokens(&self) -> usize {
        self.seq.len()
    }

    /// Number of (token, layer, k) entries.
    pub fn num_entries(&self) -> usize {
        self.experts.len()
    }

    /// Sequence id of token `t`.
    #[inline]
    pub fn seq_id(&self, t: usize) -> u32 {
        self.seq[t]
    }

    /// Position of token `t` in its sequence.
    #[inline]
    pub fn position(&self, t: usize) -> u32 {
        self.pos[t]
    }

    /// The top-k experts of token `t` at MoE layer `l`, highest gate weight first.
    #[inline]
    pub fn experts(&self, t: usize, l: usize) -> &[u16] {
        let k = self.shape.top_k;
        let o = (t * self.shape.moe_layers + l) * k;
        &self.experts[o..o + k]
    }

    /// Quantised gate weights of token `t` at layer `l` (see [`dequantize_weight`]); empty when
    /// the trace has no weights.
    #[inline]
    pub fn weights_q(&self, t: usize, l: usize) -> &[u16] {
        let k = self.shape.top_k;
        let o = (t * self.shape.moe_layers + l) * k;
        self.weights.get(o..o + k).unwrap_or(&[])
    }

    /// Gate weights of token `t` at layer `l` as floats (writes into `out`, length top_k).
    pub fn weights_into(&self, t: usize, l: usize, out: &mut [f32]) {
        for (o, &q) in out.iter_mut().zip(self.weights_q(t, l)) {
            *o = dequantize_weight(q);
        }
    }

    /// All expert ids of token `t`, `[moe_layers][top_k]` flattened.
    #[inline]
    pub fn token_experts(&self, t: usize) -> &[u16] {
        let n = self.shape.entries_per_token();
        &self.experts[t * n..(t + 1) * n]
    }

    /// All quantised weights of token `t`, aligned with [`Trace::token_experts`]; empty when
    /// the trace has no weights.
    #[inline]
    pub fn token_weights_q(&self, t: usize) -> &[u16] {
        let n = self.shape.entries_per_token();
        self.weights.get(t * n..(t + 1) * n).unwrap_or(&[])
    }

    /// The previous token of the same sequence, if any.
    #[inline]
    pub fn prev_in_seq(&self, t: usize) -> Option<usize> {
        (t > 0 && self.seq[t - 1] == self.seq[t]).then(|| t - 1)
    }

    /// The routing of the previous token of the same sequence, if any.
    #[inline]
    pub fn prev_experts(&self, t: usize) -> Option<&[u16]> {
        self.prev_in_seq(t).map(|p| self.token_experts(p))
    }

    /// Token ranges of the sequences, in storage order.
    pub fn sequences(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= self.seq.len() {
                return None;
            }
            let s = self.seq[start];
            let len = self.seq[start..].iter().take_while(|&&x| x == s).count();
            let r = start..start + len;
            start += len;
            Some(r)
        })
    }

    /// Number of sequences.
    pub fn num_sequences(&self) -> usize {
        self.sequences().count()
    }

    /// Bytes held by the trace's columns.
    pub fn memory_bytes(&self) -> usize {
        Trace::bytes_for(&self.shape, self.seq.len()).unwrap_or(usize::MAX)
    }

    /// Bytes a trace of `tokens` tokens of `shape` takes in memory (`None`: beyond `usize`).
    pub fn bytes_for(shape: &ModelShape, tokens: usize) -> Option<usize> {
        let entries = tokens.checked_mul(shape.entries_per_token())?;
        entries.checked_mul(4)?.checked_add(tokens.checked_mul(8)?)
    }

    /// A new trace holding tokens `range` (sequence ids kept).
    pub fn slice(&self, range: Range<usize>) -> Trace {
        let n = self.shape.entries_per_token();
        Trace {
            shape: self.shape,
            seq: self.seq[range.clone()].to_vec(),
            pos: self.pos[range.clone()].to_vec(),
            experts: self.experts[range.start * n..range.end * n].to_vec(),
            weights: if self.weights.is_empty() {
                Vec::new()
            } else {
                self.weights[range.start * n..range.end * n].to_vec()
            },
        }
    }

    /// The first `n` sequences (or all, if fewer).
    pub fn first_sequences(&self, n: usize) -> Trace {
        let end = self.sequences().take(n).last().map_or(0, |r| r.end);
        self.slice(0..end)
    }

    /// Concatenates traces of the same shape; sequence ids are renumbered to stay distinct.
    pub fn concat(traces: &[&Trace]) -> Result<Trace, String> {
        let first = traces.first().ok_or("no traces to concatenate")?;
        let mut out = Trace {
            shape: first.shape,
            seq: Vec::new(),
            pos: Vec::new(),
            experts: Vec::new(),
            weights: Vec::new(),
        };
        let mut next_seq = 0u32;
        let weighted = first.has_weights();
        for tr in traces {
            if tr.num_tokens() > 0 && tr.has_weights() != weighted {
                return Err(
                    "some traces carry gate weights and others do not; convert them alike".into(),
                );
            }
            if tr.shape != first.shape {
                return Err(format!(
                    "shape {:?} differs from {:?}",
                    tr.shape, first.shape
                ));
            }
            for r in tr.sequences() {
                out.seq.extend(std::iter::repeat_n(next_seq, r.len()));
                next_seq += 1;
            }
            out.pos.extend_from_slice(&tr.pos);
            out.experts.extend_from_slice(&tr.experts);
            out.weights.extend_from_slice(&tr.weights);
        }
        Ok(out)
    }
}
