//! The page: a header, one section per chart (title, what it shows, the SVG, the command behind
//! it), the constants. Inline CSS; no scripts, fonts or images from anywhere.

use std::fmt::Write;

use super::charts::{
    Scale, Series, affinity_graph, gpu_load_bars, heatmap, line_chart, per_layer_bars,
    placement_map, stacked_time_bars,
};
use super::data::{GpuLoads, RecallData, ReportData};
use super::palette::category;
use super::titles;
use crate::predict::EvalReport;

const STYLE: &str = "\
body{font-family:sans-serif;color:#111;background:#fff;margin:0}\
main{max-width:1000px;margin:0 auto;padding:16px 20px 40px}\
h1{font-size:26px;margin:8px 0}h2{font-size:20px;margin:28px 0 4px;border-top:1px solid #ccc;padding-top:14px}\
h3{font-size:15px;margin:12px 0 2px}p{margin:4px 0;line-height:1.4}\
.sub{color:#333;font-size:14px}.cmd{font-size:12px;color:#333}\
code{font-family:monospace;background:#f3f3f3;padding:1px 3px;white-space:pre-wrap;word-break:break-all}\
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.omitted{background:#fff8e6;border-left:4px solid #E69F00;padding:6px 10px}\
svg{display:block;max-width:100%;height:auto}";

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

/// One chart section.
pub(super) struct Section<'a> {
    pub title: &'a str,
    pub what: String,
    pub body: String,
    pub command: &'a str,
}

impl Section<'_> {
    pub fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "<section><h2>{}</h2><p class=\"sub\">{}</p>{}<p class=\"cmd\">Command: <code>{}</code></p></section>",
            escape(self.title),
            escape(&self.what),
            self.body,
            escape(self.command)
        );
    }
}

fn shares(counts: &[Vec<u64>]) -> Vec<Vec<f64>> {
    counts
        .iter()
        .map(|row| {
            let t = row.iter().sum::<u64>().max(1) as f64;
            row.iter().map(|&c| c as f64 / t).collect()
        })
        .collect()
}

fn metrics_row(name: &str, m: &GpuLoads) -> String {
    let x = &m.metrics;
    format!(
        "<td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>",
        escape(name),
        x.ir_mean,
        x.ir_worst,
        x.hop_rate,
        x.layer_time_proxy
    )
}

/// Renders the whole page.
pub fn render(d: &ReportData) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>moeplan report: {} on {}</title><style>{STYLE}</style></head><body><main>\n",
        escape(&d.model.name),
        escape(&d.hardware.name)
    );
    let _ = write!(
        out,
        "<h1>moeplan report: {} on {}</h1><p class=\"sub\">Built on {}{} ({} tokens){}.</p>",
        escape(&d.model.name),
        escape(&d.hardware.name),
        if d.from_stats {
            "the routing statistics of "
        } else {
            ""
        },
        escape(&d.build.join(", ")),
        d.build_tokens,
        d.eval.as_ref().map_or(
            "; no out-of-sample trace (every figure is in-sample)".to_string(),
            |(n, t)| format!("; out-of-sample figures on {} ({t} tokens)", escape(n))
        )
    );
    if let Some(n) = &d.note {
        let _ = write!(out, "<p class=\"sub\">{}</p>", escape(n));
    }
    let _ = writeln!(
        out,
        "<p class=\"cmd\">Made with <code>{}</code></p>",
        escape(&d.command)
    );
    load_sections(d, &mut out)?;
    placement_sections(d, &mut out)?;
    Section {
        title: titles::AFFINITY,
        what: format!(
            "The {} consecutive-layer expert pairs whose tokens co-occur most above chance (lift = \
             P(next | this) / P(next), pairs seen at least {} times), on the build traces. Line \
             width grows with lift; pairs that chain across layers share a colour.",
            d.affinity.pairs.len(),
            d.affinity.min_count
        ),
        body: affinity_graph(&d.affinity.pairs, d.affinity.layers, d.affinity.experts)?,
        command: &d.affinity.command,
    }
    .write(&mut out);
    match &d.cache {
        Some(c) => cache_sections(c, &mut out)?,
        None => omitted(d, &[titles::HIT, titles::STALL], &mut out),
    }
    match &d.recall {
        Some(r) => recall_sections(r, &mut out)?,
        None => omitted(d, &[titles::RECALL, titles::RECALL_ONLINE], &mut out),
    }
    match &d.rebalance {
        Some(r) => super::rebalance_html::sections(r, &mut out)?,
        None => omitted(d, &[titles::REBALANCE, titles::REBALANCE_MOVES], &mut out),
    }
    constants(d, &mut out);
    out.push_str("</main></body></html>\n");
    Ok(out)
}

/// The sections of `titles` this report leaves out, each with why.
fn omitted(d: &ReportData, titles: &[&str], out: &mut String) {
    for (title, why) in d
        .omitted
        .iter()
        .filter(|(t, _)| titles.contains(&t.as_str()))
    {
        let _ = writeln!(
            out,
            "<section><h2>{}</h2><p class=\"omitted\">{}</p></section>",
            escape(title),
            escape(why)
        );
    }
}

fn load_sections(d: &ReportData, out: &mut String) -> anyhow::Result<()> {
    let share = shares(&d.load.counts);
    let max = share.iter().flatten().copied().fold(0.0, f64::max);
    let worst = d.load.imbalance.iter().copied().fold(0.0, f64::max);
    Section {
        title: titles::LOAD,
        what: format!(
            "Share of each layer's token-selections per expert on {} (uniform = {:.2}%); the \
             busiest expert of a layer carries up to {worst:.2}x the mean.",
            d.load.trace,
            100.0 / d.model.experts.max(1) as f64
        ),
        body: heatmap(
            &share,
            Scale::Sequential { max },
            "expert",
            "MoE layer",
            "share of layer (%)",
            100.0,
        )?,
        command: &d.load.command,
    }
    .write(out);
    if let Some(s) = &d.shift {
        let max_abs = s
            .delta
            .iter()
            .flatten()
            .map(|v| v.abs())
            .fold(0.0, f64::max);
        Section {
            title: titles::SHIFT,
            what: format!(
                "Change of each expert's share of its layer from {} to {}: orange gained, \
                 purple lost.",
                s.a, s.b
            ),
            body: heatmap(
                &s.delta,
                Scale::Diverging { max_abs },
                "expert",
                "MoE layer",
                "share change (points)",
                100.0,
            )?,
            command: &s.command,
        }
        .write(out);
        let mean = s.jsd_per_layer.iter().sum::<f64>() / s.jsd_per_layer.len().max(1) as f64;
        Section {
            title: titles::SHIFT_JSD,
            what: format!(
                "Jensen-Shannon divergence (base 2, 0 = same load, 1 = disjoint) of each layer's \
                 expert load between the two traces; mean {mean:.4}."
            ),
            body: per_layer_bars(&s.jsd_per_layer, "JSD")?,
            command: &s.command,
        }
        .write(out);
    }
    Ok(())
}

fn placement_sections(d: &ReportData, out: &mut String) -> anyhow::Result<()> {
    let p = &d.placement;
    let replicated: usize = p.replicas.iter().flatten().filter(|&&r| r > 1).count();
    Section {
        title: titles::MAP,
        what: format!(
            "The {} plan: which expert each of the {} slots per GPU holds, per layer, coloured \
             by the expert's load on the build traces (viridis, yellow = busiest); a ring marks \
             every slot of a replicated expert ({replicated} replicated (layer, expert) pairs).",
            p.plan_source, p.slots_per_gpu
        ),
        body: placement_map(&p.map, &p.replicas, &p.share, p.slots_per_gpu)?,
        command: &p.command,
    }
    .write(out);
    let y_max = p
        .methods
        .iter()
        .flat_map(|m| std::iter::once(&m.in_sample).chain(m.eval.as_ref()))
        .flat_map(|g| g.relative.iter().flatten())
        .copied()
        .fold(1.0, f64::max)
        * 1.05;
    let splits: [(&str, bool); 2] = [(titles::GPU_IN, false), (titles::GPU_EVAL, true)];
    for (title, eval) in splits {
        if eval && d.eval.is_none() {
            continue;
        }
        let mut body = String::from(
            "<table><tr><th>method</th><th>IR mean</th><th>IR worst</th><th>hop rate</th><th>layer-time proxy</th></tr>",
        );
        for m in &p.methods {
            if let Some(g) = if eval {
                m.eval.as_ref()
            } else {
                Some(&m.in_sample)
            } {
                let _ = write!(body, "<tr>{}</tr>", metrics_row(&m.name, g));
            }
        }
        body.push_str("</table>");
        for m in &p.methods {
            if let Some(g) = if eval {
                m.eval.as_ref()
            } else {
                Some(&m.in_sample)
            } {
                let _ = write!(
                    body,
                    "<h3>{}: IR mean {:.3}, worst {:.3}</h3>",
                    escape(&m.name),
                    g.metrics.ir_mean,
                    g.metrics.ir_worst
                );
                body += &gpu_load_bars(&g.relative, y_max)?;
            }
        }
        let on = if eval {
            d.eval.as_ref().map_or(String::new(), |(n, _)| n.clone())
        } else {
            d.build.join(", ")
        };
        Section {
            title,
            what: format!(
                "Token-selections each GPU serves per layer over the layer's mean (1 = perfect \
                 balance, dashed), on {on}; the busiest GPU of each layer in vermillion. IR: \
                 busiest GPU / mean; hop rate: share of consecutive-layer expert pairs on \
                 different GPUs."
            ),
            body,
            command: &p.command,
        }
        .write(out);
    }
    Ok(())
}

fn cache_sections(c: &super::CacheData, out: &mut String) -> anyhow::Result<()> {
    let names: Vec<String> = c
        .by_capacity
        .first()
        .map(|(_, ps)| ps.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let caps: Vec<f64> = c.by_capacity.iter().map(|(k, _)| *k as f64).collect();
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Series {
            label: if n == "opt" {
                "opt (Belady bound)".into()
            } else {
                n.clone()
            },
            points: c
                .by_capacity
                .iter()
                .map(|(k, ps)| (*k as f64, ps[i].hit_ratio))
                .collect(),
            colour: if n == "opt" {
                plotters::style::BLACK
            } else {
                category(i)
            },
            dashed: n == "opt",
        })
        .collect();
    let lo = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::min);
    let sample = if c.out_of_sample {
        "static ranked and predictor trained on the build traces (out-of-sample)"
    } else {
        "static ranked and predictor trained on the replayed trace itself (in-sample)"
    };
    let cmd_hit = c.command.replace("{C}", "C");
    Section {
        title: titles::HIT,
        what: format!(
            "Demands served from GPU memory, replaying {} at batch 1 with C experts resident per \
             layer; {sample}; predictive uses {}. opt is Belady's offline optimum: no policy can \
             do better at the same capacity.",
            c.trace, c.predictor
        ),
        body: line_chart(
            &series,
            &caps,
            ((lo - 0.05).max(0.0), 1.0),
            "experts resident per layer (C)",
            "hit ratio",
        )?,
        command: &cmd_hit,
    }
    .write(out);
    let Some((_, at)) = c.by_capacity.iter().find(|(k, _)| *k == c.capacity) else {
        return Ok(());
    };
    let compute: Vec<f64> = at
        .iter()
        .map(|p| (p.detail.total_ms - p.detail.stall_ms) / p.detail.tokens.max(1) as f64)
        .collect();
    let stall: Vec<f64> = at.iter().map(|p| p.stall_ms_per_token).collect();
    let cmd_stall = c.command.replace("{C}", &c.capacity.to_string());
    Section {
        title: titles::STALL,
        what: format!(
            "Milliseconds per token over the MoE layers at C = {}: GPU compute, and the time the \
             layers wait beyond it for experts to arrive over the {} GB/s host link ({:.3} ms per \
             expert transfer).",
            c.capacity, c.constants.link_gbps, c.constants.transfer_ms
        ),
        body: stacked_time_bars(
            &names,
            &[
                ("compute".to_string(), compute),
                ("transfer stall".to_string(), stall),
            ],
            "ms per token",
        )?,
        command: &cmd_stall,
    }
    .write(out);
    Ok(())
}

/// Recall against look-ahead: one line per predictor and K (solid k, dashed 2k), or per
/// predictor and variant (`second` dashed).
fn recall_series(first: &EvalReport, second: Option<&EvalReport>) -> Vec<Series> {
    let line = |p: &crate::predict::PredictorRecall, k: usize| -> Vec<(f64, f64)> {
        p.recall
            .iter()
            .filter_map(|(&h, by)| by.get(&k).map(|&v| (h as f64, v)))
            .collect()
    };
    let mut series = Vec::new();
    for (i, p) in first.predictors.iter().enumerate() {
        match second {
            None => {
                for (j, &k) in first.ks.iter().enumerate() {
                    series.push(Series {
                        label: format!("{} @{k}", p.name),
                        points: line(p, k),
                        colour: category(i),
                        dashed: j > 0,
                    });
                }
            }
            Some(off) => {
                let k = first.ks[0];
                series.push(Series {
                    label: format!("{} online", p.name),
                    points: line(p, k),
                    colour: category(i),
                    dashed: false,
                });
                if let Some(q) = off.predictors.iter().find(|q| q.name == p.name) {
                    series.push(Series {
                        label: format!("{} offline", p.name),
                        points: line(q, k),
                        colour: category(i),
                        dashed: true,
                    });
                }
            }
        }
    }
    series
}

fn recall_sections(d: &RecallData, out: &mut String) -> anyhow::Result<()> {
    let r = &d.report;
    let hmax = r
        .predictors
        .iter()
        .flat_map(|p| p.recall.keys().copied())
        .max()
        .unwrap_or(1);
    let ticks: Vec<f64> = (1..=hmax).map(|h| h as f64).collect();
    let ks: Vec<String> = r.ks.iter().map(|k| k.to_string()).collect();
    Section {
        title: titles::RECALL,
        what: format!(
            "recall@K: share of the true top-{} experts of layer l+h found among the K best-scored \
             when layer l has just been routed (K = {}; solid: K = {}, dashed: K = {}), mean over \
             the {} tokens of {} and every layer.",
            r.shape.top_k,
            ks.join(", "),
            ks.first().map_or("", String::as_str),
            ks.get(1).map_or("-", String::as_str),
            r.tokens,
            d.trace
        ),
        body: line_chart(
            &recall_series(r, None),
            &ticks,
            (0.0, 1.0),
            "look-ahead h (layers)",
            "recall@K",
        )?,
        command: &d.command,
    }
    .write(out);
    let k = d.online.ks.first().copied().unwrap_or(r.shape.top_k);
    Section {
        title: titles::RECALL_ONLINE,
        what: format!(
            "recall@{k} of the same predictors updated while serving (prequential: each token of \
             {} is predicted from the tokens before it, then its routing is counted, with the \
             predictor file's decay), solid, against their offline recall@{k} from the chart \
             above, dashed. temporal (the previous token's experts) is online by nature: its two \
             lines coincide.",
            d.trace
        ),
        body: line_chart(
            &recall_series(&d.online, Some(r)),
            &ticks,
            (0.0, 1.0),
            "look-ahead h (layers)",
            &format!("recall@{k}"),
        )?,
        command: &d.online_command,
    }
    .write(out);
    Ok(())
}

fn kv_table(out: &mut String, caption: &str, value: &serde_json::Value) {
    let _ = write!(out, "<h3>{}</h3><table>", escape(caption));
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(k),
                escape(&v)
            );
        }
    }
    out.push_str("</table>");
}

fn constants(d: &ReportData, out: &mut String) {
    let _ = write!(out, "<section><h2>{}</h2>", escape(titles::CONSTANTS));
    let settings: serde_json::Map<String, serde_json::Value> = d
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    kv_table(out, "report settings", &serde_json::Value::Object(settings));
    kv_table(
        out,
        &format!("model {}", d.model.name),
        &serde_json::to_value(&d.model).unwrap_or_default(),
    );
    kv_table(
        out,
        &format!("hardware {} (placement)", d.hardware.name),
        &serde_json::to_value(&d.hardware).unwrap_or_default(),
    );
    if let Some(c) = &d.cache {
        kv_table(
            out,
            &format!("cache timing model ({})", d.cache_hardware.name),
            &serde_json::to_value(c.constants).unwrap_or_default(),
        );
    }
    if let Some(r) = &d.rebalance {
        kv_table(
            out,
            &format!("re-balancing layer-time model ({})", d.hardware.name),
            &serde_json::to_value(r.report.time_model).unwrap_or_default(),
        );
    }
    out.push_str("</section>\n");
}
