//! Building a solver problem from traces and the model and hardware configs, with errors that
//! name the violated constraint.

use moeplan_solver::{Problem, Topology, Weights};

use super::workload::workload_from_trace;
use crate::config::{HardwareConfig, ModelConfig};
use crate::trace::Trace;

/// A setting the planner cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// A trace's shape disagrees with the model config.
    #[error(
        "trace {index} has {got_layers} MoE layers x {got_experts} experts, model `{model}` has {layers} x {experts}"
    )]
    TraceModelMismatch {
        index: usize,
        got_layers: usize,
        got_experts: usize,
        model: String,
        layers: usize,
        experts: usize,
    },
    /// A trace's top-k or first MoE layer disagrees with the model config.
    #[error(
        "trace {index} has top_k {got_top_k} and first MoE layer {got_first}, model `{model}` has top_k {top_k} and first_moe_layer {first}"
    )]
    TraceRoutingMismatch {
        index: usize,
        got_top_k: usize,
        got_first: usize,
        model: String,
        top_k: usize,
        first: usize,
    },
    /// The solver rejected the problem (slots, GPUs, costs).
    #[error(transparent)]
    Problem(#[from] moeplan_solver::ProblemError),
    /// A plan file that does not fit.
    #[error("plan: {0}")]
    Plan(String),
}

/// The hardware as the solver sees it.
pub fn topology(hw: &HardwareConfig) -> Topology {
    Topology {
        nodes: hw.nodes,
        gpus_per_node: hw.gpus_per_node,
        cost_intra: hw.cost_intra_node,
        cost_inter: hw.cost_inter_node,
    }
}

/// Redundant slots per layer in total: `redundant` if given, else the hardware's
/// `redundant_slots_per_gpu` x GPUs (both bounded at config load, so this cannot overflow).
pub fn redundant_slots(hw: &HardwareConfig, redundant: Option<usize>) -> usize {
    redundant.unwrap_or(hw.redundant_slots_per_gpu.saturating_mul(hw.gpus()))
}

/// One workload per trace; each trace must match the model's MoE layers and experts.
pub fn build_problem(
    traces: &[&Trace],
    model: &ModelConfig,
    hw: &HardwareConfig,
    redundant: Option<usize>,
    weights: Weights,
    batch_tokens: usize,
) -> Result<Problem, PlacementError> {
    let mut workloads = Vec::with_capacity(traces.len());
    for (index, t) in traces.iter().enumerate() {
        check_trace(index, t, model)?;
        workloads.push(workload_from_trace(t, batch_tokens));
    }
    problem_from_workloads(workloads, hw, redundant, weights)
}

/// The problem of ready workloads (from traces or from a statistics file).
pub fn problem_from_workloads(
    workloads: Vec<moeplan_solver::Workload>,
    hw: &HardwareConfig,
    redundant: Option<usize>,
    weights: Weights,
) -> Result<Problem, PlacementError> {
    Ok(Problem::new(
        workloads,
        topology(hw),
        redundant_slots(hw, redundant),
        weights,
    )?)
}

/// Checks a trace against the model config.
pub fn check_trace(index: usize, t: &Trace, model: &ModelConfig) -> Result<(), PlacementError> {
    let s = t.shape();
    if s.moe_layers != model.moe_layers || s.experts != model.experts {
        return Err(PlacementError::TraceModelMismatch {
            index,
            got_layers: s.moe_layers,
            got_experts: s.experts,
            model: model.name.clone(),
            layers: model.moe_layers,
            experts: model.experts,
        });
    }
    if s.top_k != model.top_k || s.first_moe_layer != model.first_moe_layer {
        return Err(PlacementError::TraceRoutingMismatch {
            index,
            got_top_k: s.top_k,
            got_first: s.first_moe_layer,
            model: model.name.clone(),
            top_k: model.top_k,
            first: model.first_moe_layer,
        });
    }
    Ok(())
}
