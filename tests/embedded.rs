//! The binary alone works anywhere: a copy of it, run from a directory without the source tree,
//! finds its built-in configs and the demo's sample trace; a path still overrides a name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the built binary in a fresh directory, run from another fresh directory.
struct Alone {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    bin: PathBuf,
    cwd: PathBuf,
}

impl Alone {
    fn new() -> Self {
        let bin_dir = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let bin = bin_dir.path().join("moeplan");
        std::fs::copy(env!("CARGO_BIN_EXE_moeplan"), &bin).unwrap();
        let cwd_path = cwd.path().to_path_buf();
        Alone {
            _dirs: (bin_dir, cwd),
            bin,
            cwd: cwd_path,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(&self.cwd)
            .env("CI", "true")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "moeplan {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The shipped sample, copied next to the binary's working directory as a user would bring a
/// trace of their own.
fn copy_sample(to: &Path) -> PathBuf {
    let dst = to.join("mine.parquet");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.parquet"),
        &dst,
    )
    .unwrap();
    dst
}

fn stems(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn config_list_shows_every_shipped_config() {
    let a = Alone::new();
    let text = a.ok(&["config", "list"]);
    for name in stems("configs/models")
        .into_iter()
        .chain(stems("configs/hardware"))
    {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&name)),
            "{name} missing from:\n{text}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&a.ok(&["config", "list", "--json"])).unwrap();
    assert_eq!(v["version"], 1);
    let names = |key: &str| -> Vec<String> {
        let mut n: Vec<String> = v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("models"), stems("configs/models"));
    assert_eq!(names("hardware"), stems("configs/hardware"));
    assert_eq!(v["models"][0]["moe_layers"], 26);
}

#[test]
fn config_show_prints_the_shipped_toml() {
    let a = Alone::new();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/hardware/rtx4090-pcie4.toml"),
    )
    .unwrap();
    assert_eq!(a.ok(&["config", "show", "rtx4090-pcie4"]), shipped);
    let out = a.run(&["config", "show", "no-such-box"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deepseek-v2-lite"));
}

#[test]
fn a_model_name_works_from_a_copy_of_the_binary() {
    let a = Alone::new();
    let trace = copy_sample(&a.cwd);
    let trace = trace.to_str().unwrap();
    let text = a.ok(&[
        "replay",
        "-t",
        trace,
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "rtx4090-pcie4",
        "--capacity",
        "16",
        "--policy",
        "lru",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["policies"][0]["hit_ratio"].as_f64().unwrap() > 0.3);
}

#[test]
fn a_path_overrides_the_built_in_config() {
    let a = Alone::new();
    let trace = copy_sample(&a.cwd);
    let trace = trace.to_str().unwrap();
    // The built-in PCIe 4 box, with a link twice as fast: half the stall of the built-in one.
    let text = a.ok(&["config", "show", "rtx4090-pcie4"]);
    assert!(text.contains("host_to_device_gbps = 25.0"), "{text}");
    let fast = text.replace("host_to_device_gbps = 25.0", "host_to_device_gbps = 50.0");
    std::fs::write(a.cwd.join("fast.toml"), fast).unwrap();
    let stall = |hw: &str| -> f64 {
        let out = a.ok(&[
            "replay",
            "-t",
            trace,
            "--hardware",
            hw,
            "--capacity",
            "16",
            "--policy",
            "lru",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["policies"][0]["stall_ms_per_token"].as_f64().unwrap()
    };
    let (builtin, custom) = (stall("rtx4090-pcie4"), stall("fast.toml"));
    assert!(custom < 0.6 * builtin, "{custom} vs {builtin}");
    // A name that is neither a file nor built in is bad input, naming what is built in, with
    // no OS error repeated.
    let out = a.run(&[
        "replay",
        "-t",
        trace,
        "--model",
        "no-such-model",
        "--capacity",
        "16",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deepseek-v2-lite") && err.contains("config list"),
        "{err}"
    );
    let out = a.run(&[
        "replay",
        "-t",
        trace,
        "--model",
        "./gone.toml",
        "--capacity",
        "16",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn demo_runs_from_a_copy_of_the_binary() {
    let a = Alone::new();
    let text = a.ok(&["demo", "--time-limit", "1"]);
    assert!(text.contains("traces/sample.parquet (built in)"), "{text}");
    assert!(text.contains("2186 tokens in 14 sequences"), "{text}");
    assert!(text.contains("expert cache replay"), "{text}");
}
