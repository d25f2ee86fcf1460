//! The data plane moves the right bytes: each test is written once against the trait and run on
//! every backend; the CUDA ones skip (saying so) when the binary has no CUDA or the machine no
//! driver or device.

mod common;

use std::path::Path;
use std::time::Duration;

use moeplan::dataplane::{Backend, DataPlane, DataPlaneError, ExpertStore, open};

fn model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::moeplan_ok(&[
        "model",
        "init",
        "--scale",
        "0.015625",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    dir
}

fn store(dir: &Path) -> ExpertStore {
    ExpertStore::open(&dir.join("experts.safetensors"), 1, 26, 64).unwrap()
}

/// The plane on `backend`, or `None` (with a note) when this build or machine has none; with
/// `MOEPLAN_REQUIRE_CUDA` set (scripts/gpu-check.sh) a missing plane fails instead.
fn plane(backend: Backend, dir: &Path, slots: usize) -> Option<Box<dyn DataPlane>> {
    match open(backend, store(dir), slots) {
        Ok(p) => Some(p),
        Err(e) if std::env::var_os("MOEPLAN_REQUIRE_CUDA").is_some() => panic!("{backend:?}: {e}"),
        Err(
            e @ (DataPlaneError::NotBuiltWithCuda
            | DataPlaneError::NoDriver
            | DataPlaneError::Cuda(_)),
        ) => {
            eprintln!("skipped on {backend:?}: {e}");
            None
        }
        Err(e) => panic!("{backend:?}: {e}"),
    }
}

fn expected(s: &ExpertStore, layer: u16, expert: u16) -> Vec<u8> {
    s.projections(layer as usize * 64 + expert as usize)
        .concat()
}

fn slots_hold_the_stores_bytes(backend: Backend) {
    let dir = model();
    let Some(mut p) = plane(backend, dir.path(), 8) else {
        return;
    };
    let s = store(dir.path());
    let eb = s.expert_bytes();
    assert_eq!(p.expert_bytes(), eb);
    // Every slot loaded, some twice (the later load wins), in one burst.
    let want = [
        (0u16, 0u16),
        (3, 17),
        (25, 63),
        (7, 1),
        (0, 0),
        (12, 40),
        (12, 41),
        (1, 2),
    ];
    for (i, &(l, e)) in want.iter().enumerate() {
        p.load(i as u32, l, e).unwrap();
    }
    p.load(1, 4, 4).unwrap();
    p.wait_all().unwrap();
    for (i, &(l, e)) in want.iter().enumerate() {
        let (l, e) = if i == 1 { (4, 4) } else { (l, e) };
        assert!(p.is_ready(i as u32).unwrap());
        assert_eq!(p.content(i as u32), Some((l, e)));
        let mut got = Vec::new();
        p.read(i as u32, &mut |b| got.extend_from_slice(b)).unwrap();
        assert!(
            got == expected(&s, l, e),
            "slot {i} holds the bytes of ({l}, {e})"
        );
    }
    let st = p.stats();
    assert_eq!((st.copies, st.bytes), (9, 9 * eb as u64));
    assert!(st.busy_s > 0.0 && st.bandwidth_gbps() > 0.0);
}

fn unready_and_bad_slots_are_refused(backend: Backend) {
    let dir = model();
    let Some(mut p) = plane(backend, dir.path(), 2) else {
        return;
    };
    assert!(matches!(
        p.read(0, &mut |_| ()),
        Err(DataPlaneError::NotReady { why: "empty", .. })
    ));
    assert!(matches!(p.wait(1), Err(DataPlaneError::NotReady { .. })));
    assert!(matches!(
        p.load(2, 0, 0),
        Err(DataPlaneError::Slot { slot: 2, slots: 2 })
    ));
    assert!(matches!(
        p.load(0, 26, 0),
        Err(DataPlaneError::Expert { layer: 26, .. })
    ));
    p.load(0, 5, 5).unwrap();
    let waited = p.wait(0).unwrap();
    assert!(waited < Duration::from_secs(10));
    p.evict(0).unwrap();
    assert!(!p.is_ready(0).unwrap());
    assert!(
        p.read(0, &mut |_| ()).is_err(),
        "an evicted slot is not read"
    );
}

/// A read never sees a slot while its copy is in flight: many loads into a slot, each read
/// after `wait`, always the last expert's bytes; reads right after `load` are either refused
/// (loading) or whole.
fn reads_never_see_a_copy_in_flight(backend: Backend) {
    let dir = model();
    let Some(mut p) = plane(backend, dir.path(), 2) else {
        return;
    };
    let s = store(dir.path());
    for i in 0..64u16 {
        p.load(0, i % 26, i).unwrap();
        match p.read(0, &mut |_| ()) {
            Ok(()) | Err(DataPlaneError::NotReady { why: "loading", .. }) => {}
            Err(e) => panic!("{e}"),
        }
        p.wait(0).unwrap();
        let mut got = Vec::new();
        p.read(0, &mut |b| got.extend_from_slice(b)).unwrap();
        assert!(got == expected(&s, i % 26, i));
    }
}

macro_rules! on_every_backend {
    ($($name:ident),*) => {
        mod host {
            $(#[test] fn $name() { super::$name(moeplan::dataplane::Backend::Host) })*
        }
        mod cuda {
            $(#[test] fn $name() { super::$name(moeplan::dataplane::Backend::Cuda) })*
        }
    };
}

on_every_backend!(
    slots_hold_the_stores_bytes,
    unready_and_bad_slots_are_refused,
    reads_never_see_a_copy_in_flight
);

#[test]
fn cuda_errors_say_what_is_missing() {
    let dir = model();
    match open(Backend::Cuda, store(dir.path()), 1) {
        Ok(p) => assert_eq!(p.name(), "cuda"),
        Err(e) => {
            let m = e.to_string();
            if cfg!(feature = "cuda") {
                assert!(!matches!(e, DataPlaneError::NotBuiltWithCuda), "{m}");
            } else {
                assert!(
                    m.contains("built without CUDA") && m.contains("--features cuda"),
                    "{m}"
                );
            }
        }
    }
}

#[test]
fn a_bad_store_is_named() {
    let dir = model();
    let e = ExpertStore::open(&dir.path().join("dense.safetensors"), 1, 26, 64).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("dense.safetensors")
            && m.contains("model.layers.1.mlp.experts.0.gate_proj.weight missing"),
        "{m}"
    );
    let e = ExpertStore::open(&dir.path().join("config.json"), 1, 26, 64).unwrap_err();
    assert!(e.to_string().contains("not safetensors"), "{e}");
}
