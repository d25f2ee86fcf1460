//! Engine-recorded routing, read from the checked-in fixtures of tests/fixtures/engines (made by
//! scripts/make-engine-fixtures.py with the real torch.save and numpy.save): each reads to the
//! trace the script says it holds, and each broken file is refused naming file, record and field.

use std::path::{Path, PathBuf};

use moeplan::trace::{Format, ModelShape, Trace, TraceError, read_trace, write_trace};

mod common;
use common::moeplan;

const DIR: &str = "tests/fixtures/engines";

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name)
}

fn tiny() -> ModelShape {
    ModelShape {
        moe_layers: 3,
        experts: 8,
        top_k: 2,
        first_moe_layer: 1,
    }
}

fn expected(name: &str) -> Trace {
    read_trace(&fx(name), Some(Format::Jsonl), None).unwrap()
}

fn err(name: &str, shape: Option<&ModelShape>) -> String {
    let e: TraceError = read_trace(&fx(name), None, shape).unwrap_err();
    e.to_string()
}

#[test]
fn a_per_token_dump_reads_to_the_recorded_sequences() {
    let t = read_trace(&fx("sglang-per-token.pt"), None, None).unwrap();
    assert!(!t.has_weights());
    assert_eq!(
        t.shape(),
        &tiny(),
        "shape inferred from the map and the records"
    );
    assert_eq!(t, expected("sglang-per-token-expected.jsonl"));
    // Sequence 2 started after a cached prefix: its first position is 3.
    let starts: Vec<u32> = t.sequences().map(|r| t.position(r.start)).collect();
    assert_eq!(starts, vec![0, 0, 3]);
    // With --model the same shape is checked, not inferred.
    assert_eq!(
        read_trace(&fx("sglang-per-token.pt"), None, Some(&tiny())).unwrap(),
        t
    );
}

#[test]
fn tensor_parallel_ranks_merge_into_one_trace() {
    let dir = fx("sglang-tp");
    assert_eq!(Format::detect(&dir).unwrap(), Format::SglangDump);
    let t = read_trace(&dir, None, None).unwrap();
    assert_eq!(t, expected("sglang-per-token-expected.jsonl"));
}

#[test]
fn a_model_that_disagrees_with_the_dump_is_refused() {
    let mut s = tiny();
    s.experts = 16;
    assert!(
        err("sglang-per-token.pt", Some(&s)).contains("names 8 logical experts, the model has 16")
    );
    let mut s = tiny();
    s.first_moe_layer = 0;
    assert!(
        err("sglang-per-token.pt", Some(&s)).contains("4 layers, the model has 3 decoder layers")
    );
}

#[test]
fn broken_dumps_name_file_record_and_field() {
    let cases = [
        (
            "bad-uncovered-id.pt",
            "bad-uncovered-id.pt:4: field `records[3].topk_ids_of_layer[2][1][0]`: physical expert 12 outside the map's 10 slots",
        ),
        (
            "bad-dense-routed.pt",
            "bad-dense-routed.pt:1: field `records[0].topk_ids_of_layer[0][0][0]`: dense layer 0",
        ),
        (
            "bad-float-topk.pt",
            "bad-float-topk.pt:2: field `records[1].topk_ids_of_layer`: expected an integer tensor, found torch.float32",
        ),
        (
            "bad-2d-topk.pt",
            "bad-2d-topk.pt:5: field `records[4].topk_ids_of_layer`: expected 3 dimensions",
        ),
        (
            "bad-extend-lens.pt",
            "bad-extend-lens.pt:1: field `records[0].extend_seq_lens`: lengths add up to 6, the record has 5 tokens",
        ),
        ("bad-global.pt", "global posix.system is not allowed"),
        (
            "bad-truncated.pt",
            "bad-truncated.pt: not a torch.save zip archive",
        ),
        ("bad-corrupt.pt", "bad-corrupt.pt: "),
    ];
    for (file, want) in cases {
        let e = err(file, Some(&tiny()));
        assert!(e.contains(want), "{file}: {e}");
    }
}

#[test]
fn ranks_that_disagree_are_refused() {
    let e = read_trace(&fx("bad-ranks-disagree"), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("_1.pt:3: field `records[2].topk_ids_of_layer`: ranks disagree"),
        "{e}"
    );
}

#[test]
fn sglang_responses_decode_raw_int32_with_the_models_shape() {
    let p = fx("sglang-responses.jsonl");
    assert_eq!(Format::detect(&p).unwrap(), Format::Responses);
    let t = read_trace(&p, None, Some(&tiny())).unwrap();
    assert_eq!(t, expected("sglang-responses-expected.jsonl"));
    assert!(err("sglang-responses.jsonl", None).contains("pass --model"));
}

#[test]
fn vllm_responses_and_npy_decode_to_the_same_trace() {
    let want = expected("vllm-responses-expected.jsonl");
    assert_eq!(
        read_trace(&fx("vllm-responses.jsonl"), None, Some(&tiny())).unwrap(),
        want
    );
    assert_eq!(Format::detect(&fx("vllm-routed.npy")).unwrap(), Format::Npy);
    assert_eq!(
        read_trace(&fx("vllm-routed.npy"), None, Some(&tiny())).unwrap(),
        want
    );
}

#[test]
fn broken_responses_name_line_and_field() {
    let s = Some(tiny());
    let e = err("bad-responses-length.jsonl", s.as_ref());
    assert!(
        e.contains(":2: field `meta_info.routed_experts`: 124 bytes of raw int32"),
        "{e}"
    );
    let e = err("bad-responses-missing.jsonl", s.as_ref());
    assert!(e.contains(":2: field `routed_experts`: missing"), "{e}");
    let e = err("bad-responses-dense.jsonl", s.as_ref());
    assert!(
        e.contains(":1: field `meta_info.routed_experts[1][0][1]`: dense layer 0 holds expert 3"),
        "{e}"
    );
    let e = err("bad-routed-layers.npy", s.as_ref());
    assert!(e.contains("field `array shape`: array of shape [3, 3, 2], the model needs [tokens, 4 decoder layers, top-2]"), "{e}");
}

#[test]
fn imported_traces_keep_no_weights_through_parquet_and_jsonl() {
    let t = read_trace(&fx("sglang-per-token.pt"), None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["t.parquet", "t.jsonl"] {
        let p = dir.path().join(name);
        write_trace(&t, &p, None).unwrap();
        let back = read_trace(&p, None, None).unwrap();
        assert!(!back.has_weights(), "{name}");
        assert_eq!(back, t, "{name}");
    }
    let esft = write_trace(&t, &dir.path().join("esft"), Some(Format::Esft)).unwrap_err();
    assert!(esft.to_string().contains("needs gate weights"), "{esft}");
}

#[test]
fn trace_import_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("served.parquet");
    let run = moeplan()
        .args(["trace", "import", "-t"])
        .arg(fx("sglang-tp"))
        .args(["--model", "tests/fixtures/engines/tiny-moe.toml", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        read_trace(&out, None, None).unwrap(),
        expected("sglang-per-token-expected.jsonl")
    );
    // A broken dump is bad input: exit code 3, the file named.
    let run = moeplan()
        .args(["trace", "stats", "-t"])
        .arg(fx("bad-uncovered-id.pt"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&run.stderr).contains("bad-uncovered-id.pt:4"));
}
