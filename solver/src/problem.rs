//! Placement problem inputs: workloads (per-layer expert loads and consecutive-layer pair counts),
//! the GPU topology with its link costs, the slot budget and the objective's knobs.

use serde::{Deserialize, Serialize};

/// Largest link cost and objective weight accepted: beyond, the MIP's coefficients approach what
/// HiGHS treats as infinite and its time limit no longer holds.
pub const MAX_COEFFICIENT: f64 = 1e6;

/// What one workload (a trace, or a part of one) asks of the experts, as counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workload {
    /// Number of MoE layers.
    pub layers: usize,
    /// Logical experts per layer.
    pub experts: usize,
    /// Tokens the counts come from (for per-token figures).
    pub tokens: usize,
    /// Token-selections per (layer, expert), `[layers][experts]`.
    pub load: Vec<f64>,
    /// All k x k pairs: tokens with expert e at layer l and e' at l + 1,
    /// `[layers - 1][experts][experts]`.
    pub pairs: Vec<f64>,
    /// The same, top-1 expert of each layer only, `[layers - 1][experts][experts]`.
    pub pairs_top1: Vec<f64>,
    /// Optional per-batch loads `[batches][layers][experts]` for the layer-time proxy (empty: the
    /// whole workload is one batch).
    pub batch_load: Vec<f64>,
}

impl Workload {
    /// An all-zero workload.
    pub fn zeros(layers: usize, experts: usize) -> Workload {
        let span = layers.saturating_sub(1) * experts * experts;
        Workload {
            layers,
            experts,
            tokens: 0,
            load: vec![0.0; layers * experts],
            pairs: vec![0.0; span],
            pairs_top1: vec![0.0; span],
            batch_load: Vec::new(),
        }
    }

    /// Loads of layer `l`, `[experts]`.
    pub fn load(&self, l: usize) -> &[f64] {
        &self.load[l * self.experts..(l + 1) * self.experts]
    }

    /// Pair counts between layer `l` and `l + 1`, `[experts][experts]` row-major.
    pub fn pairs(&self, l: usize) -> &[f64] {
        let n = self.experts * self.experts;
        &self.pairs[l * n..(l + 1) * n]
    }

    /// Top-1 pair counts between layer `l` and `l + 1`.
    pub fn pairs_top1(&self, l: usize) -> &[f64] {
        let n = self.experts * self.experts;
        &self.pairs_top1[l * n..(l + 1) * n]
    }

    /// Number of batches in `batch_load`.
    pub fn batches(&self) -> usize {
        let n = self.layers * self.experts;
        self.batch_load.len().checked_div(n).unwrap_or(0)
    }
}

/// GPUs grouped in nodes, and what a token hop between two GPUs costs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Topology {
    /// Number of nodes.
    pub nodes: usize,
    /// GPUs per node; GPU g is on node g / gpus_per_node.
    pub gpus_per_node: usize,
    /// Cost of a hop to another GPU of the same node (same GPU costs 0).
    pub cost_intra: f64,
    /// Cost of a hop to a GPU of another node.
    pub cost_inter: f64,
}

impl Topology {
    /// Total GPUs.
    pub fn gpus(&self) -> usize {
        self.nodes * self.gpus_per_node
    }

    /// The node of GPU `g`.
    #[inline]
    pub fn node_of(&self, g: usize) -> usize {
        g / self.gpus_per_node
    }

    /// Cost of a hop from GPU `g` to GPU `h`.
    #[inline]
    pub fn cost(&self, g: usize, h: usize) -> f64 {
        if g == h {
            0.0
        } else if self.node_of(g) == self.node_of(h) {
            self.cost_intra
        } else {
            self.cost_inter
        }
    }
}

/// The objective's knobs. The objective is
/// `balance * sum_l IR_l + comm * sum_l C_l + migration * sum_l M_l`, where `IR_l` is layer l's
/// load imbalance (busiest GPU / mean; with several workloads, the worst of them), `C_l` the
/// expected link cost per consecutive-layer pair (l, l+1) (the hop rate weighted by link cost,
/// workloads averaged) and `M_l` the share of layer l's physical slots whose expert the previous
/// plan did not hold on that GPU (what switching plans must copy; 0 without a previous plan).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Weights {
    /// Weight of the load-imbalance term.
    pub balance: f64,
    /// Weight of the communication term.
    pub comm: f64,
    /// Weight of the migration term (needs a previous plan).
    #[serde(default)]
    pub migration: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            balance: 1.0,
            comm: 1.0,
            migration: 0.0,
        }
    }
}

/// An infeasible or inconsistent problem; each variant names the violated constraint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// No workload to plan from.
    #[error("no workload given")]
    NoWorkload,
    /// Workloads of different shapes.
    #[error(
        "workload {index} has {layers} layers x {experts} experts, the first has {want_layers} x {want_experts}"
    )]
    ShapeMismatch {
        index: usize,
        layers: usize,
        experts: usize,
        want_layers: usize,
        want_experts: usize,
    },
    /// A workload's arrays do not match its shape.
    #[error("workload {index}: array `{field}` has {got} values, expected {want}")]
    BadArray {
        index: usize,
        field: &'static str,
        got: usize,
        want: usize,
    },
    /// No GPUs.
    #[error("the topology has no GPUs (nodes = {nodes}, gpus_per_node = {gpus_per_node})")]
    NoGpus { nodes: usize, gpus_per_node: usize },
    /// Physical slots not a multiple of the GPU count.
    #[error(
        "experts + redundant slots = {physical} is not divisible by the {gpus} GPUs (each GPU holds the same number of slots per layer)"
    )]
    SlotsNotDivisible { physical: usize, gpus: usize },
    /// More replicas than GPUs would be needed.
    #[error(
        "{physical} physical slots for {experts} experts on {gpus} GPUs: an expert would need more replicas than there are GPUs"
    )]
    TooManySlots {
        physical: usize,
        experts: usize,
        gpus: usize,
    },
    /// Link costs out of order.
    #[error("link costs must satisfy 0 <= cost_intra ({intra}) <= cost_inter ({inter}) <= 1e6")]
    BadCosts { intra: f64, inter: f64 },
    /// The previous plan does not fit the problem.
    #[error(
        "the previous plan is {got_layers} layers x {got_experts} experts on {got_gpus} GPUs, the problem {layers} x {experts} on {gpus}"
    )]
    PreviousShape {
        got_layers: usize,
        got_experts: usize,
        got_gpus: usize,
        layers: usize,
        experts: usize,
        gpus: usize,
    },
    /// A knob out of range.
    #[error("objective weight `{name}` must be in 0..=1e6, got {value}")]
    BadWeight { name: &'static str, value: f64 },
}

/// A placement instance: assign, per layer, `slots_per_gpu` physical expert slots on every GPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    /// The workloads the plan must serve (balance is the worst of them, communication the mean).
    pub workloads: Vec<Workload>,
    /// GPUs, nodes and link costs.
    pub topology: Topology,
    /// Physical expert slots per GPU per layer (experts / GPUs + redundant / GPUs).
    pub slots_per_gpu: usize,
    /// Objective knobs.
    pub weights: Weights,
    /// The plan in service now, for the migration term.
    #[serde(default)]
    pub previous: Option<crate::plan::Plan>,
}

impl Problem {
    /// Checks and builds a problem with `redundant` extra physical slots per layer in total.
    pub fn new(
        workloads: Vec<Workload>,
        topology: Topology,
        redundant: usize,
        weights: Weights,
    ) -> Result<Problem, ProblemError> {
        let first = workloads.first().ok_or(ProblemError::NoWorkload)?;
        let (layers, experts) = (first.layers, first.experts);
        for (index, w) in workloads.iter().enumerate() {
            if (w.layers, w.experts) != (layers, experts) {
                return Err(ProblemError::ShapeMismatch {
                    index,
                    layers: w.layers,
                    experts: w.experts,
                    want_layers: layers,
                    want_experts: experts,
                });
            }
            let span = layers.saturating_sub(1) * experts * experts;
            for (field, got, want) in [
                ("load", w.load.len(), layers * experts),
                ("pairs", w.pairs.len(), span),
                ("pairs_top1", w.pairs_top1.len(), span),
                (
                    "batch_load",
                    w.batch_load.len(),
                    w.batches() * layers * experts,
                ),
            ] {
                if got != want {
                    return Err(ProblemError::BadArray {
                        index,
                        field,
                        got,
                        want,
                    });
                }
            }
        }
        let gpus = topology.nodes.saturating_mul(topology.gpus_per_node);
        if gpus == 0 {
            return Err(ProblemError::NoGpus {
                nodes: topology.nodes,
                gpus_per_node: topology.gpus_per_node,
            });
        }
        if !(0.0 <= topology.cost_intra
            && topology.cost_intra <= topology.cost_inter
            && topology.cost_inter <= MAX_COEFFICIENT)
        {
            return Err(ProblemError::BadCosts {
                intra: topology.cost_intra,
                inter: topology.cost_inter,
            });
        }
        for (name, value) in [
            ("balance", weights.balance),
            ("comm", weights.comm),
            ("migration", weights.migration),
        ] {
            if !((0.0..=MAX_COEFFICIENT).contains(&value)) {
                return Err(ProblemError::BadWeight { name, value });
            }
        }
        let too_many = ProblemError::TooManySlots {
            physical: usize::MAX,
            experts,
            gpus,
        };
        let physical = experts.checked_add(redundant).ok_or(too_many)?;
        if physical > experts.saturating_mul(gpus) {
            return Err(ProblemError::TooManySlots {
                physical,
                experts,
                gpus,
            });
        }
        if !physical.is_multiple_of(gpus) {
            return Err(ProblemError::SlotsNotDivisible { physical, gpus });
        }
        Ok(Problem {
            workloads,
            topology,
            slots_per_gpu: physical / gpus,
            weights,
            previous: None,
        })
    }

    /// Sets the plan in service now (the migration term counts slots that differ from it).
    pub fn with_previous(mut self, prev: crate::plan::Plan) -> Result<Problem, ProblemError> {
        if (prev.layers, prev.experts, prev.gpus) != (self.layers(), self.experts(), self.gpus()) {
            return Err(ProblemError::PreviousShape {
                got_layers: prev.layers,
                got_experts: prev.experts,
                got_gpus: prev.gpus,
                layers: self.layers(),
                experts: self.experts(),
                gpus: self.gpus(),
            });
        }
        self.previous = Some(prev);
        Ok(self)
    }

    /// MoE layers.
    pub fn layers(&self) -> usize {
        self.workloads[0].layers
    }

    /// Logical experts per layer.
    pub fn experts(&self) -> usize {
        self.workloads[0].experts
    }

    /// GPUs.
    pub fn gpus(&self) -> usize {
        self.topology.gpus()
    }

    /// Physical slots per layer.
    pub fn physical(&self) -> usize {
        self.gpus() * self.slots_per_gpu
    }

    /// Each workload's load shares of its layers, folded into one `[layers][experts]` array with
    /// `fold(accumulated, share)` starting from `init`.
    fn fold_shares(&self, init: f64, fold: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        let (layers, e) = (self.layers(), self.experts());
        let mut out = vec![init; layers * e];
        for w in &self.workloads {
            for l in 0..layers {
                let row = w.load(l);
                let total: f64 = row.iter().sum::<f64>().max(1e-12);
                for (o, &x) in out[l * e..(l + 1) * e].iter_mut().zip(row) {
                    *o = fold(*o, x / total);
                }
            }
        }
        out
    }

    /// Summed loads over workloads, `[layers][experts]`, each workload scaled to its share of
    /// the layer so that workloads count equally.
    pub fn mean_share(&self) -> Vec<f64> {
        let n = self.workloads.len() as f64;
        self.fold_shares(0.0, |acc, share| acc + share / n)
    }

    /// Token counts per (layer, expert) summed over the workloads, `[layers][experts]`.
    pub fn total_load(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.layers() * self.experts()];
        for w in &self.workloads {
            for (o, &x) in out.iter_mut().zip(&w.load) {
                *o += x;
            }
        }
        out
    }

    /// Upper envelope of the workloads' load shares, `[layers][experts]`: each expert's largest
    /// share of its layer over the workloads (what robust replication plans for).
    pub fn envelope_share(&self) -> Vec<f64> {
        self.fold_shares(0.0, f64::max)
    }
}
