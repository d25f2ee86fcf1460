//! A port of DeepSeek's EPLB (`eplb.py`): balanced packing, hot-expert replication, and the
//! hierarchical (groups to nodes, replicas within nodes, replicas to GPUs) and global policies.
//! Shapes follow the original: `weight` is one layer's loads `[num_logical_experts]`; the
//! result is that layer's `phy2log` `[num_physical_experts]`.

use crate::replicate::replicate_experts;

/// Packs `weight.len()` items into `num_packs` packs of equal item count, heaviest item first to
/// the lightest pack that still has room. Returns `(pack_index, rank_in_pack)` per item.
pub fn balanced_packing(weight: &[f64], num_packs: usize) -> (Vec<usize>, Vec<usize>) {
    let n = weight.len();
    assert!(
        num_packs > 0 && n.is_multiple_of(num_packs),
        "items must divide into packs"
    );
    let per_pack = n / num_packs;
    if per_pack == 1 {
        return ((0..n).collect(), vec![0; n]);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]));
    let mut pack_index = vec![0; n];
    let mut rank = vec![0; n];
    let mut pack_weight = vec![0.0f64; num_packs];
    let mut pack_items = vec![0usize; num_packs];
    for item in order {
        let pack = (0..num_packs)
            .filter(|&p| pack_items[p] < per_pack)
            .min_by(|&a, &b| pack_weight[a].total_cmp(&pack_weight[b]))
            .expect("a pack has room");
        pack_index[item] = pack;
        rank[item] = pack_items[pack];
        pack_weight[pack] += weight[item];
        pack_items[pack] += 1;
    }
    (pack_index, rank)
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// EPLB's hierarchical policy for one layer: Step 1 packs expert groups to nodes, Step 2
/// replicates hot experts within each node, Step 3 packs the node's replicas to its GPUs.
pub fn rebalance_hierarchical(
    weight: &[f64],
    num_physical: usize,
    num_groups: usize,
    num_nodes: usize,
    num_gpus: usize,
) -> Vec<usize> {
    let num_logical = weight.len();
    assert!(num_logical.is_multiple_of(num_groups) && num_groups.is_multiple_of(num_nodes));
    assert!(num_gpus.is_multiple_of(num_nodes) && num_physical.is_multiple_of(num_gpus));
    let group_size = num_logical / num_groups;
    let groups_per_node = num_groups / num_nodes;
    let phy_per_gpu = num_physical / num_gpus;
    let log_per_node = num_logical / num_nodes;
    let phy_per_node = num_physical / num_nodes;

    // Step 1: pack groups to nodes.
    let tokens_per_group: Vec<f64> = weight.chunks(group_size).map(|c| c.iter().sum()).collect();
    let (group_pack, group_rank) = balanced_packing(&tokens_per_group, num_nodes);
    let log2mlog: Vec<usize> = (0..num_logical)
        .map(|x| {
            let g = x / group_size;
            (group_pack[g] * groups_per_node + group_rank[g]) * group_size + x % group_size
        })
        .collect();
    let mlog2log = inverse(&log2mlog);

    let mut phy2log = vec![0; num_physical];
    for node in 0..num_nodes {
        // Step 2: replicate experts within the node.
        let tokens_per_mlog: Vec<f64> = (0..log_per_node)
            .map(|i| weight[mlog2log[node * log_per_node + i]])
            .collect();
        let (phy2mlog, _rank, mlogcnt) = replicate_experts(&tokens_per_mlog, phy_per_node);
        // Step 3: pack the node's physical experts to its GPUs.
        let tokens_per_phy: Vec<f64> = phy2mlog
            .iter()
            .map(|&m| tokens_per_mlog[m] / mlogcnt[m] as f64)
            .collect();
        let (pack, rank) = balanced_packing(&tokens_per_phy, num_gpus / num_nodes);
        let phy2pphy: Vec<usize> = (0..phy_per_node)
            .map(|j| pack[j] * phy_per_gpu + rank[j])
            .collect();
        let pphy2phy = inverse(&phy2pphy);
        for k in 0..phy_per_node {
            let mlog = phy2mlog[pphy2phy[k]] + node * log_per_node;
            phy2log[node * phy_per_node + k] = mlog2log[mlog];
        }
    }
    phy2log
}

/// EPLB's entry point for one layer: the hierarchical policy when the groups divide among the
/// nodes, else the global policy (one group, one node).
pub fn rebalance_experts(
    weight: &[f64],
    num_replicas: usize,
    num_groups: usize,
    num_nodes: usize,
    num_gpus: usize,
) -> Vec<usize> {
    if num_groups.is_multiple_of(num_nodes) {
        rebalance_hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    } else {
        rebalance_hierarchical(weight, num_replicas, 1, 1, num_gpus)
    }
}
