//! The CLI's side of a solve: wall-clock time limit, Ctrl-C (first: stop and keep the best plan;
//! second: exit 130) and a progress line on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use moeplan_solver::{Control, ProgressEvent};

/// Time limit, Ctrl-C flag and progress spinner for one or more solves.
pub struct CliControl {
    /// When the current solve started.
    start: Instant,
    /// Its time limit, seconds.
    limit: f64,
    /// Set by the Ctrl-C handler.
    stop: Arc<AtomicBool>,
    /// Spinner on stderr (hidden with --quiet or CI=true).
    bar: indicatif::ProgressBar,
}

impl CliControl {
    /// A control with a Ctrl-C handler installed; `show` draws the spinner.
    pub fn new(show: bool) -> CliControl {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                    eprintln!(
                        "\ninterrupted: finishing with the best plan so far (Ctrl-C again to quit)"
                    );
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        });
        let bar = if show {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        CliControl {
            start: Instant::now(),
            limit: f64::INFINITY,
            stop,
            bar,
        }
    }

    /// Starts timing a new solve with `limit` seconds.
    pub fn restart(&mut self, limit: f64, label: &str) {
        self.start = Instant::now();
        self.limit = limit;
        self.bar.set_message(label.to_string());
    }

    /// Seconds since the last restart.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Control for CliControl {
    fn remaining_s(&self) -> f64 {
        self.limit - self.elapsed()
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn progress(&self, ev: &ProgressEvent) {
        let bound = ev
            .bound
            .map_or(String::new(), |b| format!(", bound {b:.4}"));
        self.bar.set_message(format!(
            "{}: incumbent {:.4}{bound} ({:.1} s)",
            ev.phase,
            ev.incumbent,
            self.elapsed()
        ));
    }
}

impl crate::placement::SolveClock for CliControl {
    fn restart(&mut self, limit_s: f64, label: &str) {
        CliControl::restart(self, limit_s, label);
    }

    fn elapsed(&self) -> f64 {
        CliControl::elapsed(self)
    }
}
