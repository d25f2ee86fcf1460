//! Small shared helpers: progress reporting, hold-up counting and the seeded generator.

mod atomic;
mod fdlimit;
pub(crate) mod parquet_guard;
pub(crate) mod rng;

pub use atomic::{atomic_write, atomic_write_bytes, atomic_write_with, check_writable, same_file};
pub use fdlimit::raise_open_files;

pub mod stalls;

/// Something that can be told how much work is done (an indicatif bar, or nothing).
pub trait Progress: Sync {
    /// Adds `n` units of finished work.
    fn inc(&self, n: u64);
}

impl Progress for indicatif::ProgressBar {
    fn inc(&self, n: u64) {
        indicatif::ProgressBar::inc(self, n)
    }
}

/// A progress bar on stderr for `total` units called `unit`.
pub fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{eta}} left)"
    ))
    .expect("valid template");
    bar.set_style(style);
    bar
}

/// Memory the system can still give a process, bytes (`MemAvailable` of `/proc/meminfo`;
/// `None` where that is unknown).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses work that needs `bytes` of memory at once when the system has less available
/// (instead of an abort on a failed allocation, or the OOM killer); says what it needs.
pub fn check_memory(what: &str, bytes: Option<usize>) -> Result<(), String> {
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let Some(bytes) = bytes else {
        return Err(format!("{what} needs more memory than can be addressed"));
    };
    match available_memory() {
        Some(avail) if bytes as u64 > avail => Err(format!(
            "{what} needs {:.1} GiB in memory, {:.1} GiB are available",
            gib(bytes as f64),
            gib(avail as f64)
        )),
        _ => Ok(()),
    }
}
