//! The simple placements: contiguous (vLLM/Megatron's default) and round-robin, and EPLB run on
//! a problem's workloads. Redundant slots in the first two hold `p % experts`, as SGLang's
//! trivial map does.

use crate::eplb::rebalance_experts;
use crate::plan::Plan;
use crate::problem::Problem;

fn build(p: &Problem, slot: impl Fn(usize) -> usize) -> Plan {
    let (layers, e, phys) = (p.layers(), p.experts(), p.physical());
    let row: Vec<u16> = (0..phys).map(|q| (slot(q) % e) as u16).collect();
    let phy2log = (0..layers).flat_map(|_| row.iter().copied()).collect();
    Plan::new(layers, e, p.gpus(), p.slots_per_gpu, phy2log).expect("a valid map")
}

/// Contiguous: GPU g holds experts `g*S .. (g+1)*S` (slot p holds expert `p % experts`).
pub fn contiguous(p: &Problem) -> Plan {
    build(p, |q| q)
}

/// Round-robin: expert e on GPU `e % gpus` (slot `k` of GPU `g` holds expert `k*gpus + g`).
pub fn round_robin(p: &Problem) -> Plan {
    let (s, g) = (p.slots_per_gpu, p.gpus());
    build(p, move |q| (q % s) * g + q / s)
}

/// EPLB on each layer's token counts summed over the workloads (the integer loads EPLB is fed in
/// service: shares would let float rounding break ties that are exact on the counts), with
/// `groups` expert groups (hierarchical policy when the groups divide among the nodes, else
/// global). `groups` must divide the experts (see [`eplb_groups_fit`]).
pub fn eplb(p: &Problem, groups: usize) -> Plan {
    let (layers, e, phys) = (p.layers(), p.experts(), p.physical());
    let share = p.total_load();
    let groups = if eplb_groups_fit(groups, e) {
        groups
    } else {
        1
    };
    let mut phy2log = Vec::with_capacity(layers * phys);
    for l in 0..layers {
        let w = &share[l * e..(l + 1) * e];
        let row = rebalance_experts(w, phys, groups, p.topology.nodes, p.gpus());
        phy2log.extend(row.into_iter().map(|x| x as u16));
    }
    Plan::new(layers, e, p.gpus(), p.slots_per_gpu, phy2log).expect("EPLB places every expert")
}

/// Whether EPLB can use `groups` expert groups for `experts` experts (they must divide evenly).
pub fn eplb_groups_fit(groups: usize, experts: usize) -> bool {
    groups > 0 && experts.is_multiple_of(groups)
}
