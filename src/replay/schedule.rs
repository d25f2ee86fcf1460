//! Continuous batching and token scheduling (ExpertFlow, Symbolic-MoE): when a running sequence
//! finishes, admit the waiting sequence whose routing overlaps the running batch most, so a
//! batch activates fewer distinct experts. Fairness: the oldest waiting sequence is admitted
//! once it has been passed over `2 * size` times, and only the oldest `4 * size` are considered.
//! A waiting sequence is compared by its first `PREFIX` tokens (its prompt, known at admission).

use std::collections::VecDeque;
use std::ops::Range;

use crate::trace::Trace;

/// Tokens of a waiting sequence's prefix compared with the running batch.
const PREFIX: usize = 8;

/// Runs continuous batching of `size` sequences over `trace`, calling `emit` with each step's
/// tokens (one per running sequence). With `schedule`, admission is by routing overlap.
pub fn continuous(trace: &Trace, size: usize, schedule: bool, emit: &mut dyn FnMut(&[u32])) {
    let shape = *trace.shape();
    let seqs: Vec<Range<usize>> = trace.sequences().collect();
    let mut waiting: VecDeque<usize> = (0..seqs.len()).collect();
    let mut running: Vec<(usize, usize)> = Vec::with_capacity(size);
    let mut marks = vec![0u32; shape.moe_layers * shape.experts];
    let mut stamp = 0u32;
    let mut head_skips = 0usize;
    let mut toks: Vec<u32> = Vec::with_capacity(size);
    loop {
        while running.len() < size && !waiting.is_empty() {
            let pick = if !schedule || running.is_empty() || head_skips >= 2 * size {
                0
            } else {
                stamp += 1;
                for &(cur, _) in &running {
                    let ex = trace.token_experts(cur);
                    for (i, &e) in ex.iter().enumerate() {
                        let l = i / shape.top_k;
                        marks[l * shape.experts + e as usize] = stamp;
                    }
                }
                let mut best = (0usize, 0usize);
                for (i, &s) in waiting.iter().take(4 * size).enumerate() {
                    // The prompt prefix a scheduler sees before admitting: first PREFIX tokens.
                    let r = &seqs[s];
                    let overlap: usize = (r.start..r.end.min(r.start + PREFIX))
                        .map(|t| {
                            trace
                                .token_experts(t)
                                .iter()
                                .enumerate()
                                .filter(|&(j, &e)| {
                                    marks[(j / shape.top_k) * shape.experts + e as usize] == stamp
                                })
                                .count()
                        })
                        .sum();
                    if i == 0 || overlap > best.1 {
                        best = (i, overlap);
                    }
                }
                best.0
            };
            head_skips = if pick == 0 { 0 } else { head_skips + 1 };
            let s = waiting.remove(pick).expect("index in range");
            running.push((seqs[s].start, seqs[s].end));
        }
        if running.is_empty() {
            break;
        }
        toks.clear();
        toks.extend(running.iter().map(|&(c, _)| c as u32));
        emit(&toks);
        for r in running.iter_mut() {
            r.0 += 1;
        }
        running.retain(|&(c, e)| c < e);
    }
}
