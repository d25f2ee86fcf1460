//! The prefetch queue: requested loads waiting for the link, highest priority first, cancellable.

/// Puts the `n` best-scored experts of `order` (a permutation of a layer's expert ids) first,
/// best first; ties go to the lower id. `n` must be at most `order.len()`.
pub(crate) fn best_first(order: &mut [u16], scores: &[f32], n: usize) {
    let by_score = |a: &u16, b: &u16| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if n == 0 {
        return;
    }
    if n < order.len() {
        order.select_nth_unstable_by(n - 1, by_score);
    }
    order[..n].sort_unstable_by(by_score);
}

/// A small priority queue of keys (linear scans: it holds a few dozen entries at most).
#[derive(Debug, Clone)]
pub struct PrefetchQueue {
    /// `(key, priority)` of queued requests, unordered.
    items: Vec<(u32, f32)>,
    /// Most requests kept; a full queue drops its lowest-priority request.
    max_len: usize,
}

impl PrefetchQueue {
    /// A queue holding at most `max_len` requests (at least 1).
    pub fn new(max_len: usize) -> Self {
        let max_len = max_len.max(1);
        PrefetchQueue {
            items: Vec::with_capacity(max_len + 1),
            max_len,
        }
    }

    /// Queues `key` (or raises its priority if queued). Returns the key dropped to make room.
    pub fn push(&mut self, key: u32, priority: f32) -> Option<u32> {
        if let Some(it) = self.items.iter_mut().find(|it| it.0 == key) {
            it.1 = it.1.max(priority);
            return None;
        }
        self.items.push((key, priority));
        if self.items.len() > self.max_len {
            let i = self.lowest();
            return Some(self.items.swap_remove(i).0);
        }
        None
    }

    /// Removes and returns the highest-priority request (ties: earliest key id).
    pub fn pop(&mut self) -> Option<(u32, f32)> {
        if self.items.is_empty() {
            return None;
        }
        let mut best = 0;
        for (i, it) in self.items.iter().enumerate() {
            let b = self.items[best];
            if it.1 > b.1 || (it.1 == b.1 && it.0 < b.0) {
                best = i;
            }
        }
        Some(self.items.swap_remove(best))
    }

    fn lowest(&self) -> usize {
        let mut worst = 0;
        for (i, it) in self.items.iter().enumerate() {
            let w = self.items[worst];
            if it.1 < w.1 || (it.1 == w.1 && it.0 > w.0) {
                worst = i;
            }
        }
        worst
    }

    /// Cancels every request whose key satisfies `pred`; returns how many.
    pub fn cancel_where(&mut self, mut pred: impl FnMut(u32) -> bool) -> usize {
        let before = self.items.len();
        self.items.retain(|it| !pred(it.0));
        before - self.items.len()
    }

    /// Whether `key` is queued.
    pub fn contains(&self, key: u32) -> bool {
        self.items.iter().any(|it| it.0 == key)
    }

    /// Requests queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops every request.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}
