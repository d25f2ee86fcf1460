//! Kernighan-Lin passes over one layer: take the best swap of two unlocked slots on different
//! GPUs even when it makes things worse, lock both, repeat; then keep the best prefix of the
//! sequence. Unlike first-improvement swaps this climbs out of local minima one swap deep.

use crate::layer::{LayerProblem, SwapState};

impl LayerProblem<'_> {
    /// At most `passes` Kernighan-Lin passes of at most `max_moves` swaps each, stopping at the
    /// first pass that finds nothing better. Returns whether `phy` changed.
    pub fn kernighan_lin(&self, phy: &mut [u16], max_moves: usize, passes: usize) -> bool {
        let (n, s) = (phy.len(), self.sc.slots);
        let bal = self.sc.weights.balance;
        let mut changed = false;
        let mut work = phy.to_vec();
        let mut locked = vec![false; n];
        for _ in 0..passes {
            work.copy_from_slice(phy);
            locked.fill(false);
            let mut st = SwapState::new(self, &work);
            let start = self.value(&work);
            let (mut cum, mut best, mut best_len) = (0.0f64, 0.0f64, 0usize);
            let mut seq: Vec<(usize, usize)> = Vec::with_capacity(max_moves);
            for _ in 0..max_moves.min(n / 2) {
                let cur_max = st.max();
                let mut pick: Option<(usize, usize, f64)> = None;
                for p in 0..n {
                    if locked[p] {
                        continue;
                    }
                    for q in (p + 1)..n {
                        let (gp, gq) = (p / s, q / s);
                        let (a, b) = (work[p] as usize, work[q] as usize);
                        if locked[q] || gp == gq || a == b {
                            continue;
                        }
                        let (dcomm, new_max, _) = st.delta(self, a, b, gp, gq);
                        let d = dcomm + bal * (new_max - cur_max);
                        if pick.is_none_or(|(_, _, v)| d < v) {
                            pick = Some((p, q, d));
                        }
                    }
                }
                let Some((p, q, d)) = pick else { break };
                let (a, b) = (work[p] as usize, work[q] as usize);
                st.apply(self, a, b, p / s, q / s);
                work.swap(p, q);
                locked[p] = true;
                locked[q] = true;
                seq.push((p, q));
                cum += d;
                if cum < best {
                    best = cum;
                    best_len = seq.len();
                }
            }
            if best >= -1e-12 * (1.0 + start.abs()) {
                break;
            }
            for &(p, q) in &seq[..best_len] {
                phy.swap(p, q);
            }
            debug_assert!(self.value(phy) <= start + 1e-9);
            changed = true;
        }
        changed
    }
}
