//! The canonical Parquet reader, whole and streamed: one validation for both (same tokens, same
//! errors), traces with and without gate weights, and nulls named by file, row group, row and field.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, Int32Builder, ListBuilder};
use arrow_array::{ArrayRef, Int16Array, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use moeplan::trace::parquet::{PARQUET_VERSION, SHAPE_KEY, VERSION_KEY, read_chunks};
use moeplan::trace::{Defect, Format, Trace, TraceError, read_trace, write_trace};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every chunk `read_chunks` hands over, in order, with the token ids it gave for them.
fn chunks(path: &Path, chunk_tokens: usize) -> Result<Vec<(Trace, Vec<i64>)>, TraceError> {
    let mut out = Vec::new();
    read_chunks(path, None, chunk_tokens, &mut |t, ids| {
        out.push((t, ids.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

/// Asserts the chunks hold exactly the tokens of `whole`, in order, with ids 0, 1, ...
fn assert_same_tokens(whole: &Trace, parts: &[(Trace, Vec<i64>)], chunk_tokens: usize) {
    let layers = whole.shape().moe_layers;
    let mut t = 0;
    for (c, ids) in parts {
        assert!(c.num_tokens() <= chunk_tokens);
        assert_eq!(c.has_weights(), whole.has_weights());
        assert_eq!(ids.len(), c.num_tokens());
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(id, t as i64);
            assert_eq!(c.seq_id(i), whole.seq_id(t), "token {t}");
            assert_eq!(c.position(i), whole.position(t), "token {t}");
            for l in 0..layers {
                assert_eq!(c.experts(i, l), whole.experts(t, l), "token {t} layer {l}");
                assert_eq!(
                    c.weights_q(i, l),
                    whole.weights_q(t, l),
                    "token {t} layer {l}"
                );
            }
            t += 1;
        }
    }
    assert_eq!(t, whole.num_tokens());
}

#[test]
fn streamed_reading_gives_the_whole_trace_with_weights() {
    let path = root().join("traces/sample.parquet");
    let whole = read_trace(&path, None, None).unwrap();
    assert!(whole.has_weights());
    let parts = chunks(&path, 1000).unwrap();
    assert!(parts.len() > 1, "the sample spans several chunks");
    assert_same_tokens(&whole, &parts, 1000);
}

#[test]
fn streamed_reading_accepts_a_trace_without_weights() {
    let engine = root().join("tests/fixtures/engines/sglang-per-token.pt");
    let t = read_trace(&engine, None, None).unwrap();
    assert!(!t.has_weights());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.parquet");
    write_trace(&t, &path, Some(Format::Parquet)).unwrap();
    let whole = read_trace(&path, None, None).unwrap();
    assert_eq!(whole, t);
    for n in [1, 2, 5, t.num_tokens() + 1] {
        let parts = chunks(&path, n).unwrap();
        assert_eq!(parts.len(), t.num_tokens().div_ceil(n), "chunks of {n}");
        assert_same_tokens(&whole, &parts, n);
    }
}

/// One row of a hand-made 2-layer, top-2 trace; `None` writes a null.
struct Row {
    token: Option<i64>,
    seq: Option<i64>,
    pos: i32,
    layer: i16,
    experts: [i32; 2],
}

fn rows(tokens: usize) -> Vec<Row> {
    (0..tokens)
        .flat_map(|t| {
            (0..2).map(move |l| Row {
                token: Some(t as i64),
                seq: Some(0),
                pos: t as i32,
                layer: l,
                experts: [l as i32, 2 + t as i32 % 3],
            })
        })
        .collect()
}

/// Writes `rows` in row groups of `group_rows` rows; `token` and `seq` are nullable columns, as
/// another writer (pyarrow by default) makes them.
fn write(path: &Path, rows: &[Row], group_rows: usize) {
    let item = |dt| Arc::new(Field::new("item", dt, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("token", DataType::Int64, true),
        Field::new("seq", DataType::Int64, true),
        Field::new("pos", DataType::Int32, false),
        Field::new("layer", DataType::Int16, false),
        Field::new("experts", DataType::List(item(DataType::Int32)), false),
        Field::new("weights", DataType::List(item(DataType::Float32)), false),
    ]));
    let mut eb = ListBuilder::new(Int32Builder::new());
    let mut wb = ListBuilder::new(Float32Builder::new());
    for r in rows {
        eb.values().append_slice(&r.experts);
        eb.append(true);
        wb.values().append_slice(&[0.6, 0.4]);
        wb.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.token).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.pos).collect::<Vec<_>>(),
        )),
        Arc::new(Int16Array::from(
            rows.iter().map(|r| r.layer).collect::<Vec<_>>(),
        )),
        Arc::new(eb.finish()),
        Arc::new(wb.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let shape = r#"{"moe_layers":2,"experts":8,"top_k":2,"first_moe_layer":1}"#;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
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

/// The error of both readers on `path`, asserted identical.
fn both_refuse(path: &Path) -> TraceError {
    let whole = read_trace(path, None, None).unwrap_err();
    let streamed = chunks(path, 2).unwrap_err();
    assert_eq!(whole.to_string(), streamed.to_string());
    whole
}

#[test]
fn a_well_formed_hand_made_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.parquet");
    write(&path, &rows(5), 4);
    assert_eq!(read_trace(&path, None, None).unwrap().num_tokens(), 5);
    assert_eq!(chunks(&path, 2).unwrap().len(), 3);
}

#[test]
fn nulls_in_token_and_seq_are_refused_naming_row_group_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (field, row) in [("token", 7usize), ("seq", 6), ("token", 1)] {
        let mut r = rows(5);
        match field {
            "token" => r[row - 1].token = None,
            _ => r[row - 1].seq = None,
        }
        let path = dir.path().join(format!("null-{field}-{row}.parquet"));
        // Row groups of 4 rows: row 7 is the 3rd row of group 1, row 6 the 2nd.
        write(&path, &r, 4);
        let e = both_refuse(&path);
        let (g, in_group) = ((row - 1) / 4, (row - 1) % 4 + 1);
        match &e {
            TraceError::Invalid {
                path: p,
                line,
                field: f,
                problem: Defect::Other(m),
            } => {
                assert_eq!(p, &path);
                assert_eq!(*line, row as u64);
                assert_eq!(f, field);
                assert_eq!(
                    m,
                    &format!("null (row group {g}, row {in_group} of the group)")
                );
            }
            other => panic!("{field} null at row {row}: {other:?}"),
        }
    }
}

#[test]
fn both_readers_refuse_bad_rows_alike() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = fn(&mut Vec<Row>);
    let cases: [(&str, u64, &str, Edit); 5] = [
        ("expert", 4, "experts[1]", |r| r[3].experts[1] = 8),
        ("repeat", 3, "experts[1]", |r| r[2].experts = [3, 3]),
        ("token", 5, "token", |r| r[4].token = Some(9)),
        ("layer", 2, "layer", |r| r[1].layer = 0),
        ("truncated", 9, "layer", |r| {
            r.pop();
        }),
    ];
    for (name, line, field, edit) in cases {
        let mut r = rows(5);
        edit(&mut r);
        let path = dir.path().join(format!("{name}.parquet"));
        write(&path, &r, 4);
        match both_refuse(&path) {
            TraceError::Invalid {
                line: l, field: f, ..
            } => {
                assert_eq!((l, f.as_str()), (line, field), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
