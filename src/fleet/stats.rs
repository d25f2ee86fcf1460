//! The statistics in memory: per-workload dense counts, sparse windows and the held-out sample,
//! and how two sets of statistics add.

use std::collections::BTreeMap;

use crate::trace::ModelShape;

/// Statistics that cannot be used or combined.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// Two statistics files (or a file and a request) disagree on a setting.
    #[error("{0}")]
    Mismatch(String),
    /// A row or setting that is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// One held-out scoring case of the mix's cross-validation: token `token` of a workload, layer
/// `layer` just routed, look-ahead `hop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCase {
    /// The token's experts at `layer`, highest gate weight first.
    pub cur: Vec<u16>,
    /// The previous token's experts at `layer + hop` (empty when the token starts a sequence).
    pub prev: Vec<u16>,
    /// The token's experts at `layer + hop` (the truth).
    pub truth: Vec<u16>,
}

/// The sums of one workload (a trace, or every trace given one label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Tokens.
    pub tokens: u64,
    /// Tokens whose previous token is in the same sequence.
    pub followers: u64,
    /// `[layers][experts]`: selections of each expert.
    pub load: Vec<u64>,
    /// `pairs[h - 1]`, `[layers - h][experts][experts]`: tokens with e at l and e' at l + h (all
    /// k x k pairs).
    pub pairs: Vec<Vec<u64>>,
    /// `[layers - 1][experts][experts]`: the same for the top-1 experts at l and l + 1.
    pub top1: Vec<u64>,
    /// `[layers][experts][experts]`: the previous token of the sequence chose e at l and this
    /// token e' at l (all k x k pairs).
    pub prev: Vec<u64>,
    /// Window index (token id / window tokens) to its `[layers][experts]` selections.
    pub windows: BTreeMap<i64, Vec<u64>>,
    /// Window index to its `[layers - 1][experts][experts]` consecutive-layer pair counts (all
    /// k x k pairs), when aggregated with window pairs (what re-balancing needs); else empty.
    pub window_pairs: BTreeMap<i64, Vec<u64>>,
    /// `(hop, token id, layer)` to the held-out case.
    pub cases: BTreeMap<(usize, i64, usize), HeldCase>,
}

impl WorkloadStats {
    /// All-zero statistics for `shape` and hops `1..=hops`.
    pub fn zeros(shape: &ModelShape, hops: usize) -> WorkloadStats {
        let (l, e) = (shape.moe_layers, shape.experts);
        WorkloadStats {
            tokens: 0,
            followers: 0,
            load: vec![0; l * e],
            pairs: (1..=hops)
                .map(|h| vec![0; l.saturating_sub(h) * e * e])
                .collect(),
            top1: vec![0; l.saturating_sub(1) * e * e],
            prev: vec![0; l * e * e],
            windows: BTreeMap::new(),
            window_pairs: BTreeMap::new(),
            cases: BTreeMap::new(),
        }
    }

    /// Adds `other` (same shape and hops) into `self`; `name` labels errors.
    pub fn add(&mut self, other: &WorkloadStats, name: &str) -> Result<(), StatsError> {
        self.add_counts(other);
        for (key, c) in &other.cases {
            if self.cases.insert(*key, c.clone()).is_some() {
                return Err(StatsError::Mismatch(format!(
                    "workload `{name}`: token {} is a held-out case (hop {}, layer {}) in both \
                     inputs: their token ranges overlap; give each input its own workload label",
                    key.1, key.0, key.2
                )));
            }
        }
        Ok(())
    }

    /// Adds the counts of `other` (not its held-out sample) into `self`.
    pub fn add_counts(&mut self, other: &WorkloadStats) {
        fn sum(a: &mut [u64], b: &[u64]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.tokens += other.tokens;
        self.followers += other.followers;
        sum(&mut self.load, &other.load);
        for (a, b) in self.pairs.iter_mut().zip(&other.pairs) {
            sum(a, b);
        }
        sum(&mut self.top1, &other.top1);
        sum(&mut self.prev, &other.prev);
        for (mine, theirs) in [
            (&mut self.windows, &other.windows),
            (&mut self.window_pairs, &other.window_pairs),
        ] {
            for (w, v) in theirs {
                match mine.get_mut(w) {
                    Some(m) => sum(m, v),
                    None => {
                        mine.insert(*w, v.clone());
                    }
                }
            }
        }
    }
}

/// Routing statistics of one or more workloads of one model shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingStats {
    /// The routing shape.
    pub shape: ModelShape,
    /// Tokens per window of the per-window loads.
    pub window_tokens: u64,
    /// Largest hop distance of the pair counts (and of the held-out sample).
    pub hops: usize,
    /// Per workload label, in label order.
    pub workloads: BTreeMap<String, WorkloadStats>,
}

impl RoutingStats {
    /// Empty statistics.
    pub fn new(shape: ModelShape, window_tokens: u64, hops: usize) -> RoutingStats {
        RoutingStats {
            shape,
            window_tokens,
            hops,
            workloads: BTreeMap::new(),
        }
    }

    /// Tokens over all workloads.
    pub fn tokens(&self) -> u64 {
        self.workloads.values().map(|w| w.tokens).sum()
    }

    /// Whether the per-window pair counts are there (`trace aggregate --window-pairs`).
    pub fn has_window_pairs(&self) -> bool {
        self.workloads.values().any(|w| !w.window_pairs.is_empty())
    }

    /// The workload called `name`, created empty if missing.
    pub fn workload_mut(&mut self, name: &str) -> &mut WorkloadStats {
        let (shape, hops) = (self.shape, self.hops);
        self.workloads
            .entry(name.to_string())
            .or_insert_with(|| WorkloadStats::zeros(&shape, hops))
    }

    /// Adds `other` into `self`: counts of workloads with the same label add up, windows with the
    /// same index add up, held-out samples are united. Shape, window and hops must agree.
    pub fn merge(&mut self, other: &RoutingStats) -> Result<(), StatsError> {
        if self.shape != other.shape {
            return Err(StatsError::Mismatch(format!(
                "shapes differ: {:?} vs {:?}",
                self.shape, other.shape
            )));
        }
        if self.window_tokens != other.window_tokens || self.hops != other.hops {
            return Err(StatsError::Mismatch(format!(
                "settings differ: window {} / hops {} vs window {} / hops {} (aggregate both with \
                 the same --window and --hops)",
                self.window_tokens, self.hops, other.window_tokens, other.hops
            )));
        }
        if self.tokens() > 0
            && other.tokens() > 0
            && self.has_window_pairs() != other.has_window_pairs()
        {
            return Err(StatsError::Mismatch(
                "one file has per-window pair counts and the other has not (aggregate both with \
                 or both without --window-pairs)"
                    .into(),
            ));
        }
        for (name, w) in &other.workloads {
            self.workload_mut(name).add(w, name)?;
        }
        Ok(())
    }

    /// The sum of every workload except `skip` (a cross-validation training set).
    pub fn sum_except(&self, skip: Option<&str>) -> WorkloadStats {
        let mut total = WorkloadStats::zeros(&self.shape, self.hops);
        for (name, w) in &self.workloads {
            // Held-out samples are not summed (they are per workload).
            if Some(name.as_str()) != skip {
                total.add_counts(w);
            }
        }
        total
    }
}
