//! The daemon over a real socket: handshake, sessions, pipelining, TCP with a token, HTTP
//! endpoints, and the decoder under arbitrary bytes (a proptest stand-in for the fuzz target).

mod support;

use moeplan::daemon::client::{Client, ClientError};
use moeplan::daemon::server;
use moeplan::daemon::server::ServerConfig;
use moeplan::daemon::server::{Listener, bind_tcp};
use moeplan::daemon::wire::frame;
use moeplan::daemon::wire::{ErrorCode, RequestBody, ResponseBody, decode_request};
use moeplan::daemon::wire::{Observe, Step};
use proptest::prelude::*;
use support::{TestDaemon, small};

#[test]
fn the_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_session_steps_through_layers_with_consistent_answers() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let r = c.register(small(2)).unwrap();
    assert_eq!(r.slots, 8);
    let mut demands = 0;
    for t in 0..10u16 {
        for layer in 0..4u16 {
            let experts = [t % 16, (t + layer) % 16, t % 16];
            let reply = c.step(r.session, layer, &experts).unwrap();
            let distinct = if experts[0] == experts[1] { 1 } else { 2 };
            assert_eq!(
                reply.placements.len(),
                distinct,
                "a repeated expert is demanded once"
            );
            assert!(
                reply
                    .placements
                    .iter()
                    .all(|p| p.slot.is_none_or(|s| s < r.slots))
            );
            demands += distinct;
            assert_eq!((reply.hits + reply.misses) as usize, distinct);
            for t in &reply.loads {
                if let Some(ev) = t.evict {
                    assert!(
                        ev.layer != layer || !experts.contains(&ev.expert),
                        "a pinned expert was evicted"
                    );
                }
            }
            let loaded: Vec<u16> = reply.loads.iter().map(|t| t.expert).collect();
            c.loaded(r.session, layer, &loaded).unwrap();
        }
    }
    let st = c.close(r.session).unwrap();
    assert_eq!(st.steps, 40);
    assert_eq!(st.demands, demands as u64);
    assert_eq!(st.hits + st.misses, st.demands);
    assert_eq!(st.pending_loads, 0);
    match c.stats(Some(r.session)) {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::UnknownSession),
        other => panic!("closed session still there: {other:?}"),
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_and_observe_is_silent() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = c.register(small(2)).unwrap().session;
    let mut ids = Vec::new();
    for layer in 0..4u16 {
        c.observe(Observe {
            session: sid,
            layer,
            experts: vec![1, 2],
            counts: vec![5, 1],
            pairs: Vec::new(),
        })
        .unwrap();
        let step = Step {
            session: sid,
            layer,
            experts: vec![layer, layer + 4],
            next_scores: None,
            keep_pins: true,
            ..Step::new(0, 0, Vec::new())
        };
        ids.push(c.send(RequestBody::Step(step)).unwrap());
    }
    c.flush().unwrap();
    for id in ids {
        let r = c.recv().unwrap();
        assert_eq!(r.id, id);
        assert!(matches!(r.body, ResponseBody::Step(_)), "{r:?}");
    }
    assert_eq!(c.stats(Some(sid)).unwrap()[0].steps, 4);
    assert_eq!(d.metric("moeplan_requests_total{op=\"observe\"}"), 4.0);
}

#[test]
fn sessions_of_one_connection_are_independent_and_counted_in_metrics() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let a = c.register(small(2)).unwrap().session;
    let b = c.register(small(3)).unwrap().session;
    c.step(a, 0, &[1]).unwrap();
    assert_eq!(c.stats(None).unwrap().len(), 2);
    assert_eq!(c.stats(Some(b)).unwrap()[0].steps, 0);
    assert_eq!(d.metric("moeplan_sessions_active"), 2.0);
    let (status, body) = d.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains(&format!(
        "moeplan_session_steps_total{{session=\"{a}\",name=\"test\"}} 1"
    )));
    assert!(body.contains("moeplan_step_seconds_count 1"));
    assert_eq!(
        d.http_get("/healthz"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    assert!(d.http_get("/nope").0.contains("404"));
}

#[test]
fn bad_register_settings_are_refused() {
    let d = TestDaemon::start();
    let mut c = d.client();
    for r in [
        moeplan::daemon::wire::Register {
            capacity: 0,
            ..small(2)
        },
        moeplan::daemon::wire::Register {
            top_k: 17,
            ..small(2)
        },
        moeplan::daemon::wire::Register {
            moe_layers: 0,
            ..small(2)
        },
    ] {
        match c.register(r) {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::BadRequest, "{e}"),
            other => panic!("expected bad_request, got {other:?}"),
        }
    }
}

#[test]
fn tcp_needs_the_token() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = rt
        .block_on(bind_tcp("127.0.0.1:0".parse().unwrap(), false))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let server = rt.spawn(server::run(Listener::Tcp(listener), None, config, async {
        let _ = stop_rx.await;
    }));
    match Client::connect_tcp(addr, "wrong") {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::Unauthorized),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    let mut c = Client::connect_tcp(addr, "s3cret").unwrap();
    let sid = c.register(small(2)).unwrap().session;
    c.step(sid, 0, &[1, 2]).unwrap();
    drop(c);
    stop_tx.send(()).unwrap();
    let report = rt.block_on(server).unwrap();
    assert_eq!(report.connections, 2);
    assert!(
        rt.block_on(bind_tcp("0.0.0.0:0".parse().unwrap(), false))
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Arbitrary bytes through the frame decoder and the request decoder never panic.
    #[test]
    fn the_decoder_survives_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut rest = &data[..];
        while let Ok(Some(len)) = frame::check(rest, 256) {
            let _ = decode_request(frame::body(rest, len));
            rest = &rest[frame::HEADER_LEN + len..];
        }
    }

    /// Mutated valid requests never panic the decoder either.
    #[test]
    fn the_decoder_survives_mutated_requests(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6)) {
        let req = moeplan::daemon::wire::Request {
            id: 77,
            body: RequestBody::Step(Step {
                next_scores: Some(vec![0.5; 4]),
                routing: Some(moeplan::daemon::wire::Routing { seqs: vec![9], experts: vec![1, 2], weights: vec![0.7, 0.3] }),
                prefetch: Some(2),
                ..Step::new(1, 3, vec![1, 2, 3])
            }),
        };
        let mut body = rmp_serde::to_vec_named(&req).unwrap();
        prop_assert_eq!(decode_request(&body).unwrap(), req);
        for (i, b) in flips {
            let n = body.len();
            body[i % n] = b;
        }
        // What still decodes re-encodes to a frame that decodes to the same bytes again.
        if let Ok(r) = decode_request(&body) {
            let once = rmp_serde::to_vec_named(&r).unwrap();
            let again = rmp_serde::to_vec_named(&decode_request(&once).unwrap()).unwrap();
            prop_assert_eq!(once, again);
        }
        let _ = moeplan::daemon::wire::decode_response(&body);
    }
}
