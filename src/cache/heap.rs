//! Indexed min-heaps of slots by priority, one per budget group: the evictable slots of a policy
//! with keyed priorities, so a victim is found in O(1) and kept in O(log slots) per change.

use std::ops::Range;

use super::slots::NONE;

/// One binary min-heap per group over slot indices, ordered by `(prio[slot], slot)` (ties: the
/// lowest slot, as a scan would choose), with each slot's position for updates and removals.
/// Storage is sized at construction: no allocation afterwards.
#[derive(Debug, Clone)]
pub(crate) struct SlotHeaps {
    /// Heap storage per group.
    heaps: Vec<Vec<u32>>,
    /// Position of each slot in its group's heap, `NONE` when absent.
    pos: Vec<u32>,
    /// Group of each slot.
    group_of_slot: Vec<u32>,
}

#[inline]
fn less(prio: &[f64], a: u32, b: u32) -> bool {
    let (pa, pb) = (prio[a as usize], prio[b as usize]);
    pa < pb || (pa == pb && a < b)
}

impl SlotHeaps {
    /// Empty heaps for slot groups `groups` (covering `0..slots`).
    pub fn new(groups: &[Range<u32>], slots: usize) -> Self {
        let mut group_of_slot = vec![0; slots];
        for (g, r) in groups.iter().enumerate() {
            for s in r.clone() {
                group_of_slot[s as usize] = g as u32;
            }
        }
        SlotHeaps {
            heaps: groups.iter().map(|r| Vec::with_capacity(r.len())).collect(),
            pos: vec![NONE; slots],
            group_of_slot,
        }
    }

    /// The lowest-priority slot of `group`.
    #[inline]
    pub fn top(&self, group: usize) -> Option<u32> {
        self.heaps[group].first().copied()
    }

    /// Whether `slot` is in its heap.
    #[cfg(test)]
    pub fn contains(&self, slot: u32) -> bool {
        self.pos[slot as usize] != NONE
    }

    /// Puts `slot` in its heap, or moves it after its priority changed.
    #[inline]
    pub fn upsert(&mut self, slot: u32, prio: &[f64]) {
        let g = self.group_of_slot[slot as usize] as usize;
        let at = self.pos[slot as usize];
        if at == NONE {
            let i = self.heaps[g].len();
            self.heaps[g].push(slot);
            self.pos[slot as usize] = i as u32;
            self.sift_up(g, i, prio);
        } else {
            let i = self.sift_up(g, at as usize, prio);
            self.sift_down(g, i, prio);
        }
    }

    /// Takes `slot` out of its heap (no-op when absent).
    #[inline]
    pub fn remove(&mut self, slot: u32, prio: &[f64]) {
        let at = self.pos[slot as usize];
        if at == NONE {
            return;
        }
        let g = self.group_of_slot[slot as usize] as usize;
        let i = at as usize;
        let last = self.heaps[g]
            .pop()
            .expect("a slot with a position is in its heap");
        self.pos[slot as usize] = NONE;
        if i < self.heaps[g].len() {
            self.heaps[g][i] = last;
            self.pos[last as usize] = i as u32;
            let i = self.sift_up(g, i, prio);
            self.sift_down(g, i, prio);
        }
    }

    /// Moves the entry at `i` up while it beats its parent; returns where it ended.
    fn sift_up(&mut self, g: usize, mut i: usize, prio: &[f64]) -> usize {
        let h = &mut self.heaps[g];
        while i > 0 {
            let parent = (i - 1) / 2;
            if !less(prio, h[i], h[parent]) {
                break;
            }
            h.swap(i, parent);
            self.pos[h[i] as usize] = i as u32;
            self.pos[h[parent] as usize] = parent as u32;
            i = parent;
        }
        i
    }

    /// Moves the entry at `i` down while a child beats it.
    fn sift_down(&mut self, g: usize, mut i: usize, prio: &[f64]) {
        let h = &mut self.heaps[g];
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < h.len() && less(prio, h[l], h[best]) {
                best = l;
            }
            if r < h.len() && less(prio, h[r], h[best]) {
                best = r;
            }
            if best == i {
                return;
            }
            h.swap(i, best);
            self.pos[h[i] as usize] = i as u32;
            self.pos[h[best] as usize] = best as u32;
            i = best;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain scan of the slots marked present: same top after every operation.
        #[test]
        fn top_is_the_scan_minimum(ops in prop::collection::vec((0u32..12, 0u8..3, 0i32..5), 1..200)) {
            let groups = [0u32..5, 5..12];
            let mut h = SlotHeaps::new(&groups, 12);
            let mut prio = vec![0.0f64; 12];
            let mut present = [false; 12];
            for (slot, op, p) in ops {
                match op {
                    0 => { prio[slot as usize] = p as f64; h.upsert(slot, &prio); present[slot as usize] = true; }
                    1 => { h.remove(slot, &prio); present[slot as usize] = false; }
                    _ => if present[slot as usize] { prio[slot as usize] = p as f64; h.upsert(slot, &prio); },
                }
                for (g, r) in groups.iter().enumerate() {
                    let want = r.clone().filter(|&s| present[s as usize]).min_by(|&a, &b| {
                        prio[a as usize].total_cmp(&prio[b as usize]).then(a.cmp(&b))
                    });
                    prop_assert_eq!(h.top(g), want);
                }
                for s in 0..12 {
                    prop_assert_eq!(h.contains(s), present[s as usize]);
                }
            }
        }
    }
}
