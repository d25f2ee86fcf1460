//! Canonical Parquet traces: one row per (token, layer), zstd-compressed, shape in the file's
//! key-value metadata. Schema (all columns non-null; see `traces/FORMAT.md`):
//! `token: int64, seq: int64, pos: int32, layer: int16, experts: list<int32>, weights: list<float>`.
//! A trace without gate weights (recorded by a serving engine) says so with the metadata key
//! `moeplan.weights = "none"`; its `weights` column is then nullable and null in every row.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, Int32Builder, ListBuilder};
use arrow_array::{
    Array, ArrayRef, Float32Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;

use crate::util::parquet_guard::{batches, open_checked};

use super::{Defect, ModelShape, Trace, TraceBuilder, TraceError, TraceFormat, dequantize_weight};

/// Metadata key holding the JSON model shape.
pub const SHAPE_KEY: &str = "moeplan.shape";
/// Metadata key holding the format version.
pub const VERSION_KEY: &str = "moeplan.trace_version";
/// Metadata key saying whether the trace has gate weights (`"none"` when it has not; absent
/// means it has).
pub const WEIGHTS_KEY: &str = "moeplan.weights";
/// The version this build writes and reads.
pub const PARQUET_VERSION: &str = "1";
/// Most tokens reserved up front from the footer's row count.
const MAX_RESERVED_TOKENS: usize = 1 << 20;
/// Tokens per row group / record batch.
const TOKENS_PER_BATCH: usize = 8192;

/// The canonical Parquet format.
pub struct ParquetFormat;

/// The Arrow schema of a canonical trace.
pub fn schema() -> Schema {
    schema_for(true)
}

/// The Arrow schema of a trace with or without gate weights (without: `weights` nullable).
pub fn schema_for(weights: bool) -> Schema {
    let item = |dt| Arc::new(Field::new("item", dt, true));
    Schema::new(vec![
        Field::new("token", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("pos", DataType::Int32, false),
        Field::new("layer", DataType::Int16, false),
        Field::new("experts", DataType::List(item(DataType::Int32)), false),
        Field::new("weights", DataType::List(item(DataType::Float32)), !weights),
    ])
}

fn pq_err(path: &Path, e: impl std::fmt::Display) -> TraceError {
    TraceError::file(path, Defect::Other(format!("parquet: {e}")))
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a T, TraceError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            pq_err(
                path,
                format!("column `{name}` missing or of the wrong type (see traces/FORMAT.md)"),
            )
        })
}

/// Reads a canonical Parquet trace from any source of bytes (a file, or bytes in memory);
/// `path` names it in errors.
pub fn read_parquet<R: ChunkReader + 'static>(
    reader: R,
    path: &Path,
    shape_hint: Option<&ModelShape>,
) -> Result<Trace, TraceError> {
    let opened = open(reader, path, shape_hint)?;
    read_rows(opened, path, usize::MAX, &mut |_, _| {
        unreachable!("a whole-file read hands over no chunk before the end")
    })
}

/// A Parquet trace whose footer has been read and checked, ready for its rows.
struct Opened<R: ChunkReader + 'static> {
    builder: ParquetRecordBatchReaderBuilder<R>,
    shape: ModelShape,
    /// Whether the rows carry gate weights (metadata key [`WEIGHTS_KEY`]).
    weighted: bool,
}

/// Opens a canonical Parquet trace: version, shape (checked, and against `shape_hint`), the
/// weights key, and at least one row.
fn open<R: ChunkReader + 'static>(
    reader: R,
    path: &Path,
    shape_hint: Option<&ModelShape>,
) -> Result<Opened<R>, TraceError> {
    let builder = open_checked(reader).map_err(|e| pq_err(path, e))?;
    let shape = footer_shape(path, &builder)?;
    if let Some(h) = shape_hint
        && *h != shape
    {
        return Err(pq_err(
            path,
            format!("trace shape {shape:?} differs from the model's {h:?}"),
        ));
    }
    let weighted = match footer_value(&builder, WEIGHTS_KEY).as_deref() {
        None => true,
        Some("none") => false,
        Some(other) => {
            return Err(pq_err(
                path,
                format!("{WEIGHTS_KEY}: {other:?} (expected \"none\" or no key)"),
            ));
        }
    };
    if builder.metadata().file_metadata().num_rows() <= 0 {
        return Err(TraceError::file(path, Defect::Empty("no rows".into())));
    }
    Ok(Opened {
        builder,
        shape,
        weighted,
    })
}

/// Where a row (1-based over the file) lies: its row group and its 1-based row within it.
fn row_group_of(row_groups: &[i64], row: u64) -> (usize, u64) {
    let mut first = 0u64;
    for (g, &n) in row_groups.iter().enumerate() {
        let n = n.max(0) as u64;
        if row <= first + n {
            return (g, row - first);
        }
        first += n;
    }
    (row_groups.len().saturating_sub(1), row - first)
}

/// Reads and validates every row of `opened`; each time `chunk_tokens` tokens are complete
/// they go to `sink` with the global index of their first token. Returns the tokens left
/// after the last full chunk (all of them when `chunk_tokens` is never reached).
fn read_rows<R: ChunkReader + 'static>(
    opened: Opened<R>,
    path: &Path,
    chunk_tokens: usize,
    sink: &mut dyn FnMut(Trace, usize) -> Result<(), TraceError>,
) -> Result<Trace, TraceError> {
    let Opened {
        builder,
        shape,
        weighted,
    } = opened;
    let rows = builder.metadata().file_metadata().num_rows() as usize;
    let row_groups: Vec<i64> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let (layers, k) = (shape.moe_layers, shape.top_k);
    // The row count comes from the file's footer: reserve no more than a bounded guess
    // (a lying footer must not size an allocation); the columns grow with the real rows.
    let mut tb = TraceBuilder::new(
        shape,
        (rows / layers).min(chunk_tokens).min(MAX_RESERVED_TOKENS),
    );
    let reader = batches(builder.with_batch_size((TOKENS_PER_BATCH * layers).min(1 << 18)))
        .map_err(|e| pq_err(path, e))?;
    let mut done: usize = 0;
    let mut e16 = Vec::with_capacity(layers * k);
    let mut w32 = Vec::with_capacity(layers * k);
    let (mut ids, mut w64) = (Vec::with_capacity(k), Vec::with_capacity(k));
    let mut row: u64 = 0;
    let mut cur: Option<(i64, i64, i32)> = None;
    for batch in reader {
        let batch = batch.map_err(|e| pq_err(path, e))?;
        let token = column::<Int64Array>(&batch, "token", path)?;
        let seq = column::<Int64Array>(&batch, "seq", path)?;
        let pos = column::<Int32Array>(&batch, "pos", path)?;
        let layer = column::<Int16Array>(&batch, "layer", path)?;
        let experts = column::<ListArray>(&batch, "experts", path)?;
        let weights = column::<ListArray>(&batch, "weights", path)?;
        for i in 0..batch.num_rows() {
            row += 1;
            let bad = |field: &str, p: Defect| TraceError::invalid(path, row, field, p);
            let null = |what: &str| {
                let (g, r) = row_group_of(&row_groups, row);
                Defect::Other(format!("{what} (row group {g}, row {r} of the group)"))
            };
            for (name, col) in [
                ("token", token as &dyn Array),
                ("seq", seq as &dyn Array),
                ("pos", pos as &dyn Array),
                ("layer", layer as &dyn Array),
                ("experts", experts as &dyn Array),
            ] {
                if col.is_null(i) {
                    return Err(bad(name, null("null")));
                }
            }
            if weights.is_null(i) == weighted {
                let m = if weighted {
                    "null"
                } else {
                    "set in a trace whose metadata says it has no weights"
                };
                return Err(bad("weights", null(m)));
            }
            let l = layer.value(i) as usize;
            let expected_layer = e16.len() / k;
            if l != expected_layer {
                return Err(bad(
                    "layer",
                    Defect::Other(format!(
                        "expected layer {expected_layer} (rows are ordered by token, then layer 0..{layers})"
                    )),
                ));
            }
            let key = (token.value(i), seq.value(i), pos.value(i));
            if l == 0 {
                let expected = done + tb.len();
                if key.0 != expected as i64 {
                    return Err(bad(
                        "token",
                        Defect::Other(format!(
                            "token {} where {expected} was expected (the global token index, 0-based)",
                            key.0,
                        )),
                    ));
                }
                cur = Some(key);
            } else if cur != Some(key) {
                return Err(bad(
                    "token",
                    Defect::Other("token/seq/pos change within a token's layers".into()),
                ));
            }
            let ev = experts.value(i);
            let ev = ev
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| pq_err(path, "experts items must be int32"))?;
            if ev.null_count() > 0 {
                return Err(bad("experts", null("null item")));
            }
            ids.clear();
            ids.extend(ev.values().iter().map(|&e| e as i64));
            if weighted {
                let wv = weights.value(i);
                let wv = wv
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| pq_err(path, "weights items must be float"))?;
                if wv.null_count() > 0 {
                    return Err(bad("weights", null("null item")));
                }
                w64.clear();
                w64.extend(wv.values().iter().map(|&w| w as f64));
                TraceBuilder::check_topk(&shape, &ids, &w64).map_err(|(j, p)| {
                    let f = if matches!(
                        p,
                        Defect::NonFiniteWeight { .. } | Defect::WeightOutOfRange { .. }
                    ) {
                        "weights"
                    } else {
                        "experts"
                    };
                    bad(&format!("{f}[{j}]"), p)
                })?;
                w32.extend_from_slice(wv.values());
            } else {
                TraceBuilder::check_ids(&shape, &ids)
                    .map_err(|(j, p)| bad(&format!("experts[{j}]"), p))?;
            }
            e16.extend(ids.iter().map(|&e| e as u16));
            if l + 1 == layers {
                let (s, p) = seq_pos(key.1, key.2).map_err(|pr| bad("seq", pr))?;
                tb.check_order(s, p).map_err(|pr| bad("seq", pr))?;
                if weighted {
                    tb.push_token(s, p, &e16, &w32);
                } else {
                    tb.push_token_unweighted(s, p, &e16);
                }
                e16.clear();
                w32.clear();
                if tb.len() >= chunk_tokens {
                    let n = tb.len();
                    sink(tb.take_chunk(), done)?;
                    done += n;
                }
            }
        }
    }
    if !e16.is_empty() {
        return Err(TraceError::invalid(
            path,
            row,
            "layer",
            Defect::Truncated {
                expected: format!("{layers} layers for the last token"),
                found: (e16.len() / k).to_string(),
            },
        ));
    }
    Ok(tb.finish())
}

/// A row's sequence id and position as stored, checked to fit.
fn seq_pos(s: i64, p: i32) -> Result<(u32, u32), Defect> {
    if !(0..=u32::MAX as i64).contains(&s) || p < 0 {
        return Err(Defect::Other(format!("seq {s} / pos {p} out of range")));
    }
    Ok((s as u32, p as u32))
}

impl TraceFormat for ParquetFormat {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn read(&self, path: &Path, shape_hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
        let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
        read_parquet(file, path, shape_hint)
    }

    fn write(&self, trace: &Trace, path: &Path) -> Result<(), TraceError> {
        let shape_json = serde_json::to_string(trace.shape()).expect("shape serialises");
        let mut kv = vec![
            KeyValue::new(VERSION_KEY.to_string(), PARQUET_VERSION.to_string()),
            KeyValue::new(SHAPE_KEY.to_string(), shape_json),
        ];
        if !trace.has_weights() {
            kv.push(KeyValue::new(WEIGHTS_KEY.to_string(), "none".to_string()));
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid zstd level"),
            ))
            .set_key_value_metadata(Some(kv))
            .build();
        crate::util::atomic_write(path, |file| write_batches(trace, file, props)).map_err(|e| {
            match e.downcast::<parquet::errors::ParquetError>() {
                Ok(pe) => pq_err(path, pe),
                Err(e) => TraceError::write(path, e),
            }
        })
    }
}

/// What a [`read_chunks`] sink is handed: the validated tokens of one chunk (a trace) and the
/// `token` column value of each of them.
pub type ChunkSink<'a> = dyn FnMut(Trace, &[i64]) -> Result<(), TraceError> + 'a;

/// The shape and row count of a canonical Parquet trace, from its footer alone.
pub fn read_footer(path: &Path) -> Result<(ModelShape, u64), TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    let builder = open_checked(file).map_err(|e| pq_err(path, e))?;
    let shape = footer_shape(path, &builder)?;
    Ok((shape, builder.metadata().file_metadata().num_rows() as u64))
}

/// The value of one key of the file's key-value metadata.
fn footer_value<R: ChunkReader + 'static>(
    builder: &ParquetRecordBatchReaderBuilder<R>,
    key: &str,
) -> Option<String> {
    let kv = builder.metadata().file_metadata().key_value_metadata()?;
    kv.iter()
        .find(|x| x.key == key)
        .and_then(|x| x.value.clone())
}

/// The format version and the model shape of the footer, both checked.
fn footer_shape<R: ChunkReader + 'static>(
    path: &Path,
    builder: &ParquetRecordBatchReaderBuilder<R>,
) -> Result<ModelShape, TraceError> {
    let version = footer_value(builder, VERSION_KEY)
        .ok_or_else(|| pq_err(path, format!("metadata key `{VERSION_KEY}` missing")))?;
    if version != PARQUET_VERSION {
        return Err(pq_err(
            path,
            format!("trace version {version} unsupported (this build reads {PARQUET_VERSION})"),
        ));
    }
    let shape_json = footer_value(builder, SHAPE_KEY)
        .ok_or_else(|| pq_err(path, format!("metadata key `{SHAPE_KEY}` missing")))?;
    let shape: ModelShape =
        serde_json::from_str(&shape_json).map_err(|e| pq_err(path, format!("{SHAPE_KEY}: {e}")))?;
    shape
        .check()
        .map_err(|m| pq_err(path, format!("{SHAPE_KEY}: {m}")))?;
    Ok(shape)
}

/// Reads a canonical Parquet trace (with or without gate weights) record batch by record
/// batch, validating every row exactly as [`ParquetFormat`]'s reader does (the same code), and
/// hands `sink` the tokens in chunks of at most `chunk_tokens` (memory stays bounded by one
/// chunk and one record batch).
pub fn read_chunks(
    path: &Path,
    shape_hint: Option<&ModelShape>,
    chunk_tokens: usize,
    sink: &mut ChunkSink<'_>,
) -> Result<ModelShape, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    let opened = open(file, path, shape_hint)?;
    let shape = opened.shape;
    let mut ids: Vec<i64> = Vec::new();
    let mut hand = |chunk: Trace, first: usize| {
        ids.clear();
        ids.extend((first..first + chunk.num_tokens()).map(|t| t as i64));
        sink(chunk, &ids)
    };
    let mut done = 0;
    let rest = read_rows(opened, path, chunk_tokens.max(1), &mut |chunk, first| {
        done = first + chunk.num_tokens();
        hand(chunk, first)
    })?;
    if rest.num_tokens() > 0 {
        hand(rest, done)?;
    }
    Ok(shape)
}

/// A Parquet or Arrow error carried through the I/O error of [`crate::util::atomic_write`].
fn pe(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::other(e)
}

/// Writes `trace` as row groups of [`TOKENS_PER_BATCH`] tokens into `file`.
fn write_batches(trace: &Trace, file: &mut File, props: WriterProperties) -> std::io::Result<()> {
    let weighted = trace.has_weights();
    let schema = Arc::new(schema_for(weighted));
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pe)?;
    let layers = trace.shape().moe_layers;
    let n = trace.num_tokens();
    let mut start = 0;
    while start < n {
        let end = (start + TOKENS_PER_BATCH).min(n);
        let rows = (end - start) * layers;
        let mut token = Vec::with_capacity(rows);
        let mut seq = Vec::with_capacity(rows);
        let mut pos = Vec::with_capacity(rows);
        let mut layer = Vec::with_capacity(rows);
        let mut eb = ListBuilder::new(Int32Builder::new());
        let mut wb = ListBuilder::new(Float32Builder::new());
        for t in start..end {
            for l in 0..layers {
                token.push(t as i64);
                seq.push(trace.seq_id(t) as i64);
                pos.push(trace.position(t) as i32);
                layer.push(l as i16);
                for &e in trace.experts(t, l) {
                    eb.values().append_value(e as i32);
                }
                eb.append(true);
                for &q in trace.weights_q(t, l) {
                    wb.values().append_value(dequantize_weight(q));
                }
                wb.append(weighted);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(token)),
            Arc::new(Int64Array::from(seq)),
            Arc::new(Int32Array::from(pos)),
            Arc::new(Int16Array::from(layer)),
            Arc::new(eb.finish()),
            Arc::new(wb.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols).map_err(pe)?;
        writer.write(&batch).map_err(pe)?;
        start = end;
    }
    writer.close().map_err(pe)?;
    Ok(())
}
