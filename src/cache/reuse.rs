//! [`Reuse`]: an online estimate, per key, of the chance that its expert is demanded at the next
//! visit of its layer, from its age and its recent demand count (a learned LRU/LFU blend: the
//! history-based half of `predictive`'s approximation of Belady).
//!
//! Each key is described by a cell: its age (visits of its layer since its last demand, in
//! buckets) and how many of the last [`WINDOW`] visits demanded it. A table counts, per cell, how
//! often a key of that cell was demanded at the next visit; it is learned online from the stream
//! replayed so far (no future, no training data), one update per expert per visit of a layer.

/// Visits of a layer counted in a key's recent-demand window.
pub const WINDOW: u32 = 16;
/// Age buckets (see [`age_bucket`]); the last one is "never demanded".
const AGES: usize = 14;
/// Long-term frequency buckets (see [`freq_bucket`]).
const FREQS: usize = 8;
/// Half-life of the long-term frequency, in visits of a layer.
const FREQ_HALF_LIFE: f64 = 256.0;
/// Transition-chance buckets (see [`trans_bucket`]).
const TRANS: usize = 7;
/// Cells: age bucket x demands in the window (0..=WINDOW) x long-term frequency bucket x
/// transition-chance bucket.
const CELLS: usize = AGES * (WINDOW as usize + 1) * FREQS * TRANS;
/// Prior pseudo-counts of a cell (demanded, seen): an unseen cell ranks like a rarely used key.
const PRIOR: (f64, f64) = (0.1, 1.0);

/// Bucket of an age in visits (1 = demanded at the previous visit; 0 = demanded at this one).
#[inline]
fn age_bucket(age: u64) -> usize {
    match age {
        0..=6 => age as usize,
        7..=8 => 7,
        9..=12 => 8,
        13..=16 => 9,
        17..=32 => 10,
        33..=64 => 11,
        65..=256 => 12,
        _ => 13,
    }
}

/// Bucket of a long-term demand frequency (chance per visit).
#[inline]
fn freq_bucket(f: f64) -> usize {
    const EDGES: [f64; FREQS - 1] = [0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.25];
    EDGES.iter().take_while(|&&e| f >= e).count()
}

/// Bucket of a transition chance (the chance a key follows the experts of the layer's last
/// visit, from the counts seen so far).
#[inline]
fn trans_bucket(p: f64) -> usize {
    const EDGES: [f64; TRANS - 1] = [0.02, 0.05, 0.1, 0.15, 0.25, 0.4];
    EDGES.iter().take_while(|&&e| p >= e).count()
}

/// Online reuse estimate over `layers x experts` keys.
#[derive(Debug, Clone)]
pub(crate) struct Reuse {
    /// Experts per layer.
    experts: usize,
    /// Visits (steps) of each layer so far, the running one included.
    visits: Vec<u64>,
    /// Per key, the visit of its last demand (0 = never; visits count from 1).
    last: Vec<u64>,
    /// Per key, bit `i` set when it was demanded at visit `seen_at - i`.
    recent: Vec<u32>,
    /// Per key, the visit `recent` is aligned to.
    seen_at: Vec<u64>,
    /// Per key, its long-term demand frequency as of visit `seen_at`.
    freq: Vec<f64>,
    /// Decay of `freq` per visit.
    gamma: f64,
    /// Per layer, `[from][to]`: visits demanding `to` right after a visit that demanded `from`.
    trans: Vec<f32>,
    /// Per key: visits of its layer that demanded it and were followed by another visit.
    from: Vec<f32>,
    /// Per layer, the experts demanded at its latest visit (the running one, if any).
    latest: Vec<Vec<u16>>,
    /// Per layer, the experts demanded at the visit before the latest.
    before: Vec<Vec<u16>>,
    /// Per cell, (demanded at the next visit, observations), prior included.
    table: Vec<(f64, f64)>,
    /// Per key, its cell when its layer's running visit started (what the table learns from).
    cell_at_step: Vec<u16>,
}

impl Reuse {
    /// An estimator over `layers x experts` keys, every cell at its prior.
    pub fn new(layers: usize, experts: usize) -> Self {
        let keys = layers * experts;
        Reuse {
            experts,
            visits: vec![0; layers],
            last: vec![0; keys],
            recent: vec![0; keys],
            seen_at: vec![0; keys],
            freq: vec![0.0; keys],
            gamma: 0.5f64.powf(1.0 / FREQ_HALF_LIFE),
            trans: vec![0.0; layers * experts * experts],
            from: vec![0.0; keys],
            latest: vec![Vec::new(); layers],
            before: vec![Vec::new(); layers],
            table: vec![PRIOR; CELLS],
            cell_at_step: vec![0; keys],
        }
    }

    /// The demand bits of `key` aligned to visit `v` (bit 0: demanded at `v`).
    #[inline]
    fn bits_at(&self, k: usize, v: u64) -> u32 {
        let shift = v - self.seen_at[k];
        if shift >= 32 {
            0
        } else {
            self.recent[k] << shift
        }
    }

    /// Mean over the experts of `set` (one visit of the layer of `key`) of the chance seen so
    /// far that `key` is demanded at the visit after one demanding that expert.
    #[inline]
    fn follow_chance(&self, key: usize, set: &[u16]) -> f64 {
        let (l, e) = (key / self.experts, key % self.experts);
        let (mut sum, mut n) = (0.0f64, 0u32);
        for &f in set {
            let from = self.from[l * self.experts + f as usize];
            if from > 0.0 {
                let row = (l * self.experts + f as usize) * self.experts;
                sum += (self.trans[row + e] / from) as f64;
                n += 1;
            }
        }
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    /// The cell of `key` as seen from visit `v` of its layer (only demands before `v` count),
    /// `set` being the experts of visit `v - 1`.
    #[inline]
    fn cell(&self, key: usize, v: u64, set: &[u16]) -> usize {
        let last = self.last[key];
        let age = if last == 0 { u64::MAX } else { v - last };
        let window = (self.bits_at(key, v) >> 1) & ((1 << WINDOW) - 1);
        let f = self.freq[key] * self.gamma.powi((v - self.seen_at[key]).min(1 << 20) as i32);
        let c = (age_bucket(age) * (WINDOW as usize + 1) + window.count_ones() as usize) * FREQS
            + freq_bucket(f);
        c * TRANS + trans_bucket(self.follow_chance(key, set))
    }

    /// Estimated chance that `key` is demanded at the next visit of its layer that has not
    /// started (the running one, if its layer is mid-step, counts as seen).
    #[inline]
    pub fn chance(&self, key: u32) -> f64 {
        let k = key as usize;
        let l = k / self.experts;
        let v = self.visits[l] + 1;
        let (yes, all) = self.table[self.cell(k, v, &self.latest[l])];
        yes / all
    }

    /// Whether `key` was demanded at the running (or last) visit of its layer.
    #[inline]
    pub fn demanded_now(&self, key: u32) -> bool {
        let k = key as usize;
        self.last[k] != 0 && self.last[k] == self.visits[k / self.experts]
    }

    /// A visit of `layer` starts: remember each key's cell, to learn from once the visit ends.
    pub fn on_step(&mut self, layer: usize) {
        self.visits[layer] += 1;
        let v = self.visits[layer];
        std::mem::swap(&mut self.latest[layer], &mut self.before[layer]);
        self.latest[layer].clear();
        for k in layer * self.experts..(layer + 1) * self.experts {
            self.cell_at_step[k] = self.cell(k, v, &self.before[layer]) as u16;
        }
    }

    /// `key` is demanded at the running visit of its layer.
    #[inline]
    pub fn on_demand(&mut self, key: u32) {
        let k = key as usize;
        let v = self.visits[k / self.experts];
        self.recent[k] = self.bits_at(k, v) | 1;
        let f = self.freq[k] * self.gamma.powi((v - self.seen_at[k]).min(1 << 20) as i32);
        self.freq[k] = f + (1.0 - self.gamma);
        self.seen_at[k] = v;
        self.last[k] = v;
        self.latest[k / self.experts].push((k % self.experts) as u16);
    }

    /// The running visit of `layer` ended: each of its keys seen before teaches its cell
    /// whether it was demanded.
    pub fn on_release(&mut self, layer: usize) {
        let v = self.visits[layer];
        if v == 0 {
            return;
        }
        for k in layer * self.experts..(layer + 1) * self.experts {
            let c = &mut self.table[self.cell_at_step[k] as usize];
            c.0 += (self.last[k] == v) as u8 as f64;
            c.1 += 1.0;
        }
        let e = self.experts;
        for &f in &self.before[layer] {
            self.from[layer * e + f as usize] += 1.0;
            let row = (layer * e + f as usize) * e;
            for &to in &self.latest[layer] {
                self.trans[row + to as usize] += 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reuse;

    /// One visit of layer 0 demanding `experts`.
    fn visit(r: &mut Reuse, experts: &[u32]) {
        r.on_step(0);
        for &e in experts {
            r.on_demand(e);
        }
        r.on_release(0);
    }

    #[test]
    fn learns_that_steady_experts_return_and_rare_ones_do_not() {
        let mut r = Reuse::new(1, 8);
        // Expert 0 at every visit, expert 1 at every 10th, expert 2 once at the start.
        visit(&mut r, &[0, 2]);
        for v in 1..400 {
            if v % 10 == 0 {
                visit(&mut r, &[0, 1]);
            } else {
                visit(&mut r, &[0]);
            }
        }
        let (steady, rare, gone) = (r.chance(0), r.chance(1), r.chance(2));
        assert!(steady > 0.9, "steady {steady}");
        assert!(rare < 0.5 && rare > gone, "rare {rare} gone {gone}");
        assert!(gone < 0.1, "gone {gone}");
        assert!(r.demanded_now(0) && !r.demanded_now(1));
    }

    #[test]
    fn learns_a_transition_between_visits() {
        // Expert 3 always follows expert 2 (and only it); 2 comes every 5th visit.
        let mut r = Reuse::new(1, 8);
        for v in 0..500 {
            match v % 5 {
                0 => visit(&mut r, &[2]),
                1 => visit(&mut r, &[3]),
                _ => visit(&mut r, &[5]),
            }
        }
        visit(&mut r, &[2]);
        let after_two = r.chance(3);
        visit(&mut r, &[3]);
        visit(&mut r, &[5]);
        let after_five = r.chance(3);
        assert!(after_two > 0.8, "after 2: {after_two}");
        assert!(after_five < 0.2, "after 5: {after_five}");
    }
}
