//! [`ExpertCache`]: one device's slots driven step by step (steps, pins, loads, prefetches).

use std::collections::VecDeque;

use super::plan::{CacheStats, ExpertSlot, Load, LoadKind, Residency, StepPlan};
use super::prefetch::best_first;
use super::slots::{NONE, SlotPool, SlotState};
use super::{Budget, CacheConfig, CacheError, Policy, PrefetchQueue, Ranking};

/// Default bound of the prefetch queue.
const DEFAULT_QUEUE: usize = 256;

/// The expert cache of one device (one GPU, one serialised host link).
///
/// Usable incrementally (the daemon: one [`ExpertCache::step`] per layer query) or in a loop
/// (replay). Deterministic: the same calls give the same answers. Steps allocate nothing once the
/// caller's [`StepPlan`] and the internal buffers have grown to their working size.
#[derive(Debug, Clone)]
pub struct ExpertCache<P: Policy> {
    /// Shape and budget.
    cfg: CacheConfig,
    /// Slot states and contents.
    pool: SlotPool,
    /// Eviction policy.
    policy: P,
    /// Prefetch requests waiting for the link.
    queue: PrefetchQueue,
    /// Slots with a transfer in flight, in issue order (loads complete in this order).
    link: VecDeque<u32>,
    /// Slots pinned by the running step of each layer.
    pins: Vec<Vec<u32>>,
    /// Whether a step of each layer is running (pinned, not yet released).
    active: Vec<bool>,
    /// Per key, the stamp of the last step that listed it (dedup within a step).
    seen: Vec<u32>,
    /// Stamp of the running step.
    stamp: u32,
    /// Demand clock: distinct experts demanded so far.
    now: u64,
    /// Counters.
    stats: CacheStats,
    /// Misses of the running step: (placement index, key, demand clock).
    misses: Vec<(u32, u32, u64)>,
    /// Scratch for ranking hint scores.
    order: Vec<u16>,
    /// How victims are found: asking the policy, its priorities remembered per slot
    /// (`pool.prio`), or the pool's recency lists.
    ranking: Ranking,
    /// (layer, expert) of each key (a table: no division on the hot path).
    split: Vec<(u16, u16)>,
}

/// Budget groups of at least this many slots find a keyed policy's victim in a heap of the
/// evictable slots (O(log n) per change); smaller ones scan the group's remembered priorities,
/// which is faster there (`cargo bench --bench replay`, `opt`: 16 slots per layer, the scan
/// 1.85x the heap; 416 shared slots, the heap 1.9x the scan).
pub const HEAP_FROM: usize = 64;

impl<P: Policy> ExpertCache<P> {
    /// An empty cache (every slot free) for `cfg`, evicting by `policy`.
    pub fn new(cfg: CacheConfig, policy: P) -> Result<Self, CacheError> {
        let group = match cfg.budget {
            Budget::PerLayer(c) | Budget::Shared(c) => c,
        };
        let heaps = policy.ranking() == Ranking::Keyed && group >= HEAP_FROM;
        Self::with_heaps(cfg, policy, heaps)
    }

    /// As [`ExpertCache::new`], choosing whether a keyed policy's victims come from heaps
    /// (`heaps`) or a scan, whatever the group size (for tests and benchmarks; same choices
    /// either way). Ignored for other rankings.
    pub fn with_heaps(cfg: CacheConfig, policy: P, heaps: bool) -> Result<Self, CacheError> {
        cfg.check()?;
        if policy.keys() != cfg.keys() {
            return Err(CacheError::PolicySize {
                name: policy.name().to_string(),
                got: policy.keys(),
                want: cfg.keys(),
            });
        }
        let ranking = policy.ranking();
        Ok(ExpertCache {
            pool: SlotPool::new(&cfg, heaps && ranking == Ranking::Keyed),
            policy,
            queue: PrefetchQueue::new(DEFAULT_QUEUE),
            link: VecDeque::with_capacity(cfg.total_slots()),
            pins: (0..cfg.layers).map(|_| Vec::new()).collect(),
            active: vec![false; cfg.layers],
            seen: vec![0; cfg.keys()],
            stamp: 0,
            now: 0,
            stats: CacheStats::default(),
            misses: Vec::new(),
            order: (0..cfg.experts as u16).collect(),
            ranking,
            split: (0..cfg.keys())
                .map(|k| ((k / cfg.experts) as u16, (k % cfg.experts) as u16))
                .collect(),
            cfg,
        })
    }

    fn check_layer(&self, layer: usize) -> Result<(), CacheError> {
        if layer >= self.cfg.layers {
            return Err(CacheError::Layer {
                layer,
                layers: self.cfg.layers,
            });
        }
        Ok(())
    }

    fn check_expert(&self, layer: usize, expert: u16) -> Result<(), CacheError> {
        if expert as usize >= self.cfg.experts {
            return Err(CacheError::Expert {
                layer,
                expert,
                experts: self.cfg.experts,
            });
        }
        Ok(())
    }

    #[inline]
    fn split(&self, key: u32) -> (u16, u16) {
        self.split[key as usize]
    }

    /// Runs a step of `layer` needing `experts` (duplicates are counted once).
    ///
    /// Ends the previous step of `layer` (its pins are released), cancels prefetches still queued
    /// for `layer` (the real routing is known now), pins every needed expert until
    /// [`ExpertCache::release`] (or the next step of `layer`), and issues a demand load per miss:
    /// into a free slot, else evicting the lowest-priority resident unpinned expert of the same
    /// budget group, else (all pinned or in flight, or the policy does not admit the expert)
    /// through a transient buffer. On error nothing changes.
    pub fn step(
        &mut self,
        layer: usize,
        experts: &[u16],
        plan: &mut StepPlan,
    ) -> Result<(), CacheError> {
        self.step_with_cpu(layer, experts, &[], plan)
    }

    /// As [`ExpertCache::step`], but the experts of `on_cpu` that miss are run on the CPU
    /// (Fiddler-style): counted as misses, given [`Residency::Cpu`], neither loaded nor cached.
    pub fn step_with_cpu(
        &mut self,
        layer: usize,
        experts: &[u16],
        on_cpu: &[u16],
        plan: &mut StepPlan,
    ) -> Result<(), CacheError> {
        self.check_layer(layer)?;
        for &e in experts.iter().chain(on_cpu) {
            self.check_expert(layer, e)?;
        }
        self.release(layer);
        self.cancel_prefetches(layer)?;
        plan.clear();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.fill(0);
            self.stamp = 1;
        }
        self.active[layer] = true;
        self.stats.steps += 1;
        self.policy.on_step(layer);
        self.misses.clear();
        // Pass 1: hits are pinned before any miss may evict.
        for &e in experts {
            let key = self.cfg.key(layer, e);
            if self.seen[key as usize] == self.stamp {
                continue;
            }
            self.seen[key as usize] = self.stamp;
            let now = self.now;
            self.now += 1;
            self.stats.demands += 1;
            self.policy.on_demand(key, now);
            let slot = self.pool.slot_of[key as usize];
            if slot == NONE {
                self.misses.push((plan.placements.len() as u32, key, now));
                plan.placements.push(ExpertSlot {
                    expert: e,
                    slot: None,
                    residency: Residency::Transient,
                });
                continue;
            }
            let s = slot as usize;
            if self.ranking == Ranking::Keyed {
                self.pool.set_prio(slot, self.policy.priority(key));
            }
            let residency = if self.pool.state[s] == SlotState::Loading {
                self.stats.in_flight_hits += 1;
                Residency::InFlight
            } else {
                Residency::Resident
            };
            if self.pool.prefetched[s] {
                self.pool.prefetched[s] = false;
                self.stats.prefetch_used += 1;
            }
            self.pin(slot, layer);
            plan.hits += 1;
            self.stats.hits += 1;
            plan.placements.push(ExpertSlot {
                expert: e,
                slot: Some(slot),
                residency,
            });
        }
        // Pass 2: misses take a slot (or stream, or run on the CPU).
        for i in 0..self.misses.len() {
            let (idx, key, now) = self.misses[i];
            plan.misses += 1;
            self.stats.misses += 1;
            let expert = self.split(key).1;
            if on_cpu.contains(&expert) {
                self.stats.cpu_runs += 1;
                plan.placements[idx as usize].residency = Residency::Cpu;
                continue;
            }
            let (slot, evicted) = self.make_room(key, None);
            if let Some(s) = slot {
                self.pool.start_load(s, key, false);
                self.link.push_back(s);
                self.pin(s, layer);
                self.policy.on_insert(key, now);
                if self.ranking == Ranking::Keyed {
                    self.pool.set_prio(s, self.policy.priority(key));
                }
                self.stats.demand_loads += 1;
                plan.placements[idx as usize] = ExpertSlot {
                    expert,
                    slot: Some(s),
                    residency: Residency::Loading,
                };
            } else {
                self.stats.transient_loads += 1;
            }
            plan.loads
                .push(self.load(key, slot, evicted, LoadKind::Demand));
        }
        // Pass 3: recency lists take the step's experts in the order it listed them.
        if self.ranking == Ranking::Recency {
            for p in &plan.placements {
                if let Some(s) = p.slot {
                    self.pool.touch(s);
                }
            }
        }
        Ok(())
    }

    fn load(&self, key: u32, slot: Option<u32>, evicted: Option<u32>, kind: LoadKind) -> Load {
        let (layer, expert) = self.split(key);
        let ev = evicted.map(|k| self.split(k));
        Load {
            layer,
            expert,
            slot,
            evicted_layer: ev.map(|e| e.0),
            evicted: ev.map(|e| e.1),
            kind,
        }
    }

    /// A slot for `key`: free, else the lowest-priority evictable one (only if its priority is
    /// below `must_beat`, when given). Returns the slot and the evicted key.
    fn make_room(&mut self, key: u32, must_beat: Option<f64>) -> (Option<u32>, Option<u32>) {
        if !self.policy.admit(key) {
            return (None, None);
        }
        let group = self.pool.group_of_key(key);
        if let Some(s) = self.pool.take_free(group) {
            return (Some(s), None);
        }
        let policy = &self.policy;
        let victim = match self.ranking {
            Ranking::Recency => self.pool.oldest_victim(group),
            Ranking::Keyed if self.pool.has_heaps() => self.pool.lowest_victim(group),
            Ranking::Keyed => self.pool.victim(group, |s, _| self.pool.prio(s)),
            Ranking::Ask => self.pool.victim(group, |_, k| policy.priority(k)),
        };
        let Some(v) = victim else {
            return (None, None);
        };
        if let Some(p) = must_beat
            && policy.priority(self.pool.key[v as usize]) >= p
        {
            return (None, None);
        }
        if self.pool.prefetched[v as usize] {
            self.pool.prefetched[v as usize] = false;
            self.stats.prefetch_wasted += 1;
        }
        let old = self.pool.evict(v);
        self.policy.on_evict(old);
        self.stats.evictions += 1;
        (Some(v), Some(old))
    }

    #[inline]
    fn pin(&mut self, slot: u32, layer: usize) {
        self.pool.set_pinned(slot, true);
        self.pins[layer].push(slot);
    }

    /// Ends the running step of `layer`: its experts may be evicted again. Idempotent.
    pub fn release(&mut self, layer: usize) {
        if layer >= self.cfg.layers || !self.active[layer] {
            return;
        }
        for &s in &self.pins[layer] {
            self.pool.set_pinned(s, false);
        }
        self.pins[layer].clear();
        self.active[layer] = false;
        self.policy.on_release(layer);
    }

    /// The transfer of (`layer`, `expert`) finished. Loads complete in issue order on the link,
    /// so every load issued before it is complete too. Returns how many loads completed (0 if
    /// the expert was not in flight).
    pub fn loaded(&mut self, layer: usize, expert: u16) -> Result<usize, CacheError> {
        self.check_layer(layer)?;
        self.check_expert(layer, expert)?;
        let slot = self.pool.slot_of[self.cfg.key(layer, expert) as usize];
        if slot == NONE || self.pool.state[slot as usize] != SlotState::Loading {
            return Ok(0);
        }
        let mut n = 0;
        while let Some(s) = self.link.pop_front() {
            self.pool.set_resident(s);
            n += 1;
            if s == slot {
                break;
            }
        }
        Ok(n)
    }

    /// The oldest in-flight transfer finished; returns its (layer, expert).
    pub fn complete_next(&mut self) -> Option<(u16, u16)> {
        let s = self.link.pop_front()?;
        self.pool.set_resident(s);
        Some(self.split(self.pool.key[s as usize]))
    }

    /// Every in-flight transfer finished; returns how many.
    pub fn loaded_all(&mut self) -> usize {
        let n = self.link.len();
        while self.complete_next().is_some() {}
        n
    }

    /// Queues a prefetch of (`layer`, `expert`) with `priority` (higher first). Returns whether it
    /// was queued (not when already cached or not admitted by the policy).
    pub fn prefetch(
        &mut self,
        layer: usize,
        expert: u16,
        priority: f32,
    ) -> Result<bool, CacheError> {
        self.check_layer(layer)?;
        self.check_expert(layer, expert)?;
        let key = self.cfg.key(layer, expert);
        if self.pool.slot_of[key as usize] != NONE || !self.policy.admit(key) {
            return Ok(false);
        }
        if self.queue.push(key, priority).is_some() {
            self.stats.prefetch_cancelled += 1;
        }
        Ok(true)
    }

    /// Gives the policy a predictor's `scores` (one per expert, higher = likelier) for `layer`,
    /// `h` layers ahead of the layer just routed, and queues the `top_n` best-scored experts not
    /// cached (nearer layers first, then by score). Returns how many were queued.
    pub fn hint(
        &mut self,
        layer: usize,
        h: usize,
        scores: &[f32],
        top_n: usize,
    ) -> Result<usize, CacheError> {
        self.check_layer(layer)?;
        if scores.len() != self.cfg.experts {
            return Err(CacheError::Config(format!(
                "hint for layer {layer} has {} scores, expected {}",
                scores.len(),
                self.cfg.experts
            )));
        }
        self.policy.on_hint(layer, h, scores);
        let n = top_n.min(self.cfg.experts);
        if n == 0 {
            return Ok(0);
        }
        best_first(&mut self.order, scores, n);
        let mut queued = 0;
        for r in 0..n {
            let e = self.order[r];
            let prio = (n - r) as f32 / (n + 1) as f32 - h as f32;
            if self.prefetch(layer, e, prio)? {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Issues the best queued prefetch that is worth a slot: a free slot, or an evictable
    /// resident whose policy priority is below [`Policy::prefetch_priority`] of the candidate. Requests that are cached by now
    /// or not worth a slot are dropped (counted as cancelled). `None` when the queue is empty.
    pub fn issue_prefetch(&mut self) -> Option<Load> {
        while let Some((key, _)) = self.queue.pop() {
            if self.pool.slot_of[key as usize] != NONE {
                continue;
            }
            let beat = self.policy.prefetch_priority(key);
            let (slot, evicted) = self.make_room(key, Some(beat));
            let Some(s) = slot else {
                self.stats.prefetch_cancelled += 1;
                continue;
            };
            self.pool.start_load(s, key, true);
            self.link.push_back(s);
            self.policy.on_insert(key, self.now);
            if self.ranking == Ranking::Keyed {
                self.pool.set_prio(s, self.policy.priority(key));
            }
            self.stats.prefetch_loads += 1;
            return Some(self.load(key, slot, evicted, LoadKind::Prefetch));
        }
        None
    }

    /// Cancels the prefetches queued for `layer` (a prediction turned out wrong or moot);
    /// returns how many.
    pub fn cancel_prefetches(&mut self, layer: usize) -> Result<usize, CacheError> {
        self.check_layer(layer)?;
        let e = self.cfg.experts as u32;
        let n = self.queue.cancel_where(|k| (k / e) as usize == layer);
        self.stats.prefetch_cancelled += n as u64;
        Ok(n)
    }

    /// The shape and budget.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, mutably (e.g. to retune it between runs).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// Counters so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Slot and state of (`layer`, `expert`), if cached (loading or resident).
    pub fn residency(&self, layer: usize, expert: u16) -> Option<(u32, SlotState)> {
        if layer >= self.cfg.layers || expert as usize >= self.cfg.experts {
            return None;
        }
        let s = self.pool.slot_of[self.cfg.key(layer, expert) as usize];
        (s != NONE).then(|| (s, self.pool.state[s as usize]))
    }

    /// Whether (`layer`, `expert`) is pinned by a running step.
    pub fn is_pinned(&self, layer: usize, expert: u16) -> bool {
        self.residency(layer, expert)
            .is_some_and(|(s, _)| self.pool.is_pinned(s))
    }

    /// State of every slot.
    pub fn slot_states(&self) -> &[SlotState] {
        &self.pool.state
    }

    /// (layer, expert) held by `slot`, if any.
    pub fn slot_content(&self, slot: u32) -> Option<(u16, u16)> {
        let k = *self.pool.key.get(slot as usize)?;
        (k != NONE).then(|| self.split(k))
    }

    /// Slots in use (loading or resident).
    pub fn occupied(&self) -> usize {
        self.pool.occupied()
    }

    /// Transfers in flight on the link.
    pub fn in_flight(&self) -> usize {
        self.link.len()
    }

    /// Prefetch requests queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Demand clock: distinct experts demanded so far.
    pub fn demand_clock(&self) -> u64 {
        self.now
    }
}
