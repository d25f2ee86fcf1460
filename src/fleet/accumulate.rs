//! Native aggregation: one pass over each input's tokens, streamed from Parquet chunk by chunk,
//! into the per-workload sums of [`RoutingStats`].

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{HeldCase, RoutingStats, StatsError, WorkloadStats};
use crate::predict::case_stride;
use crate::trace::{Format, ModelShape, Trace, parquet, read_trace};
use crate::util::Progress;

/// Tokens handed over per chunk by the streaming Parquet reader.
const CHUNK_TOKENS: usize = 8192;

/// Settings of an aggregation (they must agree for two files to merge).
#[derive(Debug, Clone, Copy)]
pub struct AggregateOptions {
    /// Largest hop distance of the pair counts and the held-out sample.
    pub hops: usize,
    /// Tokens per window of the per-window loads.
    pub window_tokens: u64,
    /// Also count consecutive-layer pairs per window (re-balancing from statistics).
    pub window_pairs: bool,
}

/// Adds one input's tokens, in storage order, to a workload.
pub struct Accumulator<'a> {
    shape: ModelShape,
    opts: AggregateOptions,
    stats: &'a mut WorkloadStats,
    /// Tokens of the input (fixes the held-out sample's stride).
    input_tokens: usize,
    /// Tokens pushed so far.
    seen: usize,
    /// Token id, sequence and experts of the last token pushed.
    last: Option<(i64, u32)>,
    last_experts: Vec<u16>,
    strides: Vec<usize>,
}

impl<'a> Accumulator<'a> {
    /// An accumulator adding an input of `input_tokens` tokens to `stats`.
    pub fn new(
        shape: ModelShape,
        opts: AggregateOptions,
        stats: &'a mut WorkloadStats,
        input_tokens: usize,
    ) -> Accumulator<'a> {
        let layers = shape.moe_layers;
        Accumulator {
            shape,
            opts,
            stats,
            input_tokens,
            seen: 0,
            last: None,
            last_experts: vec![0; shape.entries_per_token()],
            strides: (1..=opts.hops)
                .map(|h| case_stride(input_tokens, layers, h))
                .collect(),
        }
    }

    /// Adds the tokens of `chunk`, whose `token` ids are `ids`; ids must go up by one from token
    /// to token (the canonical format's global index), across chunks too.
    pub fn push(&mut self, chunk: &Trace, ids: &[i64]) -> Result<(), StatsError> {
        let (layers, e, k) = (self.shape.moe_layers, self.shape.experts, self.shape.top_k);
        for (t, &id) in ids.iter().enumerate().take(chunk.num_tokens()) {
            if let Some((last, _)) = self.last
                && id != last + 1
            {
                return Err(StatsError::Invalid(format!(
                    "token {id} follows token {last}: the `token` column must count up by one"
                )));
            }
            let w = &mut *self.stats;
            let seq = chunk.seq_id(t);
            let follows = self.last.is_some_and(|(_, s)| s == seq);
            w.tokens += 1;
            let window = id.div_euclid(self.opts.window_tokens as i64);
            let win = w
                .windows
                .entry(window)
                .or_insert_with(|| vec![0; layers * e]);
            let mut win_pairs = self.opts.window_pairs.then(|| {
                w.window_pairs
                    .entry(window)
                    .or_insert_with(|| vec![0; layers.saturating_sub(1) * e * e])
            });
            for l in 0..layers {
                let here = chunk.experts(t, l);
                for &x in here {
                    w.load[l * e + x as usize] += 1;
                    win[l * e + x as usize] += 1;
                }
                if l + 1 < layers {
                    let next = chunk.experts(t, l + 1);
                    w.top1[(l * e + here[0] as usize) * e + next[0] as usize] += 1;
                    if let Some(wp) = win_pairs.as_deref_mut() {
                        for &a in here {
                            for &b in next {
                                wp[(l * e + a as usize) * e + b as usize] += 1;
                            }
                        }
                    }
                }
                for (h, pairs) in (1..).zip(w.pairs.iter_mut()) {
                    if l + h >= layers {
                        break;
                    }
                    let to = chunk.experts(t, l + h);
                    for &a in here {
                        let row =
                            &mut pairs[(l * e + a as usize) * e..(l * e + a as usize + 1) * e];
                        for &b in to {
                            row[b as usize] += 1;
                        }
                    }
                }
                if follows {
                    let before = &self.last_experts[l * k..(l + 1) * k];
                    for &a in before {
                        for &b in here {
                            w.prev[(l * e + a as usize) * e + b as usize] += 1;
                        }
                    }
                }
            }
            if follows {
                w.followers += 1;
            }
            self.sample(chunk, t, id, follows);
            self.last = Some((id, seq));
            self.last_experts.copy_from_slice(chunk.token_experts(t));
            self.seen += 1;
        }
        Ok(())
    }

    /// Records the held-out cases of local token `self.seen` (chunk token `t`, id `id`).
    fn sample(&mut self, chunk: &Trace, t: usize, id: i64, follows: bool) {
        let (layers, k) = (self.shape.moe_layers, self.shape.top_k);
        for (h, &stride) in (1..).zip(&self.strides) {
            if h >= layers {
                break;
            }
            let span = layers - h;
            let first = self.seen * span;
            let mut c = first.div_ceil(stride) * stride;
            while c < first + span && c < self.input_tokens * span {
                let l = c - first;
                let prev = if follows {
                    self.last_experts[(l + h) * k..(l + h + 1) * k].to_vec()
                } else {
                    Vec::new()
                };
                self.stats.cases.insert(
                    (h, id, l),
                    HeldCase {
                        cur: chunk.experts(t, l).to_vec(),
                        prev,
                        truth: chunk.experts(t, l + h).to_vec(),
                    },
                );
                c += stride;
            }
        }
    }
}

/// The workload label of a trace path: its file stem (an ESFT directory's name).
pub fn label_of(path: &Path) -> String {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Aggregates `paths` (one workload each, named by file stem, or all under `label`): Parquet
/// traces are streamed chunk by chunk, other formats read whole. `progress` counts tokens.
pub fn aggregate_paths(
    paths: &[PathBuf],
    label: Option<&str>,
    shape_hint: Option<&ModelShape>,
    opts: AggregateOptions,
    progress: &dyn Progress,
) -> anyhow::Result<RoutingStats> {
    let mut stats: Option<RoutingStats> = None;
    for p in paths {
        let name = label.map_or_else(|| label_of(p), str::to_string);
        let format = Format::detect(p)?;
        let bad =
            |e: StatsError| anyhow::Error::new(crate::BadInput(format!("{}: {e}", p.display())));
        if format == Format::Parquet {
            let (shape, rows) = parquet::read_footer(p)?;
            let st = start(&mut stats, shape, opts, p)?;
            let w = st.workload_mut(&name);
            let tokens = rows as usize / shape.moe_layers;
            let mut acc = Accumulator::new(shape, opts, w, tokens);
            let mut failed = None;
            parquet::read_chunks(p, shape_hint, CHUNK_TOKENS, &mut |chunk, ids| {
                if let Err(e) = acc.push(&chunk, ids) {
                    failed = Some(e);
                    return Err(crate::trace::TraceError::file(
                        p,
                        crate::trace::Defect::Other("stopped".into()),
                    ));
                }
                progress.inc(chunk.num_tokens() as u64);
                Ok(())
            })
            .map_err(|e| match failed.take() {
                Some(f) => bad(f),
                None => anyhow::Error::new(e),
            })
            .with_context(|| format!("aggregating {}", p.display()))?;
        } else {
            let trace = read_trace(p, Some(format), shape_hint)
                .with_context(|| format!("reading trace {}", p.display()))?;
            let shape = *trace.shape();
            let st = start(&mut stats, shape, opts, p)?;
            let ids: Vec<i64> = (0..trace.num_tokens() as i64).collect();
            let mut acc = Accumulator::new(shape, opts, st.workload_mut(&name), trace.num_tokens());
            acc.push(&trace, &ids).map_err(bad)?;
            progress.inc(trace.num_tokens() as u64);
        }
    }
    stats.ok_or_else(|| anyhow::anyhow!("no input traces"))
}

/// The statistics being built, created for `shape` on the first input; later inputs must match.
fn start<'s>(
    stats: &'s mut Option<RoutingStats>,
    shape: ModelShape,
    opts: AggregateOptions,
    path: &Path,
) -> anyhow::Result<&'s mut RoutingStats> {
    let st = stats.get_or_insert_with(|| RoutingStats::new(shape, opts.window_tokens, opts.hops));
    if st.shape != shape {
        return Err(anyhow::Error::new(crate::BadInput(format!(
            "{}: shape {shape:?} differs from the first input's {:?}",
            path.display(),
            st.shape
        ))));
    }
    Ok(st)
}

impl RoutingStats {
    /// The statistics of one in-memory trace as workload `label`, token ids `first_id..`.
    pub fn of_trace(
        trace: &Trace,
        label: &str,
        first_id: i64,
        opts: AggregateOptions,
    ) -> Result<RoutingStats, StatsError> {
        let shape = *trace.shape();
        let mut stats = RoutingStats::new(shape, opts.window_tokens, opts.hops);
        let ids: Vec<i64> = (first_id..first_id + trace.num_tokens() as i64).collect();
        Accumulator::new(shape, opts, stats.workload_mut(label), trace.num_tokens())
            .push(trace, &ids)?;
        Ok(stats)
    }
}
