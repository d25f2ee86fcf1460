//! Property tests of the cache core on random traces and random call sequences: slot bounds,
//! pins never evicted, demanded experts present, counters add up, Belady moves least, determinism.

use moeplan::cache::{
    Budget, CacheConfig, ExpertCache, Lfu, Lru, NextUse, Opt, Policy, PolicyKind, Predictive,
    Residency, Scanning, SlotState, StaticTop, StepPlan,
};
use moeplan::replay::{Batching, PrefetchOptions, ReplaySetup, TimingModel, run_policies};
use moeplan::trace::{ModelShape, Trace, TraceBuilder};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Random calls to a cache.
#[derive(Debug, Clone)]
enum Op {
    Step(usize, Vec<u16>),
    Release(usize),
    Prefetch(usize, u16, f32),
    Hint(usize, Vec<f32>),
    Issue,
    CompleteNext,
    LoadedAll,
}

const LAYERS: usize = 3;
const EXPERTS: usize = 8;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..LAYERS, prop::collection::vec(0..EXPERTS as u16, 1..6)).prop_map(|(l, e)| Op::Step(l, e)),
        1 => (0..LAYERS).prop_map(Op::Release),
        2 => (0..LAYERS, 0..EXPERTS as u16, 0.0f32..1.0).prop_map(|(l, e, p)| Op::Prefetch(l, e, p)),
        1 => (0..LAYERS, prop::collection::vec(0.0f32..1.0, EXPERTS)).prop_map(|(l, s)| Op::Hint(l, s)),
        2 => Just(Op::Issue),
        2 => Just(Op::CompleteNext),
        1 => Just(Op::LoadedAll),
    ]
}

fn policy(kind: usize, cfg: &CacheConfig) -> Box<dyn Policy> {
    match kind % 4 {
        0 => Box::new(Lru::new(cfg.keys())),
        1 => Box::new(Lfu::new(cfg.layers, cfg.experts, 8.0)),
        2 => Box::new(Predictive::new(cfg.layers, cfg.experts, 8.0, 1.0)),
        _ => {
            let counts: Vec<f64> = (0..cfg.keys()).map(|k| (k * 7 % 5) as f64).collect();
            Box::new(StaticTop::new(cfg, &counts))
        }
    }
}

/// Checks the slot bounds: no more occupied slots than the budget allows, per group.
fn check_bounds<P: Policy>(c: &ExpertCache<P>, cfg: &CacheConfig) {
    assert!(c.occupied() <= cfg.total_slots());
    if let Budget::PerLayer(cap) = cfg.budget {
        for l in 0..cfg.layers {
            let n = (0..EXPERTS as u16)
                .filter(|&e| c.residency(l, e).is_some())
                .count();
            assert!(n <= cap, "layer {l} holds {n} > {cap}");
        }
    }
    let states = c.slot_states();
    for (s, st) in states.iter().enumerate() {
        assert_eq!(*st == SlotState::Free, c.slot_content(s as u32).is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_any_calls(
        ops in prop::collection::vec(op(), 1..120),
        cap in 1usize..5,
        shared in any::<bool>(),
        kind in 0usize..4,
    ) {
        let budget = if shared { Budget::Shared(cap * 2) } else { Budget::PerLayer(cap) };
        let cfg = CacheConfig { layers: LAYERS, experts: EXPERTS, budget };
        let mut c = ExpertCache::new(cfg, policy(kind, &cfg)).unwrap();
        let mut plan = StepPlan::default();
        // Pinned (layer -> [(expert, slot)]) by the running step of each layer.
        let mut pinned: Vec<Vec<(u16, u32)>> = vec![Vec::new(); LAYERS];
        let mut demands = 0u64;
        for op in ops {
            match op {
                Op::Step(l, es) => {
                    pinned[l].clear();
                    c.step(l, &es, &mut plan).unwrap();
                    let mut distinct = es.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    demands += distinct.len() as u64;
                    prop_assert_eq!(plan.placements.len(), distinct.len());
                    prop_assert_eq!((plan.hits + plan.misses) as usize, distinct.len());
                    for p in &plan.placements {
                        match p.residency {
                            Residency::Transient | Residency::Cpu => prop_assert!(p.slot.is_none()),
                            _ => {
                                let (slot, _) = c.residency(l, p.expert).expect("demanded expert present");
                                prop_assert_eq!(Some(slot), p.slot);
                                prop_assert!(c.is_pinned(l, p.expert));
                                pinned[l].push((p.expert, slot));
                            }
                        }
                    }
                }
                Op::Release(l) => { c.release(l); pinned[l].clear(); }
                Op::Prefetch(l, e, p) => { c.prefetch(l, e, p).unwrap(); }
                Op::Hint(l, s) => { c.hint(l, 1, &s, 3).unwrap(); }
                Op::Issue => { c.issue_prefetch(); }
                Op::CompleteNext => { c.complete_next(); }
                Op::LoadedAll => { c.loaded_all(); }
            }
            check_bounds(&c, &cfg);
            for (l, ps) in pinned.iter().enumerate() {
                for &(e, slot) in ps {
                    let r = c.residency(l, e);
                    prop_assert!(r.is_some_and(|(s, _)| s == slot), "pinned {l}/{e} moved: {r:?}");
                }
            }
            let st = c.stats();
            prop_assert_eq!(st.hits + st.misses, st.demands);
            prop_assert_eq!(st.demands, demands);
            prop_assert!(st.prefetch_used + st.prefetch_wasted <= st.prefetch_loads);
        }
    }

    #[test]
    fn lru_recency_lists_choose_as_the_slot_scan(
        ops in prop::collection::vec(op(), 1..160),
        cap in 1usize..5,
        shared in any::<bool>(),
    ) {
        // The O(1) recency lists and a scan over every slot's last-touch stamp must evict the
        // same experts under any calls, prefetches included.
        let budget = if shared { Budget::Shared(cap * 2) } else { Budget::PerLayer(cap) };
        let cfg = CacheConfig { layers: LAYERS, experts: EXPERTS, budget };
        let fast = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
        let scan = ExpertCache::new(cfg, Lru::scanning(cfg.keys())).unwrap();
        same_choices(fast, scan, ops, &cfg)?;
    }

    #[test]
    fn keyed_heaps_choose_as_a_scan_asking_the_policy(
        ops in prop::collection::vec(op(), 1..160),
        cap in 1usize..5,
        shared in any::<bool>(),
        kind in 0usize..3,
    ) {
        // Keyed policies find victims in per-group heaps of the evictable slots (in groups of
        // HEAP_FROM slots or more); asking the policy for every slot's priority (a scan) must
        // evict the same experts.
        let budget = if shared { Budget::Shared(cap * 2) } else { Budget::PerLayer(cap) };
        let cfg = CacheConfig { layers: LAYERS, experts: EXPERTS, budget };
        let make = || -> Box<dyn Policy> { match kind {
            0 => Box::new(Lru::scanning(cfg.keys())),
            1 => {
                let counts: Vec<f64> = (0..cfg.keys()).map(|k| (k * 7 % 5) as f64).collect();
                Box::new(StaticTop::new(&cfg, &counts))
            }
            _ => {
                // Belady over exactly the demands the steps will make.
                let mut demands = Vec::new();
                for op in &ops {
                    if let Op::Step(l, es) = op {
                        let mut seen = Vec::new();
                        for &e in es {
                            if !seen.contains(&e) {
                                seen.push(e);
                                demands.push((l * EXPERTS) as u32 + e as u32);
                            }
                        }
                    }
                }
                Box::new(Opt::new(NextUse::build(&demands, cfg.keys()), cfg.keys()))
            }
        }};
        // Heaps forced: these groups are smaller than the size from which `new` uses them.
        let fast = ExpertCache::with_heaps(cfg, make(), true).unwrap();
        let scan = ExpertCache::new(cfg, Scanning(make())).unwrap();
        same_choices(fast, scan, ops, &cfg)?;
    }

    #[test]
    fn opt_misses_at_most_any_policy_and_replay_is_deterministic(
        raw in prop::collection::vec(prop::collection::vec(0..EXPERTS as u16, 2), 4..120),
        extra in 0usize..4,
        shared in any::<bool>(),
        batch in 1usize..4,
    ) {
        // Room for a whole step (batch x top-2), so no expert has to be streamed: Belady is
        // optimal among caching policies, not against ones that may bypass the cache.
        let cap = (2 * batch + extra).min(EXPERTS);
        let trace = random_trace(&raw);
        let budget = if shared { Budget::Shared(cap * LAYERS) } else { Budget::PerLayer(cap) };
        let pred = markov(&trace);
        let setup = ReplaySetup {
            trace: &trace,
            budget,
            batching: if batch == 1 { Batching::Single } else { Batching::Consecutive { size: batch } },
            timing: timing(),
            train: &[],
            predictor: Some(pred.main()),
            online: None,
            prefetch: PrefetchOptions { lookahead: 2, top_n: 2 },
            half_life: 16.0,
            beta: 1.0,
            margin: 0.0,
        };
        let rs = run_policies(&setup, &PolicyKind::ALL).unwrap();
        let again = run_policies(&setup, &PolicyKind::ALL).unwrap();
        let opt = rs.iter().find(|r| r.name == "opt").unwrap();
        for (r, r2) in rs.iter().zip(&again) {
            prop_assert_eq!(&r.detail, &r2.detail);
            prop_assert_eq!(r.detail.cache.hits + r.detail.cache.misses, r.detail.cache.demands);
            if r.name != "predictive" && r.name != "static" {
                prop_assert!(opt.detail.cache.misses <= r.detail.cache.misses, "{} {:?} {:?}", r.name, opt.detail.cache, r.detail.cache);
            }
        }
    }
}

fn timing() -> TimingModel {
    TimingModel {
        expert_bytes: 1000,
        link_gbps: 1.0,
        transfer_ms: 0.001,
        layer_ms: 0.0005,
        layer_ms_per_token: 0.0001,
        cpu_expert_ms: 0.002,
        cpu_offload: false,
    }
}

/// A trace of 3 layers x 8 experts, top-2, from rows of 2 expert ids (one row per token; the
/// second id is made distinct from the first; layers shift the ids so layers differ).
fn random_trace(rows: &[Vec<u16>]) -> Trace {
    let shape = ModelShape {
        moe_layers: LAYERS,
        experts: EXPERTS,
        top_k: 2,
        first_moe_layer: 0,
    };
    let mut b = TraceBuilder::new(shape, rows.len());
    for (t, r) in rows.iter().enumerate() {
        let mut experts = Vec::new();
        for l in 0..LAYERS {
            let a = (r[0] as usize + l) % EXPERTS;
            let mut c = (r[1] as usize + 2 * l) % EXPERTS;
            if c == a {
                c = (c + 1) % EXPERTS;
            }
            experts.extend([a as u16, c as u16]);
        }
        b.push_token(
            (t / 16) as u32,
            (t % 16) as u32,
            &experts,
            &[0.6, 0.4].repeat(LAYERS),
        );
    }
    b.finish()
}

#[test]
fn opt_index_is_next_occurrence() {
    let idx = NextUse::build(&[1, 2, 1, 3, 2, 1], 4);
    assert_eq!(idx.len(), 6);
    let mut o = Opt::new(idx, 4);
    o.on_demand(1, 0);
    o.on_demand(2, 1);
    o.on_demand(3, 3);
    // 1 next at 2, 2 next at 4, 3 never: 3 ranks lowest, then 2, then 1.
    assert!(o.priority(3) < o.priority(2) && o.priority(2) < o.priority(1));
}

/// A markov predictor (look-ahead 2) trained on `trace` itself.
fn markov(trace: &Trace) -> moeplan::predict::PredictorSet {
    let opts = moeplan::predict::TrainOptions {
        lookahead: 2,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::hidden();
    moeplan::predict::PredictorSet::train(
        &[trace],
        moeplan::predict::Kind::Markov,
        &opts,
        &bar,
        &mut |_| {},
    )
    .unwrap()
    .0
}

#[test]
fn a_cache_with_any_policy_can_move_between_threads() {
    fn is_send<T: Send + 'static>() {}
    is_send::<ExpertCache<Box<dyn Policy>>>();
    is_send::<ExpertCache<Lru>>();
    let _ = PolicyKind::ALL.map(|k| k.as_str().parse::<PolicyKind>().unwrap());
}

#[test]
fn loads_complete_in_order_and_prefetches_are_cancelled_or_issued() {
    use moeplan::cache::LoadKind;
    let cfg = CacheConfig {
        layers: 2,
        experts: 4,
        budget: Budget::PerLayer(2),
    };
    let mut c = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
    let mut plan = StepPlan::default();
    c.step(0, &[0, 1], &mut plan).unwrap();
    assert_eq!(plan.loads.len(), 2);
    assert_eq!(c.in_flight(), 2);
    // Completing the second load completes the first: one link, in issue order.
    assert_eq!(c.loaded(0, 1).unwrap(), 2);
    assert_eq!(c.residency(0, 0).unwrap().1, SlotState::Resident);
    assert_eq!(c.loaded(0, 1).unwrap(), 0);
    // Pinned experts are not prefetch victims.
    assert!(c.prefetch(0, 3, 1.0).unwrap());
    assert!(c.issue_prefetch().is_none());
    assert_eq!(c.stats().prefetch_cancelled, 1);
    c.release(0);
    assert!(c.prefetch(0, 3, 1.0).unwrap());
    let ld = c.issue_prefetch().unwrap();
    assert_eq!(
        (ld.kind, ld.expert, ld.evicted),
        (LoadKind::Prefetch, 3, Some(0))
    );
    // The real routing of layer 0 arrives: the queued prefetch of layer 0 is cancelled.
    assert!(c.prefetch(0, 2, 0.5).unwrap());
    c.step(0, &[3, 1], &mut plan).unwrap();
    assert_eq!(c.queued(), 0);
    assert_eq!(c.stats().prefetch_cancelled, 2);
    assert_eq!(plan.placements[0].residency, Residency::InFlight);
    assert_eq!(c.stats().prefetch_used, 1);
    // More experts than slots: the excess is streamed, not cached.
    c.loaded_all();
    c.step(1, &[0, 1, 2], &mut plan).unwrap();
    let streamed = plan
        .placements
        .iter()
        .filter(|p| p.residency == Residency::Transient)
        .count();
    assert_eq!(streamed, 1);
    assert_eq!(plan.loads.len(), 3);
    // Out-of-range requests are errors and change nothing.
    let before = *c.stats();
    assert!(c.step(2, &[0], &mut plan).is_err());
    assert!(c.step(0, &[4], &mut plan).is_err());
    assert_eq!(*c.stats(), before);
}

/// Drives two caches with the same calls and checks that they answer and evict alike.
fn same_choices<A: Policy, B: Policy>(
    mut fast: ExpertCache<A>,
    mut scan: ExpertCache<B>,
    ops: Vec<Op>,
    cfg: &CacheConfig,
) -> Result<(), TestCaseError> {
    let (mut pf, mut ps) = (StepPlan::default(), StepPlan::default());
    for op in ops {
        match op {
            Op::Step(l, es) => {
                fast.step(l, &es, &mut pf).unwrap();
                scan.step(l, &es, &mut ps).unwrap();
                prop_assert_eq!(&pf.placements, &ps.placements);
                prop_assert_eq!(&pf.loads, &ps.loads);
            }
            Op::Release(l) => {
                fast.release(l);
                scan.release(l);
            }
            Op::Prefetch(l, e, p) => {
                prop_assert_eq!(
                    fast.prefetch(l, e, p).unwrap(),
                    scan.prefetch(l, e, p).unwrap()
                );
            }
            Op::Hint(l, s) => {
                prop_assert_eq!(
                    fast.hint(l, 1, &s, 3).unwrap(),
                    scan.hint(l, 1, &s, 3).unwrap()
                );
            }
            Op::Issue => prop_assert_eq!(fast.issue_prefetch(), scan.issue_prefetch()),
            Op::CompleteNext => prop_assert_eq!(fast.complete_next(), scan.complete_next()),
            Op::LoadedAll => prop_assert_eq!(fast.loaded_all(), scan.loaded_all()),
        }
        prop_assert_eq!(fast.stats(), scan.stats());
        prop_assert_eq!(fast.slot_states(), scan.slot_states());
        for slot in 0..cfg.total_slots() as u32 {
            prop_assert_eq!(fast.slot_content(slot), scan.slot_content(slot));
        }
    }
    Ok(())
}
