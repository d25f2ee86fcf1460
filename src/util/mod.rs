//! Small shared helpers: progress reporting, default paths of shipped data, hold-up counting.

use std::path::PathBuf;

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

/// A file shipped with the project (`traces/...`, `configs/...`): relative to the working
/// directory if it exists there, else to the source tree the binary was built from.
pub fn shipped(rel: &str) -> PathBuf {
    let p = PathBuf::from(rel);
    if p.exists() {
        p
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
    }
}
