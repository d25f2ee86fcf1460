//! Importers and exporters: real ESFT data in, lossless round trips, one test per kind of bad input.

use std::path::{Path, PathBuf};

use moeplan::trace::{Defect, Format, Trace, TraceError, read_trace, write_trace};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bad(name: &str) -> PathBuf {
    root().join("tests/fixtures/bad").join(name)
}

fn read(p: &Path) -> Result<Trace, TraceError> {
    read_trace(p, None, None)
}

/// Asserts that reading `name` fails naming `file_suffix`, `line` and a field starting with `field`.
fn expect_invalid(
    name: &str,
    file_suffix: &str,
    line: u64,
    field: &str,
    check: impl Fn(&Defect) -> bool,
) {
    match read(&bad(name)) {
        Err(TraceError::Invalid {
            path,
            line: l,
            field: f,
            problem,
        }) => {
            assert!(
                path.ends_with(file_suffix),
                "{name}: path {path:?} should end with {file_suffix}"
            );
            assert_eq!(l, line, "{name}: line");
            assert!(
                f.starts_with(field),
                "{name}: field {f:?} should start with {field:?}"
            );
            assert!(check(&problem), "{name}: unexpected problem {problem:?}");
            let msg = TraceError::Invalid {
                path,
                line: l,
                field: f,
                problem,
            }
            .to_string();
            assert!(
                msg.contains(&format!(":{line}:")),
                "message names the line: {msg}"
            );
        }
        other => panic!("{name}: expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn real_esft_excerpt_loads_with_exact_counts() {
    let t = read(&root().join("traces/esft-excerpt")).unwrap();
    // The excerpt is the first 3 sequences of the ESFT intent task: 64 + 63 + 63 tokens.
    assert_eq!(t.num_tokens(), 190);
    assert_eq!(t.num_sequences(), 3);
    assert_eq!(t.shape().moe_layers, 26);
    // First token of layer 1 in the source file: ids 2 7 39 40 61 3 is the first line's start;
    // the stored top-k holds the same set, ordered by weight.
    let raw =
        std::fs::read_to_string(root().join("traces/esft-excerpt/expert_weights_1.txt")).unwrap();
    let first: Vec<u16> = raw
        .split('\t')
        .take(6)
        .map(|x| x.parse().unwrap())
        .collect();
    let mut got = t.experts(0, 0).to_vec();
    let mut want = first.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let w: Vec<u16> = t.weights_q(0, 0).to_vec();
    assert!(
        w.windows(2).all(|p| p[0] >= p[1]),
        "top-k ordered by weight: {w:?}"
    );
}

#[test]
fn shipped_tasks_have_the_published_token_counts() {
    for (task, tokens) in [("intent", 8222), ("law", 8327), ("summary", 8479)] {
        let t = read(&root().join(format!("traces/esft/{task}.parquet"))).unwrap();
        assert_eq!(t.num_tokens(), tokens, "{task}");
        assert_eq!(t.shape().moe_layers, 26);
    }
}

#[test]
fn round_trips_are_lossless() {
    let t = read(&root().join("traces/esft-excerpt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, fmt) in [
        ("t.parquet", Format::Parquet),
        ("t.jsonl", Format::Jsonl),
        ("esft", Format::Esft),
    ] {
        let p = dir.path().join(name);
        write_trace(&t, &p, Some(fmt)).unwrap();
        let back = read_trace(&p, Some(fmt), None).unwrap();
        assert_eq!(back, t, "{name} round trip");
        if fmt != Format::Esft {
            assert_eq!(Format::detect(&p).unwrap(), fmt);
        }
    }
}

#[test]
fn good_fixtures_load() {
    assert_eq!(read(&bad("esft_good")).unwrap().num_tokens(), 6);
    assert_eq!(read(&bad("jsonl_good.jsonl")).unwrap().num_tokens(), 3);
}

#[test]
fn esft_expert_out_of_range() {
    expect_invalid(
        "esft_expert_out_of_range",
        "expert_weights_2.txt",
        2,
        "ids[15]",
        |p| {
            matches!(
                p,
                Defect::ExpertOutOfRange {
                    id: 64,
                    experts: 64
                }
            )
        },
    );
}

#[test]
fn esft_repeated_expert() {
    expect_invalid(
        "esft_repeated_expert",
        "expert_weights_1.txt",
        1,
        "ids[10]",
        |p| matches!(p, Defect::RepeatedExpert { .. }),
    );
}

#[test]
fn esft_token_count_mismatch() {
    expect_invalid(
        "esft_token_count_mismatch",
        "expert_weights_2.txt",
        2,
        "tokens",
        |p| {
            matches!(
                p,
                Defect::TokenCountMismatch {
                    expected: 3,
                    found: 2,
                    ..
                }
            )
        },
    );
}

#[test]
fn esft_nonfinite_weight() {
    expect_invalid(
        "esft_nonfinite_weight",
        "expert_weights_1.txt",
        2,
        "weights[2]",
        |p| matches!(p, Defect::NonFiniteWeight { .. }),
    );
}

#[test]
fn esft_weight_out_of_range() {
    expect_invalid(
        "esft_weight_out_of_range",
        "expert_weights_2.txt",
        1,
        "weights[17]",
        |p| matches!(p, Defect::WeightOutOfRange { .. }),
    );
}

#[test]
fn esft_truncated_line() {
    expect_invalid(
        "esft_truncated_line",
        "expert_weights_2.txt",
        2,
        "weights[15]",
        |p| matches!(p, Defect::Truncated { .. }),
    );
}

#[test]
fn esft_no_separator() {
    expect_invalid(
        "esft_no_separator",
        "expert_weights_1.txt",
        1,
        "separator",
        |p| matches!(p, Defect::Truncated { .. }),
    );
}

#[test]
fn esft_missing_lines() {
    expect_invalid(
        "esft_missing_lines",
        "expert_weights_2.txt",
        2,
        "line",
        |p| matches!(p, Defect::Truncated { .. }),
    );
}

#[test]
fn esft_empty_file() {
    match read(&bad("esft_empty_file")) {
        Err(TraceError::File {
            path,
            problem: Defect::Empty(_),
        }) => assert!(path.ends_with("expert_weights_2.txt")),
        other => panic!("expected an empty-file error, got {other:?}"),
    }
}

#[test]
fn jsonl_expert_out_of_range() {
    expect_invalid(
        "jsonl_expert_out_of_range.jsonl",
        "jsonl_expert_out_of_range.jsonl",
        3,
        "experts[1][2]",
        |p| matches!(p, Defect::ExpertOutOfRange { id: -1, .. }),
    );
}

#[test]
fn jsonl_missing_layer() {
    expect_invalid(
        "jsonl_missing_layer.jsonl",
        "jsonl_missing_layer.jsonl",
        4,
        "experts",
        |p| matches!(p, Defect::Truncated { .. }),
    );
}

#[test]
fn jsonl_weight_out_of_range() {
    expect_invalid(
        "jsonl_weight_out_of_range.jsonl",
        "jsonl_weight_out_of_range.jsonl",
        2,
        "weights[0][1]",
        |p| matches!(p, Defect::WeightOutOfRange { .. }),
    );
}

#[test]
fn jsonl_position_order() {
    expect_invalid(
        "jsonl_position_order.jsonl",
        "jsonl_position_order.jsonl",
        4,
        "seq",
        |_| true,
    );
}

#[test]
fn jsonl_bad_header_names_the_missing_key() {
    let e = read(&bad("jsonl_bad_header.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(":1:") && e.contains("first_moe_layer"), "{e}");
}

#[test]
fn jsonl_truncated_and_empty() {
    expect_invalid(
        "jsonl_truncated.jsonl",
        "jsonl_truncated.jsonl",
        4,
        "token",
        |_| true,
    );
    assert!(matches!(
        read(&bad("jsonl_empty.jsonl")),
        Err(TraceError::File {
            problem: Defect::Empty(_),
            ..
        })
    ));
}

/// Writes a 2-token, 2-layer canonical Parquet file whose row `bad_row` (1-based) has expert
/// `bad_expert` in slot 0.
fn write_parquet_with(path: &Path, bad_row: usize, bad_expert: i32) {
    use std::sync::Arc;

    use arrow_array::builder::{Float32Builder, Int32Builder, ListBuilder};
    use arrow_array::{ArrayRef, Int16Array, Int32Array, Int64Array, RecordBatch};
    use moeplan::trace::parquet::{PARQUET_VERSION, SHAPE_KEY, VERSION_KEY, schema};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;

    let schema = Arc::new(schema());
    let mut eb = ListBuilder::new(Int32Builder::new());
    let mut wb = ListBuilder::new(Float32Builder::new());
    for row in 1..=4 {
        for j in 0..6 {
            eb.values().append_value(if row == bad_row && j == 0 {
                bad_expert
            } else {
                j * 3 + row as i32
            });
            wb.values().append_value(0.1);
        }
        eb.append(true);
        wb.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0, 0, 1, 1])),
        Arc::new(Int64Array::from(vec![0, 0, 0, 0])),
        Arc::new(Int32Array::from(vec![0, 0, 1, 1])),
        Arc::new(Int16Array::from(vec![0, 1, 0, 1])),
        Arc::new(eb.finish()),
        Arc::new(wb.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let shape = r#"{"moe_layers":2,"experts":64,"top_k":6,"first_moe_layer":1}"#;
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![
            KeyValue::new(VERSION_KEY.to_string(), PARQUET_VERSION.to_string()),
            KeyValue::new(SHAPE_KEY.to_string(), shape.to_string()),
        ]))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_names_the_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_parquet_with(&good, 0, 0);
    assert_eq!(read(&good).unwrap().num_tokens(), 2);
    let badp = dir.path().join("bad.parquet");
    write_parquet_with(&badp, 3, 99);
    match read(&badp) {
        Err(TraceError::Invalid {
            line: 3,
            field,
            problem: Defect::ExpertOutOfRange { id: 99, .. },
            ..
        }) => {
            assert_eq!(field, "experts[0]")
        }
        other => panic!("expected row 3 to be rejected, got {other:?}"),
    }
    let wrong_shape = moeplan::trace::ModelShape {
        moe_layers: 2,
        experts: 128,
        top_k: 6,
        first_moe_layer: 1,
    };
    let e = read_trace(&good, None, Some(&wrong_shape))
        .unwrap_err()
        .to_string();
    assert!(e.contains("differs"), "{e}");
}
