//! Probes of a hostile user against the `moeplan` commands: each once crashed (abort, panic),
//! hung, lost data or was accepted where it had to be refused. Every run has a deadline, so a
//! regression fails instead of hanging the suite.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion within `limit`, or kills it and fails.
fn within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {:?}\n{}",
                cmd,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `moeplan args...` within 60 s.
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut c = common::moeplan();
    c.args(args);
    within(c, Duration::from_secs(60))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code `code` and that stderr mentions every one of `words`.
fn expect(o: &Output, code: i32, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

const HEADER_OK: &str = r#"{"moeplan_trace": 1, "shape": {"moe_layers": 2, "experts": 4, "top_k": 1, "first_moe_layer": 0}}"#;

fn jsonl(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn token(seq: u32, pos: u32) -> String {
    format!(r#"{{"seq": {seq}, "pos": {pos}, "experts": [[1], [2]], "weights": [[1.0], [1.0]]}}"#)
}

// ---- 2. headers that lie about the shape ----

#[test]
fn a_jsonl_header_with_a_huge_shape_is_refused_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let t = token(0, 0);
    for shape in [
        r#"{"moe_layers": 18446744073709551615, "experts": 4, "top_k": 1, "first_moe_layer": 0}"#,
        r#"{"moe_layers": 65534, "experts": 65535, "top_k": 1, "first_moe_layer": 0}"#,
        r#"{"moe_layers": 1000, "experts": 2000, "top_k": 64, "first_moe_layer": 0}"#,
    ] {
        let header = format!(r#"{{"moeplan_trace": 1, "shape": {shape}}}"#);
        let path = jsonl(dir.path(), "huge.jsonl", &[&header, &t]);
        let out = p(&dir.path().join("out.parquet"));
        let pred = p(&dir.path().join("p.safetensors"));
        for cmd in [
            vec!["trace", "stats", "-t", &p(&path)],
            vec!["trace", "convert", "-t", &p(&path), "-o", &out],
            vec![
                "predict",
                "train",
                "-t",
                &p(&path),
                "--kind",
                "markov",
                "-o",
                &pred,
            ],
        ] {
            let o = run(&cmd);
            expect(&o, 3, &["huge.jsonl"]);
        }
    }
}

#[test]
fn parquet_shape_metadata_with_a_huge_shape_is_refused() {
    use arrow_array::builder::{Float32Builder, Int32Builder, ListBuilder};
    use arrow_array::{ArrayRef, Int16Array, Int32Array, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lie.parquet");
    let schema = Arc::new(moeplan::trace::parquet::schema());
    let shape = r#"{"moe_layers": 4000000000, "experts": 65535, "top_k": 1, "first_moe_layer": 0}"#;
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![
            KeyValue::new("moeplan.trace_version".into(), "1".to_string()),
            KeyValue::new("moeplan.shape".into(), shape.to_string()),
        ]))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        schema.clone(),
        Some(props),
    )
    .unwrap();
    let mut eb = ListBuilder::new(Int32Builder::new());
    eb.values().append_value(1);
    eb.append(true);
    let mut wb = ListBuilder::new(Float32Builder::new());
    wb.values().append_value(1.0);
    wb.append(true);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0])),
        Arc::new(Int64Array::from(vec![0])),
        Arc::new(Int32Array::from(vec![0])),
        Arc::new(Int16Array::from(vec![0])),
        Arc::new(eb.finish()),
        Arc::new(wb.finish()),
    ];
    w.write(&RecordBatch::try_new(schema, cols).unwrap())
        .unwrap();
    w.close().unwrap();
    let o = run(&["trace", "stats", "-t", &p(&path)]);
    expect(&o, 3, &["moeplan.shape", "moe_layers"]);
}

// ---- 3. infinite link costs, unchecked floats in configs ----

fn hardware(dir: &Path, name: &str, edit: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string("configs/hardware/h100-8x-nvlink.toml").unwrap();
    for (key, value) in edit {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no key {key}"))
            .to_string();
        text = text.replace(&line, &format!("{key} = {value}"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn hardware_floats_must_be_finite_and_in_range() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("cost_intra_node", "inf"),
        ("cost_inter_node", "nan"),
        ("cpu_expert_ms", "-1.0"),
        ("cpu_expert_ms", "nan"),
        ("host_to_device_gbps", "inf"),
        ("intra_node_gbps", "-5.0"),
        ("intra_node_gbps", "nan"),
        ("layer_compute_ms_per_token", "nan"),
        ("hbm_gib", "0.0"),
    ] {
        let mut edits = vec![(key, value)];
        if key == "cost_intra_node" {
            edits.push(("cost_inter_node", "inf"));
        }
        let hw = hardware(dir.path(), "hw.toml", &edits);
        let o = run(&[
            "place",
            "-q",
            "-t",
            "traces/sample.parquet",
            "--model",
            "deepseek-v2-lite",
            "--hardware",
            &p(&hw),
            "--method",
            "ilp",
            "--time-limit",
            "3",
        ]);
        expect(&o, 3, &["hw.toml", key]);
        let o = run(&[
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "8",
            "--policy",
            "lru",
            "--cpu-offload",
            "--hardware",
            &p(&hw),
        ]);
        expect(&o, 3, &["hw.toml", key]);
    }
}

#[test]
fn the_ilp_time_limit_holds_with_the_largest_costs_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let hw = hardware(
        dir.path(),
        "hw.toml",
        &[("cost_intra_node", "1e6"), ("cost_inter_node", "1e6")],
    );
    let start = Instant::now();
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        &p(&hw),
        "--method",
        "ilp",
        "--time-limit",
        "2",
        "--json",
    ]);
    expect(&o, 0, &[]);
    // 2 s of solving plus loading, scoring and a slow test machine.
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "{:?}",
        start.elapsed()
    );
    let hw = hardware(dir.path(), "hw2.toml", &[("cost_inter_node", "1e7")]);
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        &p(&hw),
        "--method",
        "ilp",
    ]);
    expect(&o, 3, &["cost_inter_node", "1e6"]);
}

// ---- 4. overflowing slot counts ----

#[test]
fn redundant_slots_that_would_overflow_name_the_flag_or_key() {
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--method",
        "eplb",
        "--redundant",
        "18446744073709551608",
    ]);
    expect(&o, 3, &["--redundant 18446744073709551608"]);
    let dir = tempfile::tempdir().unwrap();
    let hw = hardware(
        dir.path(),
        "hw.toml",
        &[("redundant_slots_per_gpu", "2305843009213693952")],
    );
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        &p(&hw),
        "--method",
        "contiguous",
    ]);
    expect(&o, 3, &["redundant_slots_per_gpu"]);
}

// ---- 5. sizes beyond memory ----

#[test]
fn synth_beyond_memory_is_refused_with_the_size_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v3.parquet");
    let o = run(&[
        "trace",
        "synth",
        "--model",
        "deepseek-v3",
        "--tokens",
        "1000000000",
        "-o",
        &p(&out),
    ]);
    expect(&o, 3, &["GiB"]);
    assert!(!out.exists());
    let model = dir.path().join("absurd.toml");
    let text = std::fs::read_to_string("configs/models/deepseek-v2-lite.toml")
        .unwrap()
        .replace("layers = 27", "layers = 1000000001")
        .replace("moe_layers = 26", "moe_layers = 1000000000");
    std::fs::write(&model, text).unwrap();
    let o = run(&[
        "trace",
        "synth",
        "--model",
        &p(&model),
        "--tokens",
        "10",
        "-o",
        &p(&out),
    ]);
    expect(&o, 3, &["absurd.toml", "moe_layers"]);
}

// ---- 7. convert onto its own input ----

#[test]
fn convert_onto_its_own_input_is_refused_also_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    std::fs::copy("traces/sample.parquet", &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let link = dir.path().join("link.parquet");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for out in [&input, &link] {
        let o = run(&["trace", "convert", "-t", &p(&input), "-o", &p(out)]);
        expect(&o, 3, &["is the input"]);
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn a_killed_convert_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("law.jsonl");
    std::fs::write(&out, "previous contents\n").unwrap();
    let mut child = common::moeplan()
        .args([
            "trace",
            "convert",
            "-t",
            "traces/esft/law.parquet",
            "-o",
            &p(&out),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    // Either the previous file or the whole new one, never a truncated mix.
    if text != "previous contents\n" {
        assert!(text.ends_with('\n'));
        let o = run(&["trace", "stats", "-t", &p(&out), "--json"]);
        expect(&o, 0, &[]);
    }
}

// ---- 9, 10. ESFT layer files and weights ----

fn esft_copy(dir: &Path) -> PathBuf {
    let esft = dir.join("esft");
    let o = run(&[
        "trace",
        "convert",
        "-t",
        "traces/sample.parquet",
        "--first-sequences",
        "2",
        "--to",
        "esft",
        "-o",
        &p(&esft),
    ]);
    expect(&o, 0, &[]);
    esft
}

#[test]
fn an_esft_directory_missing_its_last_layer_is_not_read_silently() {
    let dir = tempfile::tempdir().unwrap();
    let esft = esft_copy(dir.path());
    std::fs::remove_file(esft.join("expert_weights_26.txt")).unwrap();
    let o = run(&[
        "trace",
        "stats",
        "-t",
        &p(&esft),
        "--model",
        "deepseek-v2-lite",
    ]);
    expect(&o, 3, &["25 layer files", "26 MoE layers"]);
    let o = run(&["trace", "stats", "-t", &p(&esft)]);
    expect(&o, 0, &["25 layer files", "26", "--model"]);
    std::fs::write(esft.join("expert_weights_0.txt"), "1\t\t1\n").unwrap();
    let o = run(&["trace", "stats", "-t", &p(&esft)]);
    expect(&o, 3, &["expert_weights_0.txt", "unexpected layer file"]);
}

#[test]
fn an_esft_weight_that_is_not_a_number_is_refused_naming_the_weight() {
    let dir = tempfile::tempdir().unwrap();
    let esft = dir.path().join("e");
    std::fs::create_dir(&esft).unwrap();
    std::fs::write(esft.join("expert_weights_1.txt"), "1\t2\t\t0.5\t.\n").unwrap();
    let model = dir.path().join("m.toml");
    let text = std::fs::read_to_string("configs/models/deepseek-v2-lite.toml")
        .unwrap()
        .replace("moe_layers = 26", "moe_layers = 1")
        .replace("top_k = 6 ", "top_k = 1 ");
    std::fs::write(&model, text).unwrap();
    let o = run(&["trace", "stats", "-t", &p(&esft), "--model", &p(&model)]);
    expect(&o, 3, &["weights[1]", "\".\""]);
    std::fs::write(esft.join("expert_weights_1.txt"), "1\t2\t\t0.5\t1.5\n").unwrap();
    let o = run(&["trace", "stats", "-t", &p(&esft), "--model", &p(&model)]);
    expect(&o, 3, &["weights[1]"]);
}

// ---- 11. 0-token traces ----

#[test]
fn zero_token_traces_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.parquet");
    let o = run(&[
        "trace",
        "convert",
        "-t",
        "traces/sample.parquet",
        "--first-sequences",
        "0",
        "-o",
        &p(&out),
    ]);
    expect(&o, 2, &["--first-sequences"]);
    let o = run(&[
        "trace",
        "synth",
        "--model",
        "mixtral-8x7b",
        "--tokens",
        "0",
        "-o",
        &p(&out),
    ]);
    expect(&o, 2, &["--tokens"]);
    assert!(!out.exists());
}

// ---- 18. values accepted where they should be refused ----

#[test]
fn nan_zero_and_out_of_range_flags_are_refused() {
    let place = |extra: &[&str]| {
        let mut a = vec![
            "place",
            "-q",
            "-t",
            "traces/sample.parquet",
            "--model",
            "deepseek-v2-lite",
            "--hardware",
            "h100-8x-nvlink",
            "--method",
            "eplb",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    expect(&place(&["--time-limit", "NaN"]), 2, &["--time-limit"]);
    expect(
        &place(&["--eplb-groups", "3"]),
        3,
        &["--eplb-groups 3", "64 experts"],
    );
    let replay = |extra: &[&str]| {
        let mut a = vec!["replay", "-t", "traces/sample.parquet", "--capacity", "8"];
        a.extend_from_slice(extra);
        run(&a)
    };
    for (flag, v) in [
        ("--prefetch-margin", "NaN"),
        ("--half-life", "NaN"),
        ("--half-life", "0"),
        ("--beta", "NaN"),
    ] {
        expect(&replay(&[flag, v]), 2, &[flag]);
    }
    for v in ["0", "100"] {
        expect(
            &replay(&["--lookahead", v, "--policy", "predictive"]),
            3,
            &["--lookahead"],
        );
    }
    let o = run(&[
        "trace",
        "synth",
        "--model",
        "mixtral-8x7b",
        "--seq-len",
        "0",
        "-o",
        "/tmp/x.jsonl",
    ]);
    expect(&o, 2, &["--seq-len"]);
}

// ---- 19. consistency ----

/// `place --method eplb` for DeepSeek-V2-Lite on a one-token JSONL trace `name` in `dir` with
/// the model's 26 MoE layers and 64 experts but `top_k` and `first_moe_layer` as given.
fn place_one_token(dir: &Path, name: &str, top_k: usize, first_moe_layer: usize) -> Output {
    let header = format!(
        r#"{{"moeplan_trace": 1, "shape": {{"moe_layers": 26, "experts": 64, "top_k": {top_k}, "first_moe_layer": {first_moe_layer}}}}}"#
    );
    let ids: Vec<String> = (0..top_k).map(|j| j.to_string()).collect();
    let layer = format!("[{}]", ids.join(","));
    let weights = format!("[{}]", vec!["1.0"; top_k].join(","));
    let rec = format!(
        r#"{{"seq": 0, "pos": 0, "experts": [{}], "weights": [{}]}}"#,
        vec![layer; 26].join(","),
        vec![weights; 26].join(",")
    );
    let path = jsonl(dir, name, &[&header, &rec]);
    run(&[
        &common::PLACE_SAMPLE[..2],
        &["-t", &p(&path)],
        &common::PLACE_SAMPLE[4..],
        &["--method", "eplb"],
    ]
    .concat())
}

#[test]
fn traces_must_agree_with_the_model_and_be_consistent() {
    let dir = tempfile::tempdir().unwrap();
    // DeepSeek-V2-Lite's layers and experts, but top-1: `place` used to accept it.
    let o = place_one_token(dir.path(), "k1.jsonl", 1, 1);
    expect(&o, 3, &["top_k 1", "top_k 6"]);
    // A gap in a sequence's positions.
    let path = jsonl(
        dir.path(),
        "gap.jsonl",
        &[HEADER_OK, &token(0, 0), &token(0, 2)],
    );
    let o = run(&["trace", "stats", "-t", &p(&path)]);
    expect(&o, 3, &["gap.jsonl:3", "position 2"]);
}

// ---- 20. exit codes and messages ----

#[test]
fn missing_and_unreadable_inputs_are_bad_input_with_the_os_error_once() {
    let o = run(&["trace", "stats", "-t", "/nonexistent/t.parquet"]);
    expect(&o, 3, &["/nonexistent/t.parquet"]);
    assert_eq!(
        stderr(&o).matches("os error 2").count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "place",
        "-t",
        "traces/sample.parquet",
        "--model",
        "no-such-model",
        "--hardware",
        "h100-8x-nvlink",
    ]);
    // A bare name is looked up among the built-in configs: the message lists them, no OS error.
    expect(&o, 3, &["no-such-model", "built in are"]);
    assert_eq!(stderr(&o).matches("os error").count(), 0, "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut bytes = HEADER_OK.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n{\"seq\": \xff\xfe}\n");
    std::fs::write(&bad, bytes).unwrap();
    expect(&run(&["trace", "stats", "-t", &p(&bad)]), 3, &["bad.jsonl"]);
    let model = dir.path().join("k.toml");
    let text = std::fs::read_to_string("configs/models/deepseek-v2-lite.toml")
        .unwrap()
        .replace("top_k = 6 ", "top_k = 65 ");
    std::fs::write(&model, text).unwrap();
    let o = run(&[
        "trace",
        "synth",
        "--model",
        &p(&model),
        "--tokens",
        "10",
        "-o",
        "/tmp/x.jsonl",
    ]);
    expect(&o, 3, &["key `top_k`"]);
}

#[test]
fn files_of_the_wrong_kind_are_bad_input_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"a plan\"}").unwrap();
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--method",
        "eplb",
        "--previous",
        &p(&junk),
    ]);
    expect(&o, 3, &["junk.json", "plan"]);
    let o = run(&[
        "replay",
        "-t",
        "traces/sample.parquet",
        "--capacity",
        "8",
        "--policy",
        "predictive",
        "--predictor",
        &p(&junk),
    ]);
    expect(&o, 3, &["junk.json"]);
    let o = run(&[
        "predict",
        "eval",
        "--predictor",
        &p(&junk),
        "-t",
        "traces/sample.parquet",
    ]);
    expect(&o, 3, &["junk.json"]);
}

#[test]
fn a_missing_output_directory_is_found_before_the_solve() {
    let start = Instant::now();
    let o = run(&[
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--method",
        "ilp",
        "--time-limit",
        "30",
        "-o",
        "/nonexistent-dir/plan.json",
    ]);
    expect(&o, 3, &["--output", "/nonexistent-dir"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

// ---- 7. every output written atomically ----

/// The text of every `.rs` file under `dir`, by path, with any `#[cfg(test)]` part cut off.
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            out.push((p, code));
        }
    }
}

#[test]
fn outputs_are_written_only_through_the_atomic_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    // The helper itself, and the daemon's lock file and socket directory (not outputs).
    let allowed = ["src/util/atomic.rs", "src/daemon/server/listen.rs"];
    let calls = [
        "File::create(",
        "fs::write(",
        "OpenOptions::new(",
        "fs::rename(",
        "serialize_to_file(",
    ];
    let mut found = Vec::new();
    for (path, code) in &files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.contains(&rel.as_str()) {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            if calls.iter().any(|c| line.contains(c)) {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "write outputs with moeplan::util::atomic_write (a synced temporary renamed over the \
         target):\n{}",
        found.join("\n")
    );
    assert!(files.len() > 50, "{} source files", files.len());
}

// ---- 18. float and integer flags of every command ----

#[test]
fn float_flags_of_every_command_are_refused_naming_the_flag() {
    let report = |flag: &str, v: &str| {
        run(&[
            &["report", "-q"][..],
            &common::PLACE_SAMPLE[2..],
            &["-o", "/tmp/never.html", flag, v],
        ]
        .concat())
    };
    expect(&report("--time-limit", "NaN"), 2, &["--time-limit"]);
    expect(&report("--time-limit", "0"), 2, &["--time-limit"]);
    for (flag, v) in [
        ("--half-life", "NaN"),
        ("--half-life", "0"),
        ("--beta", "NaN"),
        ("--beta", "-0.5"),
        ("--prefetch-margin", "NaN"),
    ] {
        let o = run(&[
            "run",
            "--model-dir",
            "/nonexistent-model",
            "--trace",
            "traces/sample.parquet",
            "--capacity",
            "8",
            &format!("{flag}={v}"),
        ]);
        expect(&o, 2, &[flag]);
    }
    for (flag, v) in [
        ("--balance-weight", "NaN"),
        ("--balance-weight", "-0.5"),
        ("--comm-weight", "NaN"),
        ("--comm-weight", "inf"),
        ("--history-half-life", "0"),
    ] {
        let arg = format!("{flag}={v}");
        let o = run(&[
            &["rebalance"][..],
            &common::PLACE_SAMPLE[2..],
            &["--window", "64", &arg],
        ]
        .concat());
        expect(&o, 2, &[flag]);
    }
    for v in ["NaN", "0", "2"] {
        let o = run(&["model", "init", "--scale", v, "-o", "/tmp/never-model"]);
        expect(&o, 2, &["--scale"]);
    }
    for (flag, v) in [("--seconds", "NaN"), ("--rate", "NaN")] {
        let o = run(&["bench", "daemon", "--client", "spin", flag, v]);
        expect(&o, 3, &[flag]);
    }
    // Refused whatever the policy, not only with `predictive`.
    for v in ["0", "26", "100"] {
        let o = run(&[
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "8",
            "--policy",
            "lru",
            "--lookahead",
            v,
        ]);
        expect(&o, 3, &[&format!("--lookahead {v}"), "26 MoE layers"]);
    }
}

// ---- 7. the model config's layer count ----

#[test]
fn a_model_config_with_absurd_layers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("deep.toml");
    let text = std::fs::read_to_string("configs/models/deepseek-v2-lite.toml").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("layers"))
        .expect("a layers line");
    std::fs::write(&model, text.replace(line, "layers = 1000000000000")).unwrap();
    let o = run(&[
        "export",
        "--to",
        "sglang-counts",
        "-t",
        "traces/sample.parquet",
        "--model",
        &p(&model),
        "-o",
        &p(&dir.path().join("counts.json")),
    ]);
    expect(&o, 3, &["deep.toml", "key `layers`", "at most 2048"]);
}

// ---- 19. the first MoE layer ----

#[test]
fn place_refuses_a_trace_whose_first_moe_layer_disagrees_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    // DeepSeek-V2-Lite's layers, experts and top-k, but MoE from layer 0 (the model: 1).
    let o = place_one_token(dir.path(), "first0.jsonl", 6, 0);
    expect(
        &o,
        3,
        &["first0.jsonl", "first MoE layer 0", "first_moe_layer 1"],
    );
}

// ---- 20. statistics files and outputs ----

/// A statistics file of the sample (`trace aggregate`) in `dir`.
fn sample_stats(dir: &Path) -> PathBuf {
    let out = dir.join("sample.stats.parquet");
    let o = run(&[
        "trace",
        "aggregate",
        "-q",
        "-t",
        "traces/sample.parquet",
        "-o",
        &p(&out),
    ]);
    expect(&o, 0, &[]);
    out
}

#[test]
fn a_missing_stats_file_is_bad_input_with_the_os_error_once() {
    let missing = "/nonexistent/s.parquet";
    let model = ["--model", "deepseek-v2-lite"];
    let hw = ["--hardware", "h100-8x-nvlink"];
    let runs: Vec<Vec<&str>> = vec![
        [
            &["place", "-q", "--stats", missing, "--method", "eplb"][..],
            &model,
            &hw,
        ]
        .concat(),
        vec![
            "predict",
            "train",
            "--stats",
            missing,
            "-o",
            "/tmp/never.safetensors",
        ],
        [
            &["rebalance", "--window", "64", "--stats", missing][..],
            &model,
            &hw,
        ]
        .concat(),
        [
            &["report", "-q", "--stats", missing, "-o", "/tmp/never.html"][..],
            &model,
            &hw,
        ]
        .concat(),
        vec![
            "stats",
            "merge",
            missing,
            missing,
            "-o",
            "/tmp/never.parquet",
        ],
    ];
    for args in runs {
        let o = run(&args);
        expect(&o, 3, &[missing]);
        assert_eq!(
            stderr(&o).matches("os error 2").count(),
            1,
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn every_output_is_checked_writable_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let stats = sample_stats(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let gone = "/nonexistent-dir/out";
    let model = ["--model", "deepseek-v2-lite"];
    let hw = ["--hardware", "h100-8x-nvlink"];
    let sample = ["-t", "traces/sample.parquet"];
    let under_file = p(&file.join("model"));
    let under_file = under_file.as_str();
    let stats = p(&stats);
    let stats = stats.as_str();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [
                &["place", "-q", "--method", "ilp", "--time-limit", "30"][..],
                &sample,
                &model,
                &hw,
                &["--to", "vllm", "--export", gone],
            ]
            .concat(),
            "--export",
        ),
        (
            [&["report", "-q"][..], &sample, &model, &hw, &["-o", gone]].concat(),
            "--output",
        ),
        (vec!["demo", "-q", "--report", gone], "--report"),
        (
            [&["trace", "aggregate", "-q"][..], &sample, &["-o", gone]].concat(),
            "--output",
        ),
        (vec!["stats", "merge", stats, stats, "-o", gone], "--output"),
        (
            [
                &["export", "--to", "sglang-counts"][..],
                &sample,
                &model,
                &["-o", gone],
            ]
            .concat(),
            "--output",
        ),
        (
            vec!["model", "init", "--scale", "0.125", "-o", under_file],
            "--output",
        ),
    ];
    for (args, flag) in cases {
        let start = Instant::now();
        let o = run(&args);
        let path = if args.contains(&gone) {
            gone
        } else {
            under_file
        };
        expect(&o, 3, &[flag, path]);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?}: {:?}",
            start.elapsed()
        );
    }
}
