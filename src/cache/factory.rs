//! The one policy factory: a [`PolicyKind`] and its inputs in, a boxed [`Policy`] out (used by
//! the replay and the daemon alike).

use super::{CacheConfig, Lfu, Lru, NextUse, Opt, Policy, PolicyKind, Predictive, StaticTop};

/// What building a policy may need besides its kind.
#[derive(Debug, Clone, Default)]
pub struct PolicyInputs<'a> {
    /// Half-life of `lfu` and `predictive` frequencies, in visits of a layer.
    pub half_life: f64,
    /// Weight of predictions against frequency in `predictive`.
    pub beta: f64,
    /// Priority a prefetch candidate of `predictive` must have above its victim.
    pub margin: f64,
    /// Per-key demand counts ranking `static` (`layers * experts`).
    pub static_counts: Option<&'a [f64]>,
    /// The future demands (`opt`).
    pub next_use: Option<NextUse>,
}

/// What a policy lacked to be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingInput {
    /// `static` without demand counts.
    StaticCounts,
    /// `opt` without the future demands.
    NextUse,
}

/// Builds policy `kind` for `cfg` from `inputs`.
pub fn build_policy(
    kind: PolicyKind,
    cfg: &CacheConfig,
    inputs: PolicyInputs<'_>,
) -> Result<Box<dyn Policy>, MissingInput> {
    Ok(match kind {
        PolicyKind::Lru => Box::new(Lru::new(cfg.keys())),
        PolicyKind::Lfu => Box::new(Lfu::new(cfg.layers, cfg.experts, inputs.half_life)),
        PolicyKind::Predictive => Box::new(
            Predictive::new(cfg.layers, cfg.experts, inputs.half_life, inputs.beta)
                .with_margin(inputs.margin),
        ),
        PolicyKind::Static => {
            let counts = inputs.static_counts.ok_or(MissingInput::StaticCounts)?;
            Box::new(StaticTop::new(cfg, counts))
        }
        PolicyKind::Opt => {
            let index = inputs.next_use.ok_or(MissingInput::NextUse)?;
            Box::new(Opt::new(index, cfg.keys()))
        }
    })
}
