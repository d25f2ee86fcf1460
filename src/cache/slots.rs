//! The slot pool of one device: slot states, which key each slot holds, pins and free lists.

use std::ops::Range;

use super::heap::SlotHeaps;
use super::{Budget, CacheConfig};

/// Marker for "no slot" / "no key".
pub(crate) const NONE: u32 = u32::MAX;

/// State of one expert slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Holds nothing.
    Free,
    /// A transfer into the slot is in flight; it cannot be evicted.
    Loading,
    /// Holds an expert ready to run.
    Resident,
}

/// Slots, their states and keys, grouped by budget (a group per layer, or one shared group).
#[derive(Debug, Clone)]
pub(crate) struct SlotPool {
    /// Slot range of each group.
    groups: Vec<Range<u32>>,
    /// Group of each key (a table: no division on the hot path).
    group_of_key: Vec<u32>,
    /// State per slot.
    pub state: Vec<SlotState>,
    /// Key held (or being loaded) per slot, `NONE` when free.
    pub key: Vec<u32>,
    /// Whether a running step needs the slot's expert (never evicted while set; change it with
    /// [`SlotPool::set_pinned`]).
    pinned: Vec<bool>,
    /// Loaded by a prefetch and not demanded since (for prefetch accuracy counters).
    pub prefetched: Vec<bool>,
    /// Priority of each slot's key as last read (kept only for policies with keyed priorities;
    /// change it with [`SlotPool::set_prio`]).
    prio: Vec<f64>,
    /// Slot per key, `NONE` when not cached.
    pub slot_of: Vec<u32>,
    /// Free slots per group, popped from the end (lowest index first).
    free: Vec<Vec<u32>>,
    /// Recency list per group, least recent first: occupied slots only.
    order: RecencyList,
    /// Keyed priorities: the evictable (resident, unpinned) slots of each group in a heap by
    /// `prio`, kept in step with every change of state, pin or priority.
    heaps: Option<SlotHeaps>,
}

impl SlotPool {
    /// An empty pool for `cfg` (checked by the caller); `keyed`: keep heaps of the evictable
    /// slots by priority (for [`SlotPool::lowest_victim`]).
    pub fn new(cfg: &CacheConfig, keyed: bool) -> Self {
        let (groups, group_of_layer): (Vec<Range<u32>>, Vec<u32>) = match cfg.budget {
            Budget::PerLayer(c) => (
                (0..cfg.layers)
                    .map(|l| (l * c) as u32..((l + 1) * c) as u32)
                    .collect(),
                (0..cfg.layers as u32).collect(),
            ),
            Budget::Shared(c) => (std::iter::once(0..c as u32).collect(), vec![0; cfg.layers]),
        };
        let n = cfg.total_slots();
        let groups_len = groups.len();
        let free = groups.iter().map(|r| r.clone().rev().collect()).collect();
        let group_of_key = (0..cfg.keys())
            .map(|k| group_of_layer[k / cfg.experts])
            .collect();
        let heaps = keyed.then(|| SlotHeaps::new(&groups, n));
        SlotPool {
            heaps,
            groups,
            group_of_key,
            state: vec![SlotState::Free; n],
            key: vec![NONE; n],
            pinned: vec![false; n],
            prefetched: vec![false; n],
            prio: vec![0.0; n],
            slot_of: vec![NONE; cfg.keys()],
            free,
            order: RecencyList::new(n, groups_len),
        }
    }

    /// The budget group a key's layer draws from.
    #[inline]
    pub fn group_of_key(&self, key: u32) -> usize {
        self.group_of_key[key as usize] as usize
    }

    /// Takes a free slot of `group`, if any.
    #[inline]
    pub fn take_free(&mut self, group: usize) -> Option<u32> {
        self.free[group].pop()
    }

    /// Among the resident, unpinned slots of `group`, the one whose key has the lowest
    /// `priority(slot, key)` (ties: lowest slot index; priorities must be finite). Branch-light: every
    /// occupied slot is ranked and the ineligible ones are masked to +inf.
    #[inline]
    pub fn victim(&self, group: usize, mut priority: impl FnMut(usize, u32) -> f64) -> Option<u32> {
        let r = self.groups[group].clone();
        let (lo, hi) = (r.start as usize, r.end as usize);
        let mut best = NONE;
        let mut best_p = f64::INFINITY;
        let slots = self.state[lo..hi]
            .iter()
            .zip(&self.pinned[lo..hi])
            .zip(&self.key[lo..hi]);
        for (i, ((&st, &pinned), &key)) in slots.enumerate() {
            if key == NONE {
                continue;
            }
            let p = priority(lo + i, key);
            let eligible = (st == SlotState::Resident) & !pinned;
            let p = if eligible { p } else { f64::INFINITY };
            if p < best_p {
                best = (lo + i) as u32;
                best_p = p;
            }
        }
        (best != NONE).then_some(best)
    }

    /// Among the resident, unpinned slots of `group`, the one of lowest remembered priority
    /// (ties: lowest slot index), from the group's heap in O(1). Needs a keyed pool.
    #[inline]
    pub fn lowest_victim(&self, group: usize) -> Option<u32> {
        self.heaps
            .as_ref()
            .expect("lowest_victim needs a pool built with keyed priorities")
            .top(group)
    }

    /// Whether the pool keeps heaps of the evictable slots.
    #[inline]
    pub fn has_heaps(&self) -> bool {
        self.heaps.is_some()
    }

    /// The remembered priority of `slot`'s key.
    #[inline]
    pub fn prio(&self, slot: usize) -> f64 {
        self.prio[slot]
    }

    /// Whether `slot`'s expert is pinned by a running step.
    #[inline]
    pub fn is_pinned(&self, slot: u32) -> bool {
        self.pinned[slot as usize]
    }

    /// Pins or unpins `slot`.
    #[inline]
    pub fn set_pinned(&mut self, slot: u32, on: bool) {
        self.pinned[slot as usize] = on;
        self.refresh(slot);
    }

    /// Remembers the priority of `slot`'s key.
    #[inline]
    pub fn set_prio(&mut self, slot: u32, p: f64) {
        self.prio[slot as usize] = p;
        self.refresh(slot);
    }

    /// The transfer into `slot` finished.
    #[inline]
    pub fn set_resident(&mut self, slot: u32) {
        self.state[slot as usize] = SlotState::Resident;
        self.refresh(slot);
    }

    /// Puts `slot` in its group's heap when it is evictable, else takes it out (pools with
    /// heaps only; the check is inlined, the heap work is not, to keep the other policies'
    /// step loop small).
    #[inline]
    fn refresh(&mut self, slot: u32) {
        if self.heaps.is_some() {
            self.refresh_heap(slot);
        }
    }

    #[inline(never)]
    fn refresh_heap(&mut self, slot: u32) {
        let Some(h) = self.heaps.as_mut() else {
            return;
        };
        let i = slot as usize;
        if self.key[i] != NONE && self.state[i] == SlotState::Resident && !self.pinned[i] {
            h.upsert(slot, &self.prio);
        } else {
            h.remove(slot, &self.prio);
        }
    }

    /// Among the resident, unpinned slots of `group`, the least recently touched (see
    /// [`SlotPool::touch`]): walks the group's recency list from its head, so O(1) unless the
    /// oldest slots are pinned or in flight.
    #[inline]
    pub fn oldest_victim(&self, group: usize) -> Option<u32> {
        self.order.iter(group).find(|&s| {
            let i = s as usize;
            self.state[i] == SlotState::Resident && !self.pinned[i]
        })
    }

    /// Makes `slot` (occupied) the most recently touched of its group.
    #[inline]
    pub fn touch(&mut self, slot: u32) {
        let group = self.group_of_key(self.key[slot as usize]);
        self.order.move_to_back(slot, group);
    }

    /// Puts `key` into `slot` in the loading state (the slot must be free or just emptied); it
    /// becomes the most recently touched slot of its group.
    #[inline]
    pub fn start_load(&mut self, slot: u32, key: u32, prefetched: bool) {
        let i = slot as usize;
        self.order.push_back(slot, self.group_of_key(key));
        self.state[i] = SlotState::Loading;
        self.key[i] = key;
        self.prefetched[i] = prefetched;
        self.slot_of[key as usize] = slot;
    }

    /// Empties a resident slot; returns the key it held.
    #[inline]
    pub fn evict(&mut self, slot: u32) -> u32 {
        let i = slot as usize;
        let key = self.key[i];
        self.order.unlink(slot);
        self.slot_of[key as usize] = NONE;
        self.key[i] = NONE;
        self.state[i] = SlotState::Free;
        self.refresh(slot);
        key
    }

    /// Number of slots in use (loading or resident).
    pub fn occupied(&self) -> usize {
        self.state.iter().filter(|&&s| s != SlotState::Free).count()
    }
}

/// Intrusive doubly linked lists over slot indices, one per budget group, with a sentinel node
/// per group (index `slots + group`): O(1) push, unlink and move, no allocation after `new`.
#[derive(Debug, Clone)]
struct RecencyList {
    /// Next node of each node (slots, then one sentinel per group).
    next: Vec<u32>,
    /// Previous node of each node.
    prev: Vec<u32>,
    /// Number of slots (sentinels follow).
    slots: u32,
}

impl RecencyList {
    fn new(slots: usize, groups: usize) -> Self {
        let sentinels = (slots..slots + groups).map(|i| i as u32);
        let next: Vec<u32> = (0..slots).map(|_| NONE).chain(sentinels.clone()).collect();
        RecencyList {
            prev: next.clone(),
            next,
            slots: slots as u32,
        }
    }

    #[inline]
    fn push_back(&mut self, node: u32, group: usize) {
        let head = self.slots + group as u32;
        let last = self.prev[head as usize];
        self.next[last as usize] = node;
        self.prev[node as usize] = last;
        self.next[node as usize] = head;
        self.prev[head as usize] = node;
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
        self.next[node as usize] = NONE;
        self.prev[node as usize] = NONE;
    }

    /// Moves `node`, linked in the list of `group`, to its back.
    #[inline]
    fn move_to_back(&mut self, node: u32, group: usize) {
        let head = self.slots + group as u32;
        if self.next[node as usize] == head {
            return;
        }
        self.unlink(node);
        self.push_back(node, group);
    }

    /// Slots of `group`, least recent first.
    #[inline]
    fn iter(&self, group: usize) -> impl Iterator<Item = u32> + '_ {
        let head = self.slots + group as u32;
        let mut cur = self.next[head as usize];
        std::iter::from_fn(move || {
            (cur != head).then(|| {
                let s = cur;
                cur = self.next[s as usize];
                s
            })
        })
    }
}
