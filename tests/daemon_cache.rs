//! The daemon runs the one cache core: a session stepping through the real sample trace gives
//! exactly the counters of an in-process `ExpertCache` driven the same way; pins hold.

mod support;

use moeplan::cache::{Budget, CacheConfig, ExpertCache, Lfu, Lru, Policy, StepPlan};
use moeplan::daemon::wire::{CapacityMode, Register, State, Step};
use moeplan::daemon::wire::{RequestBody, ResponseBody};
use moeplan::trace::read_trace;
use support::{TestDaemon, small};

fn sample() -> moeplan::trace::Trace {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.parquet");
    read_trace(&p, None, None).unwrap().slice(0..300)
}

/// Steps every (token, layer) of `trace` through `cache` as the replay does: step, all loads
/// complete, release.
fn in_process<P: Policy>(trace: &moeplan::trace::Trace, mut cache: ExpertCache<P>) -> (u64, u64) {
    let mut plan = StepPlan::default();
    for t in 0..trace.num_tokens() {
        for l in 0..trace.shape().moe_layers {
            cache.step(l, trace.experts(t, l), &mut plan).unwrap();
            cache.loaded_all();
            cache.release(l);
        }
    }
    (cache.stats().hits, cache.stats().demands)
}

#[test]
fn a_session_on_the_sample_trace_matches_the_in_process_cache_exactly() {
    let trace = sample();
    let shape = *trace.shape();
    let cfg = CacheConfig {
        layers: shape.moe_layers,
        experts: shape.experts,
        budget: Budget::PerLayer(16),
    };
    let d = TestDaemon::start();
    let mut c = d.client();
    for policy in ["lru", "lfu"] {
        let expected = match policy {
            "lru" => in_process(&trace, ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap()),
            _ => in_process(
                &trace,
                ExpertCache::new(
                    cfg,
                    Lfu::new(cfg.layers, cfg.experts, Lfu::DEFAULT_HALF_LIFE),
                )
                .unwrap(),
            ),
        };
        let sid = c
            .register(Register {
                policy: policy.into(),
                ..Register::new(policy, &shape, 16)
            })
            .unwrap()
            .session;
        for t in 0..trace.num_tokens() {
            for l in 0..shape.moe_layers {
                let r = c.step(sid, l as u16, trace.experts(t, l)).unwrap();
                let done: Vec<u16> = r
                    .loads
                    .iter()
                    .filter(|t| t.slot.is_some())
                    .map(|t| t.expert)
                    .collect();
                c.loaded(sid, l as u16, &done).unwrap();
            }
        }
        let st = c.close(sid).unwrap();
        assert_eq!((st.hits, st.demands), expected, "{policy}");
        assert!(
            st.hit_ratio > 0.3 && st.hit_ratio < 1.0,
            "{policy}: {}",
            st.hit_ratio
        );
    }
}

#[test]
fn pinned_experts_are_never_evicted_and_keep_pins_holds_them() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = c
        .register(Register {
            capacity_mode: CapacityMode::Shared,
            ..small(2)
        })
        .unwrap()
        .session;
    let r = c.step(sid, 0, &[1, 2]).unwrap();
    assert_eq!(r.loads.len(), 2);
    c.loaded(sid, 0, &[1, 2]).unwrap();
    // Pipelined query of layer 1 while layer 0 still runs: both slots are pinned.
    let step = Step {
        session: sid,
        layer: 1,
        experts: vec![3],
        next_scores: None,
        keep_pins: true,
        ..Step::new(0, 0, Vec::new())
    };
    let r = match c.call(RequestBody::Step(step)).unwrap() {
        ResponseBody::Step(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.placements[0].state, State::Transient);
    assert!(r.loads.iter().all(|t| t.evict.is_none()));
    assert_eq!(c.stats(Some(sid)).unwrap()[0].pinned, 2);
    // A plain step ends the earlier steps: now layer 0's experts may go.
    let r = c.step(sid, 1, &[3]).unwrap();
    assert_eq!(r.placements[0].state, State::Loading);
    let ev = r.loads[0].evict.expect("a layer-0 expert is evicted");
    assert_eq!(ev.layer, 0);
    assert_eq!(c.stats(Some(sid)).unwrap()[0].pinned, 1);
}

#[test]
fn hints_turn_into_prefetches_for_the_next_layer() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = c
        .register(Register {
            policy: "predictive".into(),
            prefetch_top: Some(2),
            ..small(4)
        })
        .unwrap()
        .session;
    let mut scores = vec![0.0f32; 16];
    scores[7] = 0.9;
    scores[9] = 0.5;
    let step = Step {
        session: sid,
        layer: 0,
        experts: vec![1, 2],
        next_scores: Some(scores),
        keep_pins: false,
        ..Step::new(0, 0, Vec::new())
    };
    let r = match c.call(RequestBody::Step(step)).unwrap() {
        ResponseBody::Step(r) => r,
        other => panic!("{other:?}"),
    };
    let pre: Vec<(u16, u16)> = r.prefetch.iter().map(|t| (t.layer, t.expert)).collect();
    assert_eq!(pre, vec![(1, 7), (1, 9)]);
    let r = c.step(sid, 1, &[7, 3]).unwrap();
    assert_eq!(
        r.placements[0].state,
        State::InFlight,
        "the prefetch is a hit"
    );
    assert_eq!(r.hits, 1);
    let st = &c.stats(Some(sid)).unwrap()[0];
    assert_eq!((st.prefetches, st.prefetch_hits), (2, 1));
}
