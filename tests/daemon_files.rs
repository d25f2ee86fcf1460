//! `register` with files: a predictor file (`moeplan predict train -o`) whose scores turn the
//! steps' routing into prefetches, and a placement plan (`moeplan place -o`) that splits experts
//! between GPUs; bad files are refused with the file named, and the daemon goes on.

mod common;
mod support;

use std::path::{Path, PathBuf};

use moeplan::daemon::client::{Client, ClientError};
use moeplan::daemon::wire::{ErrorCode, RequestBody, ResponseBody};
use moeplan::daemon::wire::{Register, Routing, State, Step};
use moeplan::predict::{Kind, PredictorSet, TrainOptions};
use moeplan::trace::{Trace, read_trace};
use support::TestDaemon;

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> Trace {
    read_trace(&root().join("traces/sample.parquet"), None, None).unwrap()
}

/// A markov predictor file trained on the ESFT `intent` task (out of sample for `law`).
fn predictor_file(dir: &Path) -> PathBuf {
    let train = read_trace(&root().join("traces/esft/intent.parquet"), None, None)
        .unwrap()
        .first_sequences(20);
    let opts = TrainOptions {
        lookahead: 2,
        ..TrainOptions::default()
    };
    let (set, _) =
        PredictorSet::train(&[&train], Kind::Markov, &opts, &Silent, &mut |_| {}).unwrap();
    let path = dir.join("pred.safetensors");
    set.save(&path).unwrap();
    path
}

/// An EPLB plan for 8 GPUs written by `moeplan place -o`.
fn plan_file(dir: &Path) -> PathBuf {
    let path = dir.join("plan.json");
    let p = path.to_str().unwrap();
    common::moeplan_ok(&[&common::PLACE_SAMPLE[..], &["--method", "eplb", "-o", p]].concat());
    path
}

fn reg(trace: &Trace) -> Register {
    Register::new("files", trace.shape(), 8)
}

fn refused(r: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Refused(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn step_with_routing(
    c: &mut Client,
    sid: u64,
    trace: &Trace,
    t: usize,
    l: usize,
) -> Vec<(u16, u16)> {
    let routing = Routing {
        seqs: vec![0],
        experts: trace.experts(t, l).to_vec(),
        weights: vec![0.5; trace.shape().top_k],
    };
    let step = Step {
        routing: Some(routing),
        ..Step::new(sid, l as u16, trace.experts(t, l).to_vec())
    };
    match c.call(RequestBody::Step(step)).unwrap() {
        ResponseBody::Step(r) => r.prefetch.iter().map(|p| (p.layer, p.expert)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_predictor_file_turns_routing_into_prefetches_of_the_next_layers() {
    let dir = tempfile::tempdir().unwrap();
    let pred = predictor_file(dir.path());
    let trace = sample();
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = c
        .register(Register {
            policy: "predictive".into(),
            predictor: Some(pred.display().to_string()),
            prefetch_top: Some(3),
            ..reg(&trace)
        })
        .unwrap()
        .session;
    let pre = step_with_routing(&mut c, sid, &trace, 0, 0);
    assert_eq!(pre.len(), 3, "{pre:?}");
    assert!(pre.iter().all(|&(l, _)| l == 1 || l == 2), "{pre:?}");
    // The same session without routing gets no predictions.
    let r = c.step(sid, 1, trace.experts(0, 1)).unwrap();
    assert!(r.prefetch.is_empty() || r.prefetch.iter().all(|p| p.layer >= 2));
    // Pulled prefetches: `prefetch` issues what is still queued.
    let p = c.prefetch(sid, 64, true).unwrap();
    assert_eq!(p.queued, 0);
    assert!(c.stats(Some(sid)).unwrap()[0].prefetches >= 3);
}

#[test]
fn a_plan_keeps_other_gpus_experts_out_of_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = plan_file(dir.path());
    let plan = moeplan::placement::PlanFile::read(&plan_path)
        .unwrap()
        .plan()
        .unwrap();
    let trace = sample();
    let d = TestDaemon::start();
    let mut c = d.client();
    let gpu = 3u16;
    let sid = c
        .register(Register {
            plan: Some(plan_path.display().to_string()),
            gpu: Some(gpu),
            ..reg(&trace)
        })
        .unwrap()
        .session;
    let spg = plan.slots_per_gpu;
    let on_gpu = |l: usize, e: u16| {
        plan.layer(l)
            .iter()
            .enumerate()
            .any(|(p, &x)| x == e && p / spg == gpu as usize)
    };
    let (mut remote, mut local) = (0, 0);
    for t in 0..20 {
        for l in 0..trace.shape().moe_layers {
            let r = c.step(sid, l as u16, trace.experts(t, l)).unwrap();
            assert_eq!(r.placements.len(), trace.shape().top_k);
            for p in &r.placements {
                if on_gpu(l, p.expert) {
                    local += 1;
                    assert_ne!(p.state, State::Remote);
                    assert_eq!(p.gpu, Some(gpu));
                } else {
                    remote += 1;
                    assert_eq!(p.state, State::Remote);
                    let g = p.gpu.unwrap() as usize;
                    assert!(
                        plan.layer(l)
                            .iter()
                            .enumerate()
                            .any(|(q, &x)| x == p.expert && q / spg == g)
                    );
                }
            }
            assert!(r.loads.iter().all(|ld| on_gpu(l, ld.expert)));
        }
    }
    assert!(
        local > 0 && remote > local,
        "local {local}, remote {remote}"
    );
    let st = &c.stats(Some(sid)).unwrap()[0];
    assert_eq!(st.demands, local);
}

#[test]
fn bad_files_are_refused_by_name_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let trace = sample();
    let d = TestDaemon::start();
    let mut c = d.client();
    let missing = dir.path().join("nope.safetensors").display().to_string();
    let (code, msg) = refused(c.register(Register {
        predictor: Some(missing.clone()),
        ..reg(&trace)
    }));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains(&missing), "{msg}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    let (code, msg) = refused(c.register(Register {
        predictor: Some(garbage.display().to_string()),
        ..reg(&trace)
    }));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("garbage.safetensors"), "{msg}");

    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, "{\"format\": \"moeplan-plan\", \"version\": 1}").unwrap();
    let (code, msg) = refused(c.register(Register {
        plan: Some(plan.display().to_string()),
        gpu: Some(0),
        ..reg(&trace)
    }));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("plan.json"), "{msg}");

    let good_plan = plan_file(dir.path());
    let (_, msg) = refused(c.register(Register {
        plan: Some(good_plan.display().to_string()),
        gpu: Some(8),
        ..reg(&trace)
    }));
    assert!(msg.contains("gpu 8 out of range"), "{msg}");
    let (_, msg) = refused(c.register(Register {
        plan: Some(good_plan.display().to_string()),
        ..reg(&trace)
    }));
    assert!(msg.contains("needs gpu"), "{msg}");

    // A plan for another model shape.
    let small = moeplan::trace::ModelShape {
        moe_layers: 4,
        experts: 16,
        top_k: 2,
        first_moe_layer: 0,
    };
    let (_, msg) = refused(c.register(Register {
        plan: Some(good_plan.display().to_string()),
        gpu: Some(0),
        ..Register::new("small", &small, 4)
    }));
    assert!(msg.contains("26 MoE layers x 64 experts"), "{msg}");

    // The connection and the daemon still work.
    let sid = c.register(reg(&trace)).unwrap().session;
    c.step(sid, 0, trace.experts(0, 0)).unwrap();
    assert_eq!(d.metric("moeplan_errors_total{code=\"bad_request\"}"), 6.0);
}

#[test]
fn after_a_restart_the_files_are_read_again_and_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, plan) = (predictor_file(dir.path()), plan_file(dir.path()));
    let trace = sample();
    let register = Register {
        policy: "predictive".into(),
        predictor: Some(pred.display().to_string()),
        plan: Some(plan.display().to_string()),
        gpu: Some(1),
        ..reg(&trace)
    };
    let run = |d: &TestDaemon| {
        let mut c = d.client();
        let sid = c.register(register.clone()).unwrap().session;
        let layers = trace.shape().moe_layers;
        (0..2 * layers)
            .map(|i| step_with_routing(&mut c, sid, &trace, i / layers, i % layers))
            .collect::<Vec<_>>()
    };
    let first = TestDaemon::start();
    let before = run(&first);
    first.stop();
    let second = TestDaemon::start();
    assert_eq!(run(&second), before);
    assert!(before.iter().any(|p| !p.is_empty()));
}

#[test]
fn a_register_reading_files_does_not_stall_other_connections() {
    // The predictor "file" is a FIFO: reading it blocks until this test writes to it. On the
    // daemon's single thread, that read would stall every connection; prepared on a blocking
    // thread, another runtime registers and steps meanwhile.
    let d = TestDaemon::start_single();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("slow.safetensors");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let trace = sample();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let (mut c, trace, fifo) = (d.client(), trace.clone(), fifo.clone());
        let answered = answered.clone();
        std::thread::spawn(move || {
            let r = c.register(Register {
                predictor: Some(fifo.to_string_lossy().into_owned()),
                policy: "predictive".into(),
                ..reg(&trace)
            });
            answered.store(true, std::sync::atomic::Ordering::SeqCst);
            refused(r)
        })
    };
    // Another runtime's work, in a thread: were the daemon's thread stuck on the FIFO, it would
    // never finish, and the test unblocks the daemon before failing.
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            d.wait_until("the slow register to reach the daemon", |d| {
                d.metric("moeplan_requests_total{op=\"register\"}") >= 1.0
            });
            let mut other = d.client();
            let sid = other.register(reg(&trace)).unwrap().session;
            for l in 0..trace.shape().moe_layers {
                other.step(sid, l as u16, trace.experts(0, l)).unwrap();
            }
            let early = answered.load(std::sync::atomic::Ordering::SeqCst);
            let _ = tx.send((other, sid, early));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(30));
        if got.is_err() {
            std::fs::write(&fifo, b"x").unwrap();
        }
        got
    });
    let Ok((mut other, sid, early)) = outcome else {
        panic!("another connection stalled while a register read its files");
    };
    assert!(
        !early,
        "the slow register was answered before its file was written"
    );
    std::fs::write(&fifo, b"not a predictor").unwrap();
    let (code, msg) = slow.join().unwrap();
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("slow.safetensors"), "{msg}");
    // The connection and the daemon go on.
    other.step(sid, 0, trace.experts(1, 0)).unwrap();
}
