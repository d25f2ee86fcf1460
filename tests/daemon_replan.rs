//! `replan` over a real socket: the move-budgeted re-plan of a session registered with a plan,
//! from the counts its `observe` requests reported, equals the solver's in-process re-plan on
//! the same counts, stays within its budget, becomes the plan in service, and bad arguments are
//! refused naming the field (the daemon goes on).

mod common;
mod support;

use std::path::{Path, PathBuf};

use moeplan::config::HardwareConfig;
use moeplan::daemon::client::{Client, ClientError};
use moeplan::daemon::wire::{ErrorCode, Observe, Register, Replan};
use moeplan::placement::{PlanFile, topology};
use moeplan::rebalance::{DEFAULT_COMM_WEIGHT, DEFAULT_HISTORY_HALF_LIFE};
use moeplan::trace::{Trace, read_trace};
use moeplan_solver::{BudgetOptions, Plan, ReplanHistory, Workload, evaluate};
use support::TestDaemon;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An EPLB plan for 8 GPUs built on the sample trace (`moeplan place -o`).
fn plan_file(dir: &Path) -> PathBuf {
    let path = dir.join("plan.json");
    let p = path.to_str().unwrap();
    common::moeplan_ok(&[&common::PLACE_SAMPLE[..], &["--method", "eplb", "-o", p]].concat());
    path
}

/// Per-(layer, expert) selections of the first `n` tokens of the ESFT `law` task.
fn law_counts(n: usize) -> (Trace, Vec<Vec<u32>>) {
    let tr = read_trace(&root().join("traces/esft/law.parquet"), None, None).unwrap();
    let s = *tr.shape();
    let mut c = vec![vec![0u32; s.experts]; s.moe_layers];
    for t in 0..n.min(tr.num_tokens()) {
        for (l, row) in c.iter_mut().enumerate() {
            for &e in tr.experts(t, l) {
                row[e as usize] += 1;
            }
        }
    }
    (tr, c)
}

/// The in-process workload of `counts` (and `pairs`, `[layer][src * experts + dst]`) over
/// `tokens` tokens, and the solver options and topology the daemon's `replan` uses for a
/// budget of 16 moves on the plan's hardware.
/// The history a `moeplan` re-balance holds after one window of these counts, the topology and
/// the daemon's default options at a budget of 16.
fn in_process(
    counts: &[Vec<u32>],
    pairs: &[Vec<u32>],
    tokens: usize,
) -> (ReplanHistory, moeplan_solver::Topology, BudgetOptions) {
    let (layers, e) = (counts.len(), counts[0].len());
    let mut w = Workload::zeros(layers, e);
    for (l, row) in counts.iter().enumerate() {
        for (x, &n) in w.load[l * e..(l + 1) * e].iter_mut().zip(row) {
            *x = f64::from(n);
        }
    }
    for (l, block) in pairs.iter().enumerate() {
        for (x, &n) in w.pairs[l * e * e..(l + 1) * e * e].iter_mut().zip(block) {
            *x = f64::from(n);
        }
    }
    w.tokens = tokens;
    let topo = topology(&HardwareConfig::from_arg("h100-8x-nvlink").unwrap());
    let opts = BudgetOptions {
        moves: 16,
        balance: 1.0,
        comm: DEFAULT_COMM_WEIGHT,
    };
    let mut h = ReplanHistory::new(layers, e);
    h.push(&w, DEFAULT_HISTORY_HALF_LIFE);
    (h, topo, opts)
}

/// A session on the daemon of `c` registered as GPU 0 of the plan at `path`.
fn register_gpu0(
    c: &mut Client,
    path: &Path,
    shape: &moeplan::trace::ModelShape,
    bytes: u64,
) -> u64 {
    c.register(Register {
        plan: Some(path.display().to_string()),
        gpu: Some(0),
        bytes_per_expert: bytes,
        ..Register::new("ep0", shape, 8)
    })
    .unwrap()
    .session
}

fn observe_all(c: &mut Client, sid: u64, counts: &[Vec<u32>]) {
    for (l, row) in counts.iter().enumerate() {
        c.observe(Observe {
            session: sid,
            layer: l as u16,
            experts: (0..row.len() as u16).collect(),
            counts: row.clone(),
            pairs: Vec::new(),
        })
        .unwrap();
    }
}

fn refused(r: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Refused(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn replan_equals_the_solvers_move_budgeted_replan_on_the_observed_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path());
    let file = PlanFile::read(&path).unwrap();
    let plan: Plan = file.plan().unwrap();
    let (tr, counts) = law_counts(1000);
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = register_gpu0(&mut c, &path, tr.shape(), 1000);
    observe_all(&mut c, sid, &counts);
    let r = c.replan(Replan::new(sid, 16)).unwrap();

    // The same re-plan in process.
    let s = tr.shape();
    let (h, topo, opts) = in_process(&counts, &[], 1000);
    let want = h.replan(&plan, &topo, opts);
    let w = h.decayed();
    assert_eq!(r.moves, want.moves as u64);
    assert!(r.moves > 0 && r.moves <= 16, "{r:?}");
    assert_eq!(r.bytes_moved, r.moves * 1000);
    assert_eq!(r.ir_before, evaluate(w, &plan, &topo).ir_mean);
    assert_eq!(r.ir_after, evaluate(w, &want.plan, &topo).ir_mean);
    assert!(r.ir_after < r.ir_before, "{r:?}");
    assert_eq!(r.selections, (1000 * s.moe_layers * s.top_k) as f64);
    // The changed slots turn the plan in service into the re-plan.
    let mut applied = plan.clone();
    for ch in &r.changed {
        let row = applied.layer_mut(ch.layer as usize);
        assert_eq!(row[ch.slot as usize], ch.from);
        row[ch.slot as usize] = ch.to;
        assert_eq!(ch.gpu as usize, plan.gpu_of_slot(ch.slot as usize));
    }
    assert_eq!(applied, want.plan);

    // The re-plan is now in service: with no new counts, the decayed history re-plans from it
    // (one re-plan's decay at the default half-life, the same shares), and a budget of 0 changes
    // nothing.
    let again = c.replan(Replan::new(sid, 0)).unwrap();
    assert!(again.changed.is_empty() && again.moves == 0);
    assert_eq!(again.ir_before, r.ir_after);
    let decay = 0.5f64.powf(1.0 / DEFAULT_HISTORY_HALF_LIFE);
    assert_eq!(again.selections, r.selections * decay);
    // `current` overrides the plan in service: back from the original plan.
    let cur = Replan {
        current: Some(file.physical_to_logical_map.clone()),
        ..Replan::new(sid, 0)
    };
    assert_eq!(c.replan(cur).unwrap().ir_before, r.ir_before);
    let st = c.close(sid).unwrap();
    assert_eq!(st.rejected, 0);
}

#[test]
fn bad_replans_are_refused_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path());
    let file = PlanFile::read(&path).unwrap();
    let (tr, counts) = law_counts(200);
    let d = TestDaemon::start();
    let mut c = d.client();
    let no_plan = c
        .register(Register::new("cache", tr.shape(), 8))
        .unwrap()
        .session;
    let (code, msg) = refused(c.replan(Replan::new(no_plan, 8)));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("no plan"), "{msg}");
    let sid = c
        .register(Register {
            plan: Some(path.display().to_string()),
            gpu: Some(3),
            ..Register::new("ep3", tr.shape(), 8)
        })
        .unwrap()
        .session;
    let (_, msg) = refused(c.replan(Replan::new(sid, 8)));
    assert!(msg.contains("observe"), "{msg}");
    observe_all(&mut c, sid, &counts);
    let mut short = file.physical_to_logical_map.clone();
    short[2].pop();
    let mut unplaced = file.physical_to_logical_map.clone();
    unplaced[1] = vec![0; unplaced[1].len()];
    for (req, field) in [
        (
            Replan {
                history_half_life: Some(0.0),
                ..Replan::new(sid, 8)
            },
            "history_half_life",
        ),
        (
            Replan {
                balance_weight: Some(f64::NAN),
                ..Replan::new(sid, 8)
            },
            "balance_weight",
        ),
        (
            Replan {
                comm_weight: Some(-1.0),
                ..Replan::new(sid, 8)
            },
            "comm_weight",
        ),
        (
            Replan {
                current: Some(short),
                ..Replan::new(sid, 8)
            },
            "current: layer 2",
        ),
        (
            Replan {
                current: Some(unplaced),
                ..Replan::new(sid, 8)
            },
            "current: layer 1",
        ),
        (
            Replan {
                current: Some(vec![]),
                ..Replan::new(sid, 8)
            },
            "current: 0 layers",
        ),
    ] {
        let (code, msg) = refused(c.replan(req));
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(msg.contains(field), "{field}: {msg}");
    }
    // Nothing was folded or changed by the refusals: the first good re-plan sees the counts
    // once, undecayed.
    let ok = c.replan(Replan::new(sid, 4)).unwrap();
    let s = tr.shape();
    assert_eq!(ok.selections, (200 * s.moe_layers * s.top_k) as f64);
    assert!(ok.moves <= 4);
    // Another connection cannot re-plan this session.
    let mut other = d.client();
    assert_eq!(
        refused(other.replan(Replan::new(sid, 4))).0,
        ErrorCode::UnknownSession
    );
    assert_eq!(c.stats(Some(sid)).unwrap()[0].rejected, 7);
}

/// Consecutive-layer pairs reported with `observe` reach the communication term: the re-plan
/// equals the solver's on the same loads and pairs, its hop rates are those of the pairs, and
/// pairs from the last layer or naming an expert outside the model are rejected (counted in
/// the session's `rejected`, nothing added).
#[test]
fn observed_pairs_feed_the_communication_term() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path());
    let plan: Plan = PlanFile::read(&path).unwrap().plan().unwrap();
    let (tr, counts) = law_counts(1000);
    let s = *tr.shape();
    let e = s.experts;
    let mut pairs = vec![vec![0u32; e * e]; s.moe_layers - 1];
    for t in 0..1000 {
        for (l, block) in pairs.iter_mut().enumerate() {
            for &a in tr.experts(t, l) {
                for &b in tr.experts(t, l + 1) {
                    block[a as usize * e + b as usize] += 1;
                }
            }
        }
    }
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = register_gpu0(&mut c, &path, &s, 1000);
    observe_all(&mut c, sid, &counts);
    let pairs_of = |block: &[u32]| -> Vec<(u16, u16, u32)> {
        (0..e * e)
            .filter(|&i| block[i] > 0)
            .map(|i| ((i / e) as u16, (i % e) as u16, block[i]))
            .collect()
    };
    for (l, block) in pairs.iter().enumerate() {
        c.observe(Observe {
            session: sid,
            layer: l as u16,
            experts: Vec::new(),
            counts: Vec::new(),
            pairs: pairs_of(block),
        })
        .unwrap();
    }
    for bad in [
        Observe {
            session: sid,
            layer: (s.moe_layers - 1) as u16,
            experts: Vec::new(),
            counts: Vec::new(),
            pairs: vec![(0, 1, 5)],
        },
        Observe {
            session: sid,
            layer: 0,
            experts: Vec::new(),
            counts: Vec::new(),
            pairs: vec![(0, 1, 5), (e as u16, 1, 5)],
        },
    ] {
        c.observe(bad).unwrap();
    }
    let r = c.replan(Replan::new(sid, 16)).unwrap();

    let (h, topo, opts) = in_process(&counts, &pairs, 1000);
    let want = h.replan(&plan, &topo, opts);
    let w = h.decayed();
    let (before, after) = (evaluate(w, &plan, &topo), evaluate(w, &want.plan, &topo));
    assert!(before.hop_rate > 0.5, "{before:?}");
    assert_eq!(r.hop_before, before.hop_rate);
    assert_eq!(r.hop_after, after.hop_rate);
    assert_eq!(r.ir_after, after.ir_mean);
    assert_eq!(r.moves, want.moves as u64);
    assert_eq!(c.close(sid).unwrap().rejected, 2);
}
