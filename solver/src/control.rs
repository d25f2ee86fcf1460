//! How a caller steers a long solve without the solver touching a clock: it asks the caller for
//! the seconds left and whether to stop, and tells it the incumbent and bound as they improve.

/// A progress report from a running solve.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEvent {
    /// What the solver is doing (`start`, `sweep 3`, `bound 5/25`, ...).
    pub phase: String,
    /// Objective of the best plan so far.
    pub incumbent: f64,
    /// Best proven lower bound so far, if any.
    pub bound: Option<f64>,
}

/// The caller's side of a solve.
pub trait Control {
    /// Seconds the solver may still spend (infinite for no limit).
    fn remaining_s(&self) -> f64;
    /// Whether the caller asked to stop (Ctrl-C): the solver returns its best plan so far.
    fn interrupted(&self) -> bool {
        false
    }
    /// Told at each improvement and phase change.
    fn progress(&self, _event: &ProgressEvent) {}
}

/// No time limit, no interruption, no progress output (tests, deterministic runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl Control for Unlimited {
    fn remaining_s(&self) -> f64 {
        f64::INFINITY
    }
}
