//! Plan files: moeplan's own versioned JSON and SGLang's `--init-expert-location` JSON.
//!
//! moeplan plan JSON, `format = "moeplan-plan"`, `version = 2` (version 1 is read too):
//! - `model`, `hardware`, `method`: names the plan was built for and with;
//! - `moe_layers`, `first_moe_layer`, `experts`, `nodes`, `gpus`, `slots_per_gpu`: the shape;
//! - `physical_to_logical_map`: `[moe_layers][gpus * slots_per_gpu]` logical expert per
//!   physical slot; slot p of a layer lives on GPU `p / slots_per_gpu` (node `gpu / gpus_per_node`);
//! - `replica_count`: `[moe_layers][experts]` replicas per logical expert (version 1 called it
//!   `logical_count`, which SGLang uses for token counts: renamed so the two are not confused);
//! - `built_on`: the traces the plan was built from;
//! - `in_sample`: the plan's metrics on them (see `DESIGN.md`); `solver`: status, objective,
//!   bound and gap when the ILP built it.
//!
//! SGLang JSON: `{"physical_to_logical_map": [[..]]}` with one row per decoder layer of the model
//! (SGLang counts dense layers too; their rows hold the trivial map `p % experts` and are unused).

use std::path::Path;

use anyhow::Context;
use moeplan_solver::{Metrics, Plan, SolveReport};
use serde::{Deserialize, Serialize};

use super::PlacementError;
use crate::config::{HardwareConfig, ModelConfig};

/// Current plan file version (2: `logical_count` renamed `replica_count`).
pub const PLAN_VERSION: u32 = 2;
/// Plan file versions read.
pub const PLAN_VERSIONS_READ: [u32; 2] = [1, 2];

/// moeplan's plan file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanFile {
    /// Always `moeplan-plan`.
    pub format: String,
    /// File format version ([`PLAN_VERSION`]).
    pub version: u32,
    /// Model config name.
    pub model: String,
    /// Hardware config name.
    pub hardware: String,
    /// Method that built the plan.
    pub method: String,
    /// MoE layers.
    pub moe_layers: usize,
    /// Decoder index of the first MoE layer.
    pub first_moe_layer: usize,
    /// Logical experts per layer.
    pub experts: usize,
    /// Nodes.
    pub nodes: usize,
    /// GPUs in all.
    pub gpus: usize,
    /// Physical slots per GPU per layer.
    pub slots_per_gpu: usize,
    /// `[moe_layers][physical]` logical expert of each physical slot.
    pub physical_to_logical_map: Vec<Vec<u16>>,
    /// `[moe_layers][experts]` replicas per logical expert (`logical_count` in version 1).
    #[serde(alias = "logical_count")]
    pub replica_count: Vec<Vec<u32>>,
    /// Traces the plan was built from.
    pub built_on: Vec<String>,
    /// Metrics on the traces it was built from.
    pub in_sample: Option<Metrics>,
    /// Solver report (ILP only).
    pub solver: Option<SolveReport>,
}

impl PlanFile {
    /// Wraps a plan.
    pub fn new(
        plan: &Plan,
        model: &ModelConfig,
        hw: &HardwareConfig,
        method: &str,
        built_on: Vec<String>,
    ) -> PlanFile {
        PlanFile {
            format: "moeplan-plan".into(),
            version: PLAN_VERSION,
            model: model.name.clone(),
            hardware: hw.name.clone(),
            method: method.into(),
            moe_layers: plan.layers,
            first_moe_layer: model.first_moe_layer,
            experts: plan.experts,
            nodes: hw.nodes,
            gpus: plan.gpus,
            slots_per_gpu: plan.slots_per_gpu,
            physical_to_logical_map: (0..plan.layers).map(|l| plan.layer(l).to_vec()).collect(),
            replica_count: (0..plan.layers).map(|l| plan.counts(l)).collect(),
            built_on,
            in_sample: None,
            solver: None,
        }
    }

    /// The plan inside, checked.
    pub fn plan(&self) -> Result<Plan, PlacementError> {
        if self.format != "moeplan-plan" || !PLAN_VERSIONS_READ.contains(&self.version) {
            return Err(PlacementError::Plan(format!(
                "format {:?} version {} (expected moeplan-plan version 1 or {PLAN_VERSION})",
                self.format, self.version
            )));
        }
        let phy2log = self.physical_to_logical_map.concat();
        Plan::new(
            self.moe_layers,
            self.experts,
            self.gpus,
            self.slots_per_gpu,
            phy2log,
        )
        .map_err(|e| PlacementError::Plan(e.to_string()))
    }

    /// Writes the file as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::util::atomic_write_bytes(path, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a plan file; a missing, unreadable or malformed file is a [`PlacementError`]
    /// (bad input).
    pub fn read(path: &Path) -> anyhow::Result<PlanFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PlacementError::Plan(format!("{}: {e}", path.display())))?;
        let file = serde_json::from_str(&text).map_err(|e| {
            PlacementError::Plan(format!("{}: not a moeplan plan file: {e}", path.display()))
        })?;
        Ok(file)
    }
}

/// SGLang's `--init-expert-location` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SglangLocation {
    /// `[decoder layers][physical]`.
    pub physical_to_logical_map: Vec<Vec<u16>>,
}

/// The SGLang file for `plan` on `model` (dense layers get the trivial map).
pub fn sglang_location(plan: &Plan, model: &ModelConfig) -> SglangLocation {
    let phys = plan.physical();
    let trivial: Vec<u16> = (0..phys).map(|p| (p % plan.experts) as u16).collect();
    let rows = (0..model.layers)
        .map(|d| match d.checked_sub(model.first_moe_layer) {
            Some(l) if l < plan.layers => plan.layer(l).to_vec(),
            _ => trivial.clone(),
        })
        .collect();
    SglangLocation {
        physical_to_logical_map: rows,
    }
}
