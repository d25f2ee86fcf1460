//! Hold-ups of a spinning loop: gaps between its clock reads long enough that its thread did not
//! run (counted by the busy-polling load client and the daemon's busy-poll task alike).

use std::time::Duration;

/// A gap this long between two consecutive clock reads of a spinning loop means its thread did
/// not run (preempted or interrupted): counted, since everything due meanwhile waits too.
pub const STALL: Duration = Duration::from_micros(500);

/// How often a spinning loop was held up (gaps between its clock reads longer than [`STALL`]).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stalls {
    /// Gaps longer than [`STALL`].
    pub count: u64,
    /// Their total length, milliseconds.
    pub total_ms: f64,
    /// The longest, milliseconds.
    pub max_ms: f64,
}

impl Stalls {
    /// Counts `gap` if it is longer than [`STALL`].
    #[inline]
    pub fn record(&mut self, gap: Duration) {
        if gap > STALL {
            let ms = gap.as_secs_f64() * 1e3;
            self.count += 1;
            self.total_ms += ms;
            self.max_ms = self.max_ms.max(ms);
        }
    }
}
