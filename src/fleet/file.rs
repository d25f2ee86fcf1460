//! The statistics file: one Parquet table of (kind, workload, window, hop, layer, src, dst,
//! count) rows, shape and settings in the key-value metadata (see `docs/fleet.md`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int16Array, Int32Array, Int64Array, LargeStringArray};
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::{HeldCase, RoutingStats, WorkloadStats};
use crate::trace::ModelShape;
use crate::util::parquet_guard::{batches, open_checked};

/// Metadata key of the file version.
pub const VERSION_KEY: &str = "moeplan.stats_version";
/// The version this build writes and reads.
pub const STATS_VERSION: &str = "1";
/// Metadata key of the JSON model shape (as in traces).
pub const SHAPE_KEY: &str = "moeplan.shape";
/// Metadata key of the total token count (decimal).
pub const TOKENS_KEY: &str = "moeplan.tokens";
/// Metadata key of the window length in tokens (decimal).
pub const WINDOW_KEY: &str = "moeplan.window_tokens";
/// Metadata key of the largest hop distance (decimal).
pub const HOPS_KEY: &str = "moeplan.hops";

/// Rows per record batch when writing.
const BATCH_ROWS: usize = 1 << 16;

/// The Arrow schema of a statistics file.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("workload", DataType::Utf8, false),
        Field::new("window", DataType::Int64, false),
        Field::new("hop", DataType::Int32, false),
        Field::new("layer", DataType::Int32, false),
        Field::new("src", DataType::Int32, false),
        Field::new("dst", DataType::Int32, false),
        Field::new("count", DataType::Int64, false),
    ])
}

/// One row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    window: i64,
    hop: i32,
    layer: i32,
    src: i32,
    dst: i32,
    count: i64,
}

fn row(window: i64, hop: usize, layer: usize, src: i64, dst: i64, count: u64) -> Row {
    Row {
        window,
        hop: hop as i32,
        layer: layer as i32,
        src: src as i32,
        dst: dst as i32,
        count: count as i64,
    }
}

/// The rows of one workload, kind by kind in name order, each kind sorted by
/// (hop, window, layer, src, dst): the canonical order every writer uses.
fn workload_rows(shape: &ModelShape, w: &WorkloadStats) -> Vec<(&'static str, Vec<Row>)> {
    let e = shape.experts;
    let dense_in = |v: &[u64], hop: usize, window: i64| -> Vec<Row> {
        v.iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| {
                row(
                    window,
                    hop,
                    i / (e * e),
                    ((i / e) % e) as i64,
                    (i % e) as i64,
                    c,
                )
            })
            .collect()
    };
    let dense = |v: &[u64], hop: usize| dense_in(v, hop, -1);
    let case = |pick: fn(&HeldCase) -> &[u16]| -> Vec<Row> {
        w.cases
            .iter()
            .flat_map(|(&(h, id, l), c)| {
                pick(c)
                    .iter()
                    .enumerate()
                    .map(move |(j, &x)| row(id, h, l, j as i64, x as i64, 1))
            })
            .collect()
    };
    let single = |c: u64| -> Vec<Row> {
        let r = Row {
            window: -1,
            hop: 0,
            layer: -1,
            src: -1,
            dst: -1,
            count: c as i64,
        };
        if c > 0 { vec![r] } else { Vec::new() }
    };
    let load = |v: &[u64], window: i64| -> Vec<Row> {
        v.iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(move |(i, &c)| row(window, 0, i / e, (i % e) as i64, -1, c))
            .collect()
    };
    let mut pairs = Vec::new();
    for (h, p) in (1..).zip(&w.pairs) {
        pairs.extend(dense(p, h));
    }
    let mut windows = Vec::new();
    for (&id, v) in &w.windows {
        windows.extend(load(v, id));
    }
    let mut window_pairs = Vec::new();
    for (&id, v) in &w.window_pairs {
        window_pairs.extend(dense_in(v, 1, id));
    }
    vec![
        ("case_cur", case(|c| &c.cur)),
        ("case_prev", case(|c| &c.prev)),
        ("case_truth", case(|c| &c.truth)),
        ("followers", single(w.followers)),
        ("load", load(&w.load, -1)),
        ("pair", pairs),
        ("prev", dense(&w.prev, 0)),
        ("tokens", single(w.tokens)),
        ("top1", dense(&w.top1, 1)),
        ("window", windows),
        ("window_pair", window_pairs),
    ]
}

/// Writes `stats` to `path` (zstd Parquet, canonical row order).
pub fn write_stats(stats: &RoutingStats, path: &Path) -> anyhow::Result<()> {
    let meta = vec![
        KeyValue::new(VERSION_KEY.into(), STATS_VERSION.to_string()),
        KeyValue::new(SHAPE_KEY.into(), serde_json::to_string(&stats.shape)?),
        KeyValue::new(TOKENS_KEY.into(), stats.tokens().to_string()),
        KeyValue::new(WINDOW_KEY.into(), stats.window_tokens.to_string()),
        KeyValue::new(HOPS_KEY.into(), stats.hops.to_string()),
    ];
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_key_value_metadata(Some(meta))
        .build();
    crate::util::atomic_write_with(path, |file| write_rows(stats, file, props))
        .map_err(|e| e.context(format!("writing {}", path.display())))
}

/// The rows of `stats` into `file` in canonical order, [`BATCH_ROWS`] per record batch.
fn write_rows(
    stats: &RoutingStats,
    file: &mut File,
    props: WriterProperties,
) -> anyhow::Result<()> {
    let schema = Arc::new(schema());
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    let mut pending: Vec<(&str, &str, Row)> = Vec::with_capacity(BATCH_ROWS);
    let mut flush = |pending: &mut Vec<(&str, &str, Row)>| -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let col_i64 = |f: fn(&Row) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                pending.iter().map(|p| f(&p.2)),
            ))
        };
        let col_i32 = |f: fn(&Row) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(
                pending.iter().map(|p| f(&p.2)),
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(pending.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter_values(pending.iter().map(|p| p.1))),
            col_i64(|r| r.window),
            col_i32(|r| r.hop),
            col_i32(|r| r.layer),
            col_i32(|r| r.src),
            col_i32(|r| r.dst),
            col_i64(|r| r.count),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        pending.clear();
        Ok(())
    };
    for (name, w) in &stats.workloads {
        for (kind, rows) in workload_rows(&stats.shape, w) {
            for r in rows {
                pending.push((kind, name, r));
                if pending.len() == BATCH_ROWS {
                    flush(&mut pending)?;
                }
            }
        }
    }
    flush(&mut pending)?;
    writer.close()?;
    Ok(())
}

/// An integer column as i64, whatever signed width the writer chose (Spark, DuckDB, moeplan).
fn ints(batch: &RecordBatch, name: &str, path: &Path) -> anyhow::Result<Vec<i64>> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| bad(path, format!("column `{name}` missing (see docs/fleet.md)")))?;
    if c.null_count() > 0 {
        return Err(bad(path, format!("column `{name}` has nulls")));
    }
    let any = c.as_any();
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        Ok(a.values().to_vec())
    } else if let Some(a) = any.downcast_ref::<Int32Array>() {
        Ok(a.values().iter().map(|&v| v as i64).collect())
    } else if let Some(a) = any.downcast_ref::<Int16Array>() {
        Ok(a.values().iter().map(|&v| v as i64).collect())
    } else {
        Err(bad(
            path,
            format!("column `{name}` must be an integer, is {}", c.data_type()),
        ))
    }
}

fn strings(batch: &RecordBatch, name: &str, path: &Path) -> anyhow::Result<Vec<String>> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| bad(path, format!("column `{name}` missing (see docs/fleet.md)")))?;
    if c.null_count() > 0 {
        return Err(bad(path, format!("column `{name}` has nulls")));
    }
    let any = c.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Ok(a.iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect())
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        Ok(a.iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect())
    } else {
        Err(bad(
            path,
            format!("column `{name}` must be a string, is {}", c.data_type()),
        ))
    }
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(crate::BadInput(format!("{}: {msg}", path.display())))
}

/// A case under reconstruction: `(rank, expert)` per role.
type PartialCase = [Vec<(i64, i64)>; 3];

/// Reads a statistics file written by [`write_stats`], the Spark job or the DuckDB script,
/// validating every row (kind, ranges, counts) and the metadata.
pub fn read_stats(path: &Path) -> anyhow::Result<RoutingStats> {
    // A missing or unreadable statistics file is bad input, like a missing trace.
    let file = File::open(path).map_err(|e| bad(path, e))?;
    let builder =
        open_checked(file).map_err(|e| bad(path, format!("not a readable Parquet file: {e}")))?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let get = |k: &str| {
        kv.iter()
            .find(|x| x.key == k)
            .and_then(|x| x.value.clone())
            .ok_or_else(|| {
                bad(
                    path,
                    format!("metadata key `{k}` missing (not a statistics file?)"),
                )
            })
    };
    let version = get(VERSION_KEY)?;
    if version != STATS_VERSION {
        return Err(bad(
            path,
            format!("statistics version {version} unsupported (this build reads {STATS_VERSION})"),
        ));
    }
    let shape: ModelShape = serde_json::from_str(&get(SHAPE_KEY)?)
        .map_err(|e| bad(path, format!("{SHAPE_KEY}: {e}")))?;
    shape
        .check()
        .map_err(|m| bad(path, format!("{SHAPE_KEY}: {m}")))?;
    let num = |k: &str| -> anyhow::Result<u64> {
        get(k)?
            .trim()
            .parse()
            .map_err(|e| bad(path, format!("{k}: {e}")))
    };
    let (tokens, window_tokens, hops) =
        (num(TOKENS_KEY)?, num(WINDOW_KEY)?, num(HOPS_KEY)? as usize);
    if window_tokens == 0 || hops == 0 || hops >= shape.moe_layers {
        return Err(bad(
            path,
            format!(
                "{WINDOW_KEY} must be >= 1 and {HOPS_KEY} in 1..{}",
                shape.moe_layers
            ),
        ));
    }
    let mut stats = RoutingStats::new(shape, window_tokens, hops);
    let mut cases: std::collections::BTreeMap<(String, usize, i64, usize), PartialCase> =
        Default::default();
    let (layers, e) = (shape.moe_layers as i64, shape.experts as i64);
    let mut n: u64 = 0;
    for batch in batches(builder).map_err(|e| bad(path, e))? {
        let batch = batch.map_err(|e| bad(path, e))?;
        let kind = strings(&batch, "kind", path)?;
        let wl = strings(&batch, "workload", path)?;
        let [window, hop, layer, src, dst, count] =
            ["window", "hop", "layer", "src", "dst", "count"].map(|c| ints(&batch, c, path));
        let (window, hop, layer, src, dst, count) = (window?, hop?, layer?, src?, dst?, count?);
        for i in 0..batch.num_rows() {
            n += 1;
            let at = |m: String| bad(path, format!("row {n} (kind `{}`): {m}", kind[i]));
            let (h, l, s, d, c) = (hop[i], layer[i], src[i], dst[i], count[i]);
            if c <= 0 {
                return Err(at(format!("count {c} must be positive")));
            }
            let expert = |v: i64, f: &str| {
                if (0..e).contains(&v) {
                    Ok(v as usize)
                } else {
                    Err(at(format!("{f} {v} outside 0..{e}")))
                }
            };
            let hop_ok = |h: i64| {
                if (1..=hops as i64).contains(&h) {
                    Ok(h as usize)
                } else {
                    Err(at(format!("hop {h} outside 1..={hops}")))
                }
            };
            let layer_ok = |l: i64, span: i64| {
                if (0..span).contains(&l) {
                    Ok(l as usize)
                } else {
                    Err(at(format!("layer {l} outside 0..{span}")))
                }
            };
            let (ue, w) = (e as usize, stats.workload_mut(&wl[i]));
            match kind[i].as_str() {
                "tokens" => w.tokens += c as u64,
                "followers" => w.followers += c as u64,
                "load" => w.load[layer_ok(l, layers)? * ue + expert(s, "src")?] += c as u64,
                "window" => {
                    if window[i] < 0 {
                        return Err(at(format!("window {} must be >= 0", window[i])));
                    }
                    let idx = layer_ok(l, layers)? * ue + expert(s, "src")?;
                    w.windows
                        .entry(window[i])
                        .or_insert_with(|| vec![0; (layers * e) as usize])[idx] += c as u64;
                }
                "window_pair" => {
                    if window[i] < 0 {
                        return Err(at(format!("window {} must be >= 0", window[i])));
                    }
                    if h != 1 {
                        return Err(at(format!("hop {h} must be 1")));
                    }
                    let idx = (layer_ok(l, layers - 1)? * ue + expert(s, "src")?) * ue
                        + expert(d, "dst")?;
                    w.window_pairs
                        .entry(window[i])
                        .or_insert_with(|| vec![0; ((layers - 1) * e * e) as usize])[idx] +=
                        c as u64;
                }
                "pair" => {
                    let hh = hop_ok(h)?;
                    let ll = layer_ok(l, layers - hh as i64)?;
                    w.pairs[hh - 1][(ll * ue + expert(s, "src")?) * ue + expert(d, "dst")?] +=
                        c as u64;
                }
                "top1" | "prev" => {
                    let span = if kind[i] == "top1" {
                        layers - 1
                    } else {
                        layers
                    };
                    let idx =
                        (layer_ok(l, span)? * ue + expert(s, "src")?) * ue + expert(d, "dst")?;
                    let v = if kind[i] == "top1" {
                        &mut w.top1
                    } else {
                        &mut w.prev
                    };
                    v[idx] += c as u64;
                }
                "case_cur" | "case_prev" | "case_truth" => {
                    let hh = hop_ok(h)?;
                    let ll = layer_ok(l, layers - hh as i64)?;
                    let role = ["case_cur", "case_prev", "case_truth"]
                        .iter()
                        .position(|k| *k == kind[i])
                        .expect("matched");
                    if c != 1 {
                        return Err(at(format!("count {c} must be 1")));
                    }
                    expert(d, "dst")?;
                    cases.entry((wl[i].clone(), hh, window[i], ll)).or_default()[role].push((s, d));
                }
                other => return Err(at(format!("unknown kind `{other}` (see docs/fleet.md)"))),
            }
        }
    }
    let k = shape.top_k;
    for ((name, h, id, l), mut parts) in cases {
        let mut lists = Vec::with_capacity(3);
        for (role, p) in parts.iter_mut().enumerate() {
            p.sort_unstable();
            let ranks_ok = p.iter().enumerate().all(|(j, &(r, _))| r == j as i64);
            let len_ok = p.len() == k || (role == 1 && p.is_empty());
            if !ranks_ok || !len_ok {
                return Err(bad(
                    path,
                    format!(
                        "workload `{name}`: held-out case (hop {h}, token {id}, layer {l}) has \
                         {} rows of role {role}, expected ranks 0..{k}",
                        p.len()
                    ),
                ));
            }
            lists.push(p.iter().map(|&(_, x)| x as u16).collect::<Vec<u16>>());
        }
        let truth = lists.pop().expect("three");
        let prev = lists.pop().expect("three");
        let cur = lists.pop().expect("three");
        stats
            .workload_mut(&name)
            .cases
            .insert((h, id, l), HeldCase { cur, prev, truth });
    }
    if stats.tokens() != tokens {
        return Err(bad(
            path,
            format!(
                "{TOKENS_KEY} says {tokens} tokens, the `tokens` rows sum to {}",
                stats.tokens()
            ),
        ));
    }
    Ok(stats)
}
