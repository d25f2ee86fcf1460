//! Canonical Parquet traces: one row per (token, layer), zstd-compressed, shape in the file's
//! key-value metadata. Schema (all columns non-null; see `traces/FORMAT.md`):
//! `token: int64, seq: int64, pos: int32, layer: int16, experts: list<int32>, weights: list<float>`.

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

use super::{Defect, ModelShape, Trace, TraceBuilder, TraceError, TraceFormat, dequantize_weight};

/// Metadata key holding the JSON model shape.
pub const SHAPE_KEY: &str = "moeplan.shape";
/// Metadata key holding the format version.
pub const VERSION_KEY: &str = "moeplan.trace_version";
/// The version this build writes and reads.
pub const PARQUET_VERSION: &str = "1";
/// Tokens per row group / record batch.
const TOKENS_PER_BATCH: usize = 8192;

/// The canonical Parquet format.
pub struct ParquetFormat;

/// The Arrow schema of a canonical trace.
pub fn schema() -> Schema {
    let item = |dt| Arc::new(Field::new("item", dt, true));
    Schema::new(vec![
        Field::new("token", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("pos", DataType::Int32, false),
        Field::new("layer", DataType::Int16, false),
        Field::new("experts", DataType::List(item(DataType::Int32)), false),
        Field::new("weights", DataType::List(item(DataType::Float32)), false),
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

impl TraceFormat for ParquetFormat {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn read(&self, path: &Path, shape_hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
        let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq_err(path, e))?;
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let get = |k: &str| kv.iter().find(|x| x.key == k).and_then(|x| x.value.clone());
        let version = get(VERSION_KEY)
            .ok_or_else(|| pq_err(path, format!("metadata key `{VERSION_KEY}` missing")))?;
        if version != PARQUET_VERSION {
            return Err(pq_err(
                path,
                format!("trace version {version} unsupported (this build reads {PARQUET_VERSION})"),
            ));
        }
        let shape_json = get(SHAPE_KEY)
            .ok_or_else(|| pq_err(path, format!("metadata key `{SHAPE_KEY}` missing")))?;
        let shape: ModelShape = serde_json::from_str(&shape_json)
            .map_err(|e| pq_err(path, format!("{SHAPE_KEY}: {e}")))?;
        shape
            .check()
            .map_err(|m| pq_err(path, format!("{SHAPE_KEY}: {m}")))?;
        if let Some(h) = shape_hint
            && *h != shape
        {
            return Err(pq_err(
                path,
                format!("trace shape {shape:?} differs from the model's {h:?}"),
            ));
        }
        let rows = builder.metadata().file_metadata().num_rows() as usize;
        if rows == 0 {
            return Err(TraceError::file(path, Defect::Empty("no rows".into())));
        }
        let (layers, k) = (shape.moe_layers, shape.top_k);
        let mut tb = TraceBuilder::new(shape, rows / layers);
        let reader = builder
            .with_batch_size(TOKENS_PER_BATCH * layers)
            .build()
            .map_err(|e| pq_err(path, e))?;
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
                for (name, col) in [
                    ("experts", experts as &dyn Array),
                    ("weights", weights as &dyn Array),
                ] {
                    if col.is_null(i) {
                        return Err(bad(name, Defect::Other("null".into())));
                    }
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
                let wv = weights.value(i);
                let wv = wv
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| pq_err(path, "weights items must be float"))?;
                if ev.null_count() > 0 || wv.null_count() > 0 {
                    return Err(bad("experts", Defect::Other("null item".into())));
                }
                ids.clear();
                ids.extend(ev.values().iter().map(|&e| e as i64));
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
                e16.extend(ids.iter().map(|&e| e as u16));
                w32.extend_from_slice(wv.values());
                if l + 1 == layers {
                    let (s, p) = (key.1, key.2);
                    if !(0..=u32::MAX as i64).contains(&s) || p < 0 {
                        return Err(bad(
                            "seq",
                            Defect::Other(format!("seq {s} / pos {p} out of range")),
                        ));
                    }
                    tb.check_order(s as u32, p as u32)
                        .map_err(|pr| bad("seq", pr))?;
                    tb.push_token(s as u32, p as u32, &e16, &w32);
                    e16.clear();
                    w32.clear();
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

    fn write(&self, trace: &Trace, path: &Path) -> Result<(), TraceError> {
        let schema = Arc::new(schema());
        let shape_json = serde_json::to_string(trace.shape()).expect("shape serialises");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid zstd level"),
            ))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(VERSION_KEY.to_string(), PARQUET_VERSION.to_string()),
                KeyValue::new(SHAPE_KEY.to_string(), shape_json),
            ]))
            .build();
        let file = File::create(path).map_err(|e| TraceError::io(path, e))?;
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| pq_err(path, e))?;
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
                    wb.append(true);
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
            let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| pq_err(path, e))?;
            writer.write(&batch).map_err(|e| pq_err(path, e))?;
            start = end;
        }
        writer.close().map_err(|e| pq_err(path, e))?;
        Ok(())
    }
}
