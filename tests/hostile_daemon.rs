//! Probes of a hostile local user against the daemon: shapes that would exhaust memory, replies
//! over the frame limit (steps and prefetches), idle connections, idle metrics scrapers, two
//! daemons on one socket, unbounded names, an unwritable stats file, a shutdown stuck on a FIFO,
//! and `--busy-poll` under CPU contention. Everything has a deadline.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use moeplan::daemon::client::{Client, ClientError};
use moeplan::daemon::server::ServerConfig;
use moeplan::daemon::wire::ErrorCode;
use moeplan::daemon::wire::{Register, RequestBody, State, Step, transfers_within};
use moeplan::trace::ModelShape;
use support::TestDaemon;

fn shape() -> ModelShape {
    ModelShape {
        moe_layers: 4,
        experts: 64,
        top_k: 2,
        first_moe_layer: 0,
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Refused(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_register_of_a_huge_shape_is_refused_and_the_daemon_serves_on() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let mut huge = Register::new("huge", &shape(), 1);
    huge.moe_layers = 65534;
    huge.experts = 65535;
    huge.top_k = 1;
    huge.policy = "lfu".into();
    let (code, msg) = refused(c.register(huge));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(
        msg.contains("moe_layers") || msg.contains("experts"),
        "{msg}"
    );
    let sid = c
        .register(Register::new("ok", &shape(), 4))
        .unwrap()
        .session;
    c.step(sid, 0, &[1, 2]).unwrap();
}

#[test]
fn a_step_whose_reply_could_exceed_the_frame_limit_changes_nothing() {
    let d = TestDaemon::start_with(ServerConfig {
        max_frame: 1024,
        ..Default::default()
    });
    let mut c = d.client();
    let sid = c
        .register(Register::new("s", &shape(), 64))
        .unwrap()
        .session;
    let all: Vec<u16> = (0..64).collect();
    let (code, msg) = refused(c.step(sid, 0, &all));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("nothing was changed"), "{msg}");
    // Nothing was loaded or pinned: the same experts are misses, not in-flight hits.
    let r = c.step(sid, 0, &[0, 1]).unwrap();
    assert_eq!((r.hits, r.misses), (0, 2), "{r:?}");
    assert!(
        r.placements.iter().all(|p| p.state == State::Loading),
        "{r:?}"
    );
    let stats = c.stats(Some(sid)).unwrap();
    assert_eq!(stats[0].steps, 1);
}

#[test]
fn a_prefetch_reply_never_exceeds_the_frame_limit_and_the_rest_stays_queued() {
    let d = TestDaemon::start_with(ServerConfig {
        max_frame: 1024,
        ..Default::default()
    });
    let mut c = d.client();
    let mut reg = Register::new("p", &shape(), 64);
    reg.prefetch_top = Some(64);
    let sid = c.register(reg).unwrap().session;
    // Queue every expert of layer 1, issue none yet.
    let mut step = Step::new(sid, 0, vec![0]);
    step.next_scores = Some(vec![1.0; 64]);
    step.prefetch = Some(0);
    c.call(RequestBody::Step(step)).unwrap();
    let fit = transfers_within(1024);
    let mut issued = std::collections::BTreeSet::new();
    let mut replies = 0;
    loop {
        // Asking for all 64 at once used to issue them, then refuse the oversized reply.
        let r = c.prefetch(sid, 64, false).unwrap();
        assert!(r.transfers.len() <= fit, "{} > {fit}", r.transfers.len());
        for t in &r.transfers {
            assert!(issued.insert((t.layer, t.expert)), "{t:?} twice");
        }
        replies += 1;
        if r.queued == 0 || r.transfers.is_empty() {
            break;
        }
    }
    assert!(issued.len() > fit && replies > 1, "{issued:?}");
    // The daemon counts exactly the transfers the runtime was told of.
    let stats = c.stats(Some(sid)).unwrap();
    assert_eq!(stats[0].prefetches, issued.len() as u64);
}

#[test]
fn session_names_are_bounded() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let (code, msg) = refused(c.register(Register::new("x".repeat(100_000), &shape(), 4)));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("at most 256"), "{msg}");
    c.register(Register::new("x".repeat(256), &shape(), 4))
        .unwrap();
}

#[test]
fn idle_connections_that_never_say_hello_cannot_hold_every_slot() {
    let d = TestDaemon::start_with(ServerConfig {
        max_connections: 8,
        max_pending_handshakes: 4,
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    // More idle connections than the pre-handshake budget: past the grace period, the extra
    // ones are refused.
    let mut idle: Vec<_> = (0..6).map(|_| d.raw()).collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(150));
    // A real runtime still gets in (slots beyond the pending budget stay free for it).
    let mut c = d.client();
    let sid = c
        .register(Register::new("rt", &shape(), 4))
        .unwrap()
        .session;
    c.step(sid, 0, &[1]).unwrap();
    // Every idle connection is closed by the deadline (an error frame, then end of stream).
    for s in &mut idle {
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        assert!(!buf.is_empty());
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(d.metric("moeplan_errors_total{code=\"handshake_required\"}") >= 1.0);
    assert!(d.metric("moeplan_errors_total{code=\"limit_reached\"}") >= 2.0);
}

#[test]
fn idle_metrics_connections_are_bounded() {
    let d = TestDaemon::start_with(ServerConfig {
        max_metrics_connections: 4,
        ..Default::default()
    });
    let idle: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(d.metrics).unwrap())
        .collect();
    // Those beyond the budget are closed at once (read gives end of stream, no reply).
    let mut closed = 0;
    for s in &idle {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 16];
        if matches!((&*s).read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert!(closed >= 36, "{closed} of 40 closed");
    // Runtimes are unaffected.
    let mut c = d.client();
    c.register(Register::new("rt", &shape(), 4)).unwrap();
}

fn serve(socket: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_moeplan"))
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(socket: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect_unix(socket) {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "daemon not up: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn term(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn two_daemons_started_together_on_one_path_leave_exactly_one() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("d.sock");
        let mut a = serve(&socket, &[]);
        let mut b = serve(&socket, &[]);
        // One of them exits at once with an error; the other serves.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut alive, gone) = loop {
            if let Some(s) = a.try_wait().unwrap() {
                break (b, s);
            }
            if let Some(s) = b.try_wait().unwrap() {
                break (a, s);
            }
            assert!(Instant::now() < deadline, "both daemons stayed up");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!gone.success());
        let mut c = connect(&socket);
        c.register(Register::new("rt", &shape(), 4)).unwrap();
        drop(c);
        assert!(alive.try_wait().unwrap().is_none(), "the survivor exited");
        term(&alive);
        assert!(wait(&mut alive, Duration::from_secs(15)).unwrap().success());
    }
}

#[test]
fn serve_checks_that_stats_out_is_writable_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let mut d = serve(&socket, &["--stats-out", "/nonexistent-dir/stats.json"]);
    let status = wait(&mut d, Duration::from_secs(10)).expect("serve exits at once");
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    d.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("--stats-out"), "{err}");
}

#[test]
fn sigterm_ends_the_daemon_while_a_register_reads_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let fifo = dir.path().join("never.safetensors");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut d = serve(&socket, &[]);
    let mut c = connect(&socket);
    let fifo_s = fifo.to_string_lossy().into_owned();
    let blocked = std::thread::spawn(move || {
        let r = Register {
            predictor: Some(fifo_s),
            ..Register::new("fifo", &shape(), 4)
        };
        let _ = c.register(r);
    });
    std::thread::sleep(Duration::from_millis(500));
    term(&d);
    let status = wait(&mut d, Duration::from_secs(20));
    // Unblock the reader thread whatever happened.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&fifo);
    assert!(status.is_some(), "the daemon did not exit after SIGTERM");
    assert!(!socket.exists());
    let _ = blocked.join();
}

/// Opening a FIFO for writing without a reader would block: open it non-blocking.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(0o4000) // O_NONBLOCK on Linux
    }
}

#[test]
fn busy_poll_falls_back_to_sleeping_under_cpu_contention() {
    let d = TestDaemon::start_on_busy_poll();
    // More spinning threads than cores: the daemon's spinning thread is descheduled often.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2 * cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    let seen = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let n = d.metric("moeplan_busy_poll_fallbacks_total");
            if n >= 1.0 || Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    assert!(seen >= 1.0, "no fallback under contention");
    // The daemon still answers.
    let mut c = d.client();
    let sid = c
        .register(Register::new("rt", &shape(), 4))
        .unwrap()
        .session;
    c.step(sid, 0, &[1]).unwrap();
}

#[test]
fn live_sessions_share_a_memory_budget() {
    // Budget for two sessions of 4 x 64 keys.
    let d = TestDaemon::start_with(ServerConfig {
        max_live_keys: 512,
        ..Default::default()
    });
    let mut c = d.client();
    let a = c.register(Register::new("a", &shape(), 4)).unwrap().session;
    c.register(Register::new("b", &shape(), 4)).unwrap();
    let (code, msg) = refused(c.register(Register::new("c", &shape(), 4)));
    assert_eq!(code, ErrorCode::LimitReached);
    assert!(msg.contains("budget of 512"), "{msg}");
    c.close(a).unwrap();
    c.register(Register::new("c", &shape(), 4)).unwrap();
}
