//! `moeplan report` on real traces without a browser: the sections a given input calls for, the
//! placement map of a plan file (one ring pair per slot of a replicated expert), the online recall
//! and re-balancing charts, a report from a statistics file, bad input.

mod common;

use common::moeplan;
use moeplan::report::titles;

fn svg_after<'a>(html: &'a str, title: &str) -> &'a str {
    let at = html
        .find(&format!("<h2>{title}</h2>"))
        .unwrap_or_else(|| panic!("no section {title:?}"));
    let i = html[at..].find("<svg").unwrap() + at;
    let j = html[i..].find("</svg>").unwrap() + i + "</svg>".len();
    &html[i..j]
}

/// The text labels of an SVG.
fn svg_labels(svg: &str) -> Vec<String> {
    roxmltree::Document::parse(svg)
        .unwrap()
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

fn base_args() -> Vec<&'static str> {
    args_for(&["-t", "traces/sample.parquet", "-t", "traces/esft-excerpt"])
}

/// A quick report's arguments for the trace flags `traces`.
fn args_for(traces: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["report", "-q"];
    v.extend(traces);
    v.extend([
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--capacities",
        "8,16",
        "--capacity",
        "8",
        "--lookahead",
        "2",
        "--time-limit",
        "1",
    ]);
    v
}

#[test]
fn two_traces_and_a_plan_file() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    common::moeplan_ok(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--redundant",
        "16",
        "--method",
        "eplb",
        "-o",
        plan.to_str().unwrap(),
    ]);
    let page = dir.path().join("r.html");
    let mut args = base_args();
    args.extend([
        "--plan",
        plan.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    common::moeplan_ok(&args);
    let html = std::fs::read_to_string(&page).unwrap();
    // Two -t traces: the shift between them; no eval trace: no out-of-sample section.
    assert!(html.contains(&format!("<h2>{}</h2>", titles::SHIFT)));
    assert!(html.contains(&format!("<h2>{}</h2>", titles::SHIFT_JSD)));
    assert!(!html.contains(titles::GPU_EVAL));
    assert!(html.contains("every figure is in-sample"));
    assert!(html.contains("The plan ("), "the map is of the plan file");
    // Every slot of a replicated expert carries a ring (two circles: fill and outline).
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let mut ringed = 0;
    for (row, counts) in file["physical_to_logical_map"]
        .as_array()
        .unwrap()
        .iter()
        .zip(file["replica_count"].as_array().unwrap())
    {
        for e in row.as_array().unwrap() {
            if counts[e.as_u64().unwrap() as usize].as_u64().unwrap() > 1 {
                ringed += 1;
            }
        }
    }
    assert!(ringed >= 16, "EPLB with 16 redundant slots replicates");
    let map = roxmltree::Document::parse(svg_after(&html, titles::MAP)).unwrap();
    let circles = map
        .descendants()
        .filter(|n| n.tag_name().name() == "circle")
        .count();
    assert_eq!(circles, 2 * ringed);
    // The hit-ratio chart names every policy, the bound as such.
    let hit = roxmltree::Document::parse(svg_after(&html, titles::HIT)).unwrap();
    let labels: Vec<&str> = hit
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for p in ["lru", "lfu", "static", "predictive", "opt (Belady bound)"] {
        assert!(labels.contains(&p), "{p} not in the legend: {labels:?}");
    }
    // Online recall: each predictor online (solid) against its offline recall (dashed).
    let online = svg_labels(svg_after(&html, titles::RECALL_ONLINE));
    for p in ["static", "temporal", "markov", "mix"] {
        for v in ["online", "offline"] {
            let l = format!("{p} {v}");
            assert!(online.contains(&l), "{l} not in the legend: {online:?}");
        }
    }
    // Re-balancing over the two traces as one stream: every policy in both charts.
    for t in [titles::REBALANCE, titles::REBALANCE_MOVES] {
        let l = svg_labels(svg_after(&html, t));
        for p in ["static", "eplb", "moeplan"] {
            assert!(l.contains(&p.to_string()), "{p} not in {t}: {l:?}");
        }
    }
    assert!(html.contains("scored window"));
    assert!(!html.contains("class=\"omitted\""));
    // Each chart's command is on the page.
    assert!(html.contains("moeplan trace stats -t traces/sample.parquet -t traces/esft-excerpt"));
    assert!(html.contains("moeplan replay -t traces/sample.parquet -t traces/esft-excerpt"));
    assert!(html.contains("--lookahead 2 --online --json"));
    assert!(html.contains(
        "moeplan rebalance -t traces/sample.parquet -t traces/esft-excerpt --model deepseek-v2-lite \
         --hardware h100-8x-nvlink --window "
    ));
}

/// `report --stats`: the count-only charts equal those from the traces the file was aggregated
/// from; the token-level ones say why they are not there; re-balancing over the file's windows.
#[test]
fn report_from_a_statistics_file() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.parquet");
    common::moeplan_ok(&[
        "trace",
        "aggregate",
        "-q",
        "-t",
        "traces/esft/law.parquet",
        "-t",
        "traces/esft/summary.parquet",
        "--window",
        "1000",
        "--window-pairs",
        "-o",
        stats.to_str().unwrap(),
    ]);
    let common_args = [
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--time-limit",
        "1",
    ];
    let from_stats = dir.path().join("s.html");
    let mut args = vec!["report", "-q", "--stats", stats.to_str().unwrap()];
    args.extend(common_args);
    args.extend(["-o", from_stats.to_str().unwrap()]);
    common::moeplan_ok(&args);
    let from_traces = dir.path().join("t.html");
    let mut args = vec![
        "report",
        "-q",
        "-t",
        "traces/esft/law.parquet",
        "-t",
        "traces/esft/summary.parquet",
        "--predictor",
        "markov",
        "--capacities",
        "8",
        "--capacity",
        "8",
        "--lookahead",
        "1",
    ];
    args.extend(common_args);
    args.extend(["-o", from_traces.to_str().unwrap()]);
    common::moeplan_ok(&args);
    let (s, t) = (
        std::fs::read_to_string(&from_stats).unwrap(),
        std::fs::read_to_string(&from_traces).unwrap(),
    );
    assert!(s.contains("Built on the routing statistics of"));
    for title in [
        titles::LOAD,
        titles::SHIFT,
        titles::SHIFT_JSD,
        titles::AFFINITY,
    ] {
        assert_eq!(svg_after(&s, title), svg_after(&t, title), "{title}");
    }
    for title in [
        titles::MAP,
        titles::GPU_IN,
        titles::REBALANCE,
        titles::REBALANCE_MOVES,
    ] {
        roxmltree::Document::parse(svg_after(&s, title)).unwrap();
    }
    // Needs tokens: the section is there, with why, and no chart.
    for title in [
        titles::HIT,
        titles::STALL,
        titles::RECALL,
        titles::RECALL_ONLINE,
    ] {
        let at = s.find(&format!("<h2>{title}</h2>")).unwrap();
        let section = &s[at..at + s[at..].find("</section>").unwrap()];
        assert!(section.contains("token-level routing"), "{section}");
        assert!(!section.contains("<svg"));
    }
    assert!(s.contains("workloads law, summary, one after the other"));
    assert!(s.contains(&format!(
        "moeplan rebalance --stats {} --model deepseek-v2-lite --hardware h100-8x-nvlink \
         --window 1000 --json",
        stats.display()
    )));
    // Without per-window pairs the re-balancing sections say how to get them.
    let plain = dir.path().join("plain.parquet");
    common::moeplan_ok(&[
        "trace",
        "aggregate",
        "-q",
        "-t",
        "traces/esft/law.parquet",
        "-o",
        plain.to_str().unwrap(),
    ]);
    let mut args = vec!["report", "-q", "--stats", plain.to_str().unwrap()];
    args.extend(common_args);
    args.extend(["-o", from_stats.to_str().unwrap()]);
    common::moeplan_ok(&args);
    let s = std::fs::read_to_string(&from_stats).unwrap();
    let at = s.find(&format!("<h2>{}</h2>", titles::REBALANCE)).unwrap();
    assert!(s[at..].contains("--window-pairs"));
    assert!(
        !s.contains(&format!("<h2>{}</h2>", titles::SHIFT)),
        "one workload: no shift"
    );
}

#[test]
fn bad_input_exits_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let run = |extra: &[&str]| {
        let mut args = base_args();
        args.extend(extra);
        args.extend(["-o", page.to_str().unwrap()]);
        moeplan().args(&args).output().unwrap()
    };
    let out = run(&["--predictor", "oracle"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"oracle\""));
    // A plan for 16 GPUs on an 8-GPU machine.
    let plan = dir.path().join("plan16.json");
    common::moeplan_ok(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-2x8-ib",
        "--method",
        "contiguous",
        "-o",
        plan.to_str().unwrap(),
    ]);
    let out = run(&["--predictor", "markov", "--plan", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plan16.json") && err.contains("16 GPUs"),
        "{err}"
    );
    assert!(!page.exists(), "no page written on bad input");
}

#[test]
fn an_eval_trace_adds_the_out_of_sample_loads_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let mut args = args_for(&[
        "-t",
        "traces/sample.parquet",
        "--eval",
        "traces/esft-excerpt",
    ]);
    args.extend(["-o", page.to_str().unwrap()]);
    common::moeplan_ok(&args);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("<h2>{}</h2>", titles::GPU_EVAL)));
    // One -t and --eval: the shift is from the build trace to the eval trace.
    assert!(html.contains(&format!("<h2>{}</h2>", titles::SHIFT)));
    assert!(
        html.contains("--eval traces/esft-excerpt"),
        "the command names the eval trace"
    );
    assert!(!html.contains("every figure is in-sample"));
}
