//! `moeplan report` end to end: the page is rendered by headless Chromium (Debian's `chromium`)
//! to a PNG and a DOM dump; the picture must not be blank, every chart title must be in the
//! rendered DOM, every SVG must parse as XML, and the page must request nothing from the network
//! (checked in the HTML and in Chromium's own network log). Without Chromium the browser checks
//! are skipped, except under CI, where `scripts/setup.sh` installs it and they must run.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::moeplan;

/// Requests Chromium makes for itself (clock and component updates, account probe) even with
/// background networking off; a page request is anything else that is not `file://`.
const BROWSER_OWN: [&str; 4] = [
    "http://clients2.google.com/time/1/current?",
    "http://update.googleapis.com/service/update2/json?",
    "https://update.googleapis.com/service/update2/json?",
    "https://accounts.google.com/ListAccounts?",
];

/// The Chromium binary, or `None` (the test is then skipped, but never under CI).
fn chromium() -> Option<PathBuf> {
    let candidates = ["chromium", "chromium-browser"];
    let found = std::env::var_os("MOEPLAN_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            candidates.iter().find_map(|c| {
                std::env::var_os("PATH").and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(c))
                        .find(|f| f.is_file())
                })
            })
        });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "CI is set but chromium is missing: scripts/setup.sh installs it (apt-get install chromium)"
        );
        eprintln!("skipping the browser checks: chromium not found (scripts/setup.sh installs it)");
    }
    found
}

/// Runs headless Chromium on `page` with `mode` (`--screenshot=...` or `--dump-dom`), logging
/// its network activity to `net_log`; returns stdout.
fn run_chromium(bin: &Path, page: &Path, mode: &str, size: (u32, u32), net_log: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // Nothing resolves: a page that did try the network gets nowhere, but is logged.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(mode)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// URLs in Chromium's net log that the page asked for (not `file://`, not Chromium's own).
fn page_requests(net_log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(net_log).expect("net log written");
    let log: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        // Chromium may leave the closing of the event list out when killed; close it.
        serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))).unwrap()
    });
    let mut urls = Vec::new();
    for e in log["events"].as_array().expect("events") {
        if let Some(u) = e["params"]["url"].as_str()
            && !u.starts_with("file://")
            && !u.starts_with("data:")
            && !BROWSER_OWN.iter().any(|b| u.starts_with(b))
        {
            urls.push(u.to_string());
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

/// Every `<svg ...>...</svg>` of an HTML text.
fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<svg") {
        let j = rest[i..].find("</svg>").expect("closed svg") + i + "</svg>".len();
        out.push(&rest[i..j]);
        rest = &rest[j..];
    }
    out
}

/// Attribute values that would make a browser fetch something, if remote.
fn remote_references(html: &str) -> Vec<String> {
    let lower = html.to_lowercase();
    let mut found = Vec::new();
    for key in ["src=", "href=", "url(", "@import", "srcset="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let at = from + i + key.len();
            let v: String = lower[at..].chars().take(40).collect();
            let v = v.trim_start_matches(['"', '\'', ' ']);
            if v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//") {
                found.push(format!("{key}{v}"));
            }
            from = at;
        }
    }
    found
}

fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("screenshot written"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let px = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, px)
}

/// The chart titles of a report with an eval trace and one build trace.
fn demo_titles() -> Vec<&'static str> {
    use moeplan::report::titles::*;
    vec![
        LOAD,
        SHIFT,
        SHIFT_JSD,
        MAP,
        GPU_IN,
        GPU_EVAL,
        AFFINITY,
        HIT,
        STALL,
        RECALL,
        RECALL_ONLINE,
        REBALANCE,
        REBALANCE_MOVES,
        CONSTANTS,
    ]
}

#[test]
fn demo_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("demo.html");
    let out = moeplan()
        .args(["demo", "-q", "--time-limit", "2", "--report"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();

    // Static checks: no scripts, nothing remote, every SVG well-formed XML.
    assert!(!html.contains("<script"), "the page has a script");
    assert_eq!(remote_references(&html), Vec::<String>::new());
    let charts = svgs(&html);
    // 1 load + 2 shift + 1 map + 3 x 2 GPU-load bars + affinity + hit + stall + 2 recall
    // (offline, online) + 2 re-balancing (imbalance, moves).
    assert_eq!(charts.len(), 17, "SVG charts in the page");
    assert!(
        !html.contains("class=\"omitted\""),
        "the demo leaves a section out"
    );
    for s in &charts {
        let doc = roxmltree::Document::parse(s).unwrap_or_else(|e| panic!("SVG is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.root_element().descendants().count() > 20,
            "an empty chart"
        );
    }
    for t in demo_titles() {
        assert!(html.contains(&format!("<h2>{t}</h2>")), "no section {t:?}");
    }

    let Some(bin) = chromium() else { return };
    let shot = dir.path().join("demo.png");
    let net = dir.path().join("net.json");
    run_chromium(
        &bin,
        &page,
        &format!("--screenshot={}", shot.display()),
        (1000, 2400),
        &net,
    );
    let (w, h, px) = decode_png(&shot);
    assert_eq!((w, h), (1000, 2400));
    let distinct: HashSet<[u8; 3]> = px.iter().copied().collect();
    let ink = px.iter().filter(|p| p.iter().any(|&c| c < 235)).count();
    assert!(
        distinct.len() > 200,
        "{} distinct colours only",
        distinct.len()
    );
    assert!(
        ink * 10 > px.len(),
        "only {ink} of {} pixels are not white: a blank page",
        px.len()
    );
    assert_eq!(
        page_requests(&net),
        Vec::<String>::new(),
        "the page fetched"
    );

    let dom = run_chromium(&bin, &page, "--dump-dom", (1000, 2400), &net);
    for t in demo_titles() {
        assert!(
            dom.contains(t),
            "chart title {t:?} is not in the rendered DOM"
        );
    }
    // The browser parsed the SVGs into DOM nodes: their axis text is in the DOM too.
    assert!(dom.contains("MoE layer") && dom.contains("hit ratio"));
    assert!(dom.contains("scored window") && dom.contains("replicas moved"));
    assert_eq!(
        page_requests(&net),
        Vec::<String>::new(),
        "the page fetched"
    );
}

/// The network check does catch a page that fetches (it is not vacuous).
#[test]
fn network_check_catches_a_remote_image() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("remote.html");
    std::fs::write(
        &page,
        "<html><body><img src=\"https://fonts.example.com/x.png\"></body></html>",
    )
    .unwrap();
    let found = remote_references(&std::fs::read_to_string(&page).unwrap());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("src=https://fonts.example.com"),
        "{found:?}"
    );
    let Some(bin) = chromium() else { return };
    let net = dir.path().join("net.json");
    run_chromium(&bin, &page, "--dump-dom", (400, 300), &net);
    assert_eq!(page_requests(&net), vec!["https://fonts.example.com/x.png"]);
}
