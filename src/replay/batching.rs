//! How a trace becomes steps: one token, B consecutive tokens of a sequence, or B concurrent
//! sequences with continuous batching (optionally with token scheduling, see [`super::schedule`]).

use serde::Serialize;

use crate::trace::Trace;

/// How tokens are grouped into steps (one forward pass each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Batching {
    /// One token per step, tokens in trace order.
    Single,
    /// `size` consecutive tokens of one sequence per step (chunked prefill); a step never
    /// crosses a sequence boundary.
    Consecutive {
        /// Tokens per step.
        size: usize,
    },
    /// `size` sequences decode together, one token each per step; a finished sequence's place
    /// goes to the next waiting one (continuous batching).
    Concurrent {
        /// Sequences running at once.
        size: usize,
        /// Admit the waiting sequence whose routing overlaps the running ones most
        /// (token scheduling), instead of first-come first-served.
        schedule: bool,
    },
}

/// Steps as lists of token indices, flattened: step `i` is `tokens[bounds[i]..bounds[i + 1]]`.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    /// Token indices of all steps, concatenated.
    pub tokens: Vec<u32>,
    /// Start offset of each step in `tokens`, plus the end.
    pub bounds: Vec<u32>,
}

impl Steps {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens of step `i`.
    #[inline]
    pub fn step(&self, i: usize) -> &[u32] {
        &self.tokens[self.bounds[i] as usize..self.bounds[i + 1] as usize]
    }

    fn push(&mut self, toks: impl IntoIterator<Item = u32>) {
        if self.bounds.is_empty() {
            self.bounds.push(0);
        }
        self.tokens.extend(toks);
        self.bounds.push(self.tokens.len() as u32);
    }
}

/// Groups the tokens of `trace` into steps.
pub fn build_steps(trace: &Trace, batching: Batching) -> Steps {
    let mut steps = Steps::default();
    match batching {
        Batching::Single => {
            for t in 0..trace.num_tokens() as u32 {
                steps.push([t]);
            }
        }
        Batching::Consecutive { size } => {
            let size = size.max(1);
            for r in trace.sequences() {
                let mut s = r.start;
                while s < r.end {
                    let e = (s + size).min(r.end);
                    steps.push(s as u32..e as u32);
                    s = e;
                }
            }
        }
        Batching::Concurrent { size, schedule } => {
            super::schedule::continuous(trace, size.max(1), schedule, &mut |toks| {
                steps.push(toks.iter().copied())
            });
        }
    }
    if steps.bounds.is_empty() {
        steps.bounds.push(0);
    }
    steps
}

/// The distinct experts a step demands at `layer`: its tokens' top-k in token order, highest
/// weight first, first occurrence kept. `stamp`/`marks` dedup without allocating (`marks` has
/// one entry per expert; `stamp` must differ from every value in it and is advanced).
#[inline]
pub fn step_experts(
    trace: &Trace,
    tokens: &[u32],
    layer: usize,
    marks: &mut [u32],
    stamp: &mut u32,
    out: &mut Vec<u16>,
) {
    out.clear();
    if tokens.len() == 1 {
        out.extend_from_slice(trace.experts(tokens[0] as usize, layer));
        return;
    }
    *stamp = stamp.wrapping_add(1);
    if *stamp == 0 {
        marks.fill(0);
        *stamp = 1;
    }
    for &t in tokens {
        for &e in trace.experts(t as usize, layer) {
            if marks[e as usize] != *stamp {
                marks[e as usize] = *stamp;
                out.push(e);
            }
        }
    }
}

/// The demand sequence a cache sees for `steps` (keys `layer * experts + expert`, per step and
/// layer the distinct experts of [`step_experts`]): what [`crate::cache::NextUse`] indexes.
pub fn demand_keys(trace: &Trace, steps: &Steps) -> Vec<u32> {
    let shape = trace.shape();
    let mut marks = vec![0u32; shape.experts];
    let mut stamp = 0u32;
    let mut buf = Vec::new();
    let mut keys = Vec::with_capacity(steps.tokens.len() * shape.entries_per_token());
    for i in 0..steps.len() {
        for l in 0..shape.moe_layers {
            step_experts(trace, steps.step(i), l, &mut marks, &mut stamp, &mut buf);
            keys.extend(buf.iter().map(|&e| (l * shape.experts + e as usize) as u32));
        }
    }
    keys
}
