//! Builds a [`Trace`] token by token, validating every (token, layer) top-k.

use super::{Defect, ModelShape, Trace, quantize_weight};

/// Appends validated tokens to a trace under construction.
#[derive(Debug)]
pub struct TraceBuilder {
    trace: Trace,
    /// Scratch for sorting one top-k by weight (no per-token allocation).
    order: Vec<(u16, u16)>,
    /// Sequence ids already closed (a sequence may not resume after another one started).
    closed: std::collections::HashSet<u32>,
    /// The last token pushed, `(seq, pos)` (kept across [`TraceBuilder::take_chunk`]).
    last: Option<(u32, u32)>,
}

impl TraceBuilder {
    /// A builder for `shape`, with room reserved for `tokens` tokens.
    pub fn new(shape: ModelShape, tokens: usize) -> Self {
        let n = tokens * shape.entries_per_token();
        TraceBuilder {
            trace: Trace {
                shape,
                seq: Vec::with_capacity(tokens),
                pos: Vec::with_capacity(tokens),
                experts: Vec::with_capacity(n),
                weights: Vec::with_capacity(n),
            },
            order: Vec::with_capacity(shape.top_k),
            closed: Default::default(),
            last: None,
        }
    }

    /// The shape being built.
    pub fn shape(&self) -> &ModelShape {
        &self.trace.shape
    }

    /// Tokens pushed so far.
    pub fn len(&self) -> usize {
        self.trace.seq.len()
    }

    /// Whether no token was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.trace.seq.is_empty()
    }

    /// Checks one top-k: ids in range and distinct, weights finite and in [0, 1].
    /// On error returns the offending index within the top-k and the problem.
    pub fn check_topk(
        shape: &ModelShape,
        experts: &[i64],
        weights: &[f64],
    ) -> Result<(), (usize, Defect)> {
        Self::check_ids(shape, experts)?;
        if weights.len() != shape.top_k {
            return Err((
                weights.len().min(shape.top_k),
                Defect::Truncated {
                    expected: format!("{} weights", shape.top_k),
                    found: format!("{}", weights.len()),
                },
            ));
        }
        for (j, &w) in weights.iter().enumerate() {
            if !w.is_finite() {
                return Err((j, Defect::NonFiniteWeight { value: w }));
            }
            if !(0.0..=1.0).contains(&w) {
                return Err((j, Defect::WeightOutOfRange { value: w }));
            }
        }
        Ok(())
    }

    /// Appends one token: `experts`/`weights` are `[moe_layers][top_k]` flattened and must have
    /// passed [`TraceBuilder::check_topk`] per layer. Each layer's top-k is stored by descending
    /// weight. Sequence contiguity is the caller's to check (see [`TraceBuilder::check_order`]).
    pub fn push_token(&mut self, seq: u32, pos: u32, experts: &[u16], weights: &[f32]) {
        let k = self.trace.shape.top_k;
        debug_assert_eq!(experts.len(), self.trace.shape.entries_per_token());
        self.note_seq(seq, pos);
        self.trace.seq.push(seq);
        self.trace.pos.push(pos);
        for (es, ws) in experts.chunks_exact(k).zip(weights.chunks_exact(k)) {
            self.order.clear();
            self.order
                .extend(es.iter().zip(ws).map(|(&e, &w)| (e, quantize_weight(w))));
            self.order.sort_by_key(|p| std::cmp::Reverse(p.1));
            self.trace.experts.extend(self.order.iter().map(|p| p.0));
            self.trace.weights.extend(self.order.iter().map(|p| p.1));
        }
    }

    /// Appends one token without gate weights (engine-recorded traces): `experts` is
    /// `[moe_layers][top_k]` flattened, each layer checked by [`TraceBuilder::check_ids`], kept in
    /// the order given. A trace is built either all with weights or all without.
    pub fn push_token_unweighted(&mut self, seq: u32, pos: u32, experts: &[u16]) {
        debug_assert!(
            self.trace.weights.is_empty(),
            "mixed weighted and unweighted tokens"
        );
        debug_assert_eq!(experts.len(), self.trace.shape.entries_per_token());
        self.note_seq(seq, pos);
        self.trace.seq.push(seq);
        self.trace.pos.push(pos);
        self.trace.experts.extend_from_slice(experts);
    }

    /// Checks one top-k of expert ids alone: as many as `top_k`, in range and distinct. On
    /// error returns the offending index within the top-k and the problem.
    pub fn check_ids(shape: &ModelShape, experts: &[i64]) -> Result<(), (usize, Defect)> {
        if experts.len() != shape.top_k {
            return Err((
                experts.len().min(shape.top_k),
                Defect::Truncated {
                    expected: format!("{} experts", shape.top_k),
                    found: format!("{}", experts.len()),
                },
            ));
        }
        for (j, &e) in experts.iter().enumerate() {
            if e < 0 || e as usize >= shape.experts {
                return Err((
                    j,
                    Defect::ExpertOutOfRange {
                        id: e,
                        experts: shape.experts,
                    },
                ));
            }
            if experts[..j].contains(&e) {
                return Err((j, Defect::RepeatedExpert { id: e as u16 }));
            }
        }
        Ok(())
    }

    /// Appends one token whose layers are already ordered and quantised (used by fast paths).
    pub fn push_token_q(&mut self, seq: u32, pos: u32, experts: &[u16], weights_q: &[u16]) {
        self.note_seq(seq, pos);
        self.trace.seq.push(seq);
        self.trace.pos.push(pos);
        self.trace.experts.extend_from_slice(experts);
        self.trace.weights.extend_from_slice(weights_q);
    }

    /// Whether a token `(seq, pos)` may follow the last one pushed: a sequence's tokens must be
    /// contiguous, at consecutive positions. Returns the problem if not.
    pub fn check_order(&self, seq: u32, pos: u32) -> Result<(), Defect> {
        let Some((last_seq, last_pos)) = self.last else {
            return Ok(());
        };
        if seq == last_seq {
            if Some(pos) != last_pos.checked_add(1) {
                return Err(Defect::Other(format!(
                    "position {pos} does not follow position {last_pos} of sequence {seq} \
                     (a sequence's positions are consecutive)"
                )));
            }
        } else if self.closed.contains(&seq) {
            return Err(Defect::Other(format!(
                "sequence {seq} resumes after other sequences; a sequence's tokens must be contiguous"
            )));
        }
        Ok(())
    }

    fn note_seq(&mut self, seq: u32, pos: u32) {
        if let Some((last, _)) = self.last
            && last != seq
        {
            self.closed.insert(last);
        }
        self.last = Some((seq, pos));
    }

    /// Hands over the tokens pushed so far as a trace and starts an empty one; the order checks
    /// go on across chunks (a streaming reader's memory stays bounded by the chunk).
    pub fn take_chunk(&mut self) -> Trace {
        let shape = self.trace.shape;
        std::mem::replace(
            &mut self.trace,
            Trace {
                shape,
                seq: Vec::new(),
                pos: Vec::new(),
                experts: Vec::new(),
                weights: Vec::new(),
            },
        )
    }

    /// Overwrites entry `(t, l)` in place (layer-major importers fill a pre-sized trace).
    pub(super) fn set_entry(&mut self, t: usize, l: usize, experts: &[u16], weights: &[f32]) {
        let k = self.trace.shape.top_k;
        let o = (t * self.trace.shape.moe_layers + l) * k;
        self.order.clear();
        self.order.extend(
            experts
                .iter()
                .zip(weights)
                .map(|(&e, &w)| (e, quantize_weight(w))),
        );
        self.order.sort_by_key(|p| std::cmp::Reverse(p.1));
        for (j, p) in self.order.iter().enumerate() {
            self.trace.experts[o + j] = p.0;
            self.trace.weights[o + j] = p.1;
        }
    }

    /// Pre-sizes the trace to `tokens` tokens with the given sequence ids and positions.
    pub(super) fn presize(&mut self, seq: Vec<u32>, pos: Vec<u32>) {
        let n = seq.len() * self.trace.shape.entries_per_token();
        self.trace.seq = seq;
        self.trace.pos = pos;
        self.trace.experts = vec![0; n];
        self.trace.weights = vec![0; n];
    }

    /// The finished trace.
    pub fn finish(self) -> Trace {
        self.trace
    }
}
