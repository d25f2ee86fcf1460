//! `--busy-poll` under CPU contention: the spinning task watches its own hold-ups (passes of
//! the yield loop longer than [`STALL`](crate::util::stalls::STALL): the thread was descheduled) and,
//! when they take more than [`CONTENDED_SHARE`] of a [`WINDOW`], stops spinning and lets the
//! runtime sleep in `epoll_wait` for a back-off ([`BACKOFF_MIN`], doubling to [`BACKOFF_MAX`]
//! while contention persists), then tries spinning again. A spinning daemon on a core that
//! another process also wants starves both; a sleeping one only pays its wake-up latency.

use std::time::Duration;

/// Length of the window over which hold-ups are summed.
pub const WINDOW: Duration = Duration::from_millis(200);
/// Share of a window spent held up that counts as contention.
pub const CONTENDED_SHARE: f64 = 0.1;
/// First back-off (sleeping instead of spinning) after contention is seen.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(16);

/// What the spinning task should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep spinning.
    Spin,
    /// Sleep this long (the runtime blocks in its I/O driver meanwhile), then spin again.
    Sleep(Duration),
}

/// The contention detector: fed the length of every pass of the yield loop.
#[derive(Debug, Clone)]
pub struct BusyGuard {
    window: Duration,
    held: Duration,
    backoff: Duration,
    /// Times the guard fell back to sleeping.
    pub fallbacks: u64,
}

impl Default for BusyGuard {
    fn default() -> Self {
        BusyGuard {
            window: Duration::ZERO,
            held: Duration::ZERO,
            backoff: BACKOFF_MIN,
            fallbacks: 0,
        }
    }
}

impl BusyGuard {
    /// Counts one pass of `gap` and says whether to go on spinning.
    pub fn pass(&mut self, gap: Duration) -> Next {
        self.window += gap;
        if gap > crate::util::stalls::STALL {
            self.held += gap;
        }
        if self.window < WINDOW {
            return Next::Spin;
        }
        let contended = self.held.as_secs_f64() > CONTENDED_SHARE * self.window.as_secs_f64();
        self.window = Duration::ZERO;
        self.held = Duration::ZERO;
        if !contended {
            self.backoff = BACKOFF_MIN;
            return Next::Spin;
        }
        self.fallbacks += 1;
        let sleep = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Next::Sleep(sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn an_uncontended_spin_never_falls_back() {
        let mut g = BusyGuard::default();
        for _ in 0..1_000_000 {
            assert_eq!(g.pass(US), Next::Spin);
        }
        assert_eq!(g.fallbacks, 0);
    }

    #[test]
    fn hold_ups_over_a_tenth_of_a_window_fall_back_with_growing_back_off() {
        let mut g = BusyGuard::default();
        // 2 ms descheduled every 10 ms of passes: 20 % of the time held up.
        let mut sleeps = Vec::new();
        for i in 0..10_000 {
            let gap = if i % 10 == 9 { 2000 * US } else { 1000 * US };
            if let Next::Sleep(d) = g.pass(gap) {
                sleeps.push(d);
            }
        }
        assert!(sleeps.len() >= 5, "{sleeps:?}");
        assert_eq!(sleeps[0], BACKOFF_MIN);
        assert_eq!(sleeps[1], 2 * BACKOFF_MIN);
        assert_eq!(*sleeps.last().unwrap(), BACKOFF_MAX);
        // A clean window resets the back-off.
        for _ in 0..300_000 {
            g.pass(US);
        }
        let mut again = None;
        for _ in 0..1000 {
            if let Next::Sleep(d) = g.pass(2000 * US) {
                again = Some(d);
                break;
            }
        }
        assert_eq!(again, Some(BACKOFF_MIN));
    }
}
