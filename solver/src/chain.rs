//! Exact chain dynamic programme. The objective couples consecutive layers only (a layer's balance
//! term depends on its own placement, a pair term on layers l and l+1), so when every layer's
//! placements can be enumerated (few experts per GPU, no replicas: Mixtral's 8 experts on 4 GPUs
//! have 2,520) the optimum is a shortest path through the layers' placements, found exactly.

use crate::control::Control;
use crate::objective::Scaled;

/// The states of one layer: for each, the GPU of every expert, `[states][experts]`.
#[derive(Debug, Clone)]
pub struct States {
    /// Experts per state.
    pub experts: usize,
    /// GPU of expert `x` in state `s` at `s * experts + x`.
    pub gpu_of: Vec<u8>,
}

impl States {
    /// Number of states.
    pub fn len(&self) -> usize {
        self.gpu_of.len() / self.experts.max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.gpu_of.is_empty()
    }

    /// The GPU of every expert in state `s`.
    pub fn state(&self, s: usize) -> &[u8] {
        &self.gpu_of[s * self.experts..(s + 1) * self.experts]
    }
}

/// Number of ways to put `experts` experts on `gpus` GPUs with `slots` each (experts = gpus x
/// slots): the multinomial `experts! / (slots!)^gpus`, saturating.
pub fn count_states(experts: usize, gpus: usize, slots: usize) -> u64 {
    if experts != gpus * slots {
        return 0;
    }
    // Product over GPUs of C(remaining, slots).
    let mut total: u64 = 1;
    let mut left = experts as u64;
    for _ in 0..gpus {
        let mut c: u64 = 1;
        for i in 0..slots as u64 {
            c = c.saturating_mul(left - i) / (i + 1);
        }
        total = total.saturating_mul(c);
        left -= slots as u64;
    }
    total
}

/// Every placement of `experts` single-replica experts on `gpus` GPUs with `slots` each, or `None`
/// when there are more than `cap` (or the shape has replicas, or more than 256 GPUs).
pub fn enumerate(experts: usize, gpus: usize, slots: usize, cap: usize) -> Option<States> {
    let count = count_states(experts, gpus, slots);
    if count == 0 || gpus > 256 || count == u64::MAX || count > cap as u64 {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = vec![0u8; experts];
    let mut used = vec![0usize; gpus];
    fn rec(x: usize, cur: &mut [u8], used: &mut [usize], slots: usize, out: &mut Vec<u8>) {
        if x == cur.len() {
            out.extend_from_slice(cur);
            return;
        }
        for g in 0..used.len() {
            if used[g] < slots {
                used[g] += 1;
                cur[x] = g as u8;
                rec(x + 1, cur, used, slots, out);
                used[g] -= 1;
            }
        }
    }
    rec(0, &mut cur, &mut used, slots, &mut out);
    Some(States {
        experts,
        gpu_of: out,
    })
}

/// The optimum found by the chain programme.
#[derive(Debug, Clone)]
pub struct ChainResult {
    /// Per layer, per GPU, its experts (`[layers][gpus][slots]`).
    pub lists: Vec<Vec<Vec<u16>>>,
    /// The objective of that plan (which is the minimum).
    pub value: f64,
}

/// Weighted balance term of every state of layer `l`.
fn node_costs(sc: &Scaled, l: usize, st: &States) -> Vec<f64> {
    let g = sc.gpus;
    let mut per_gpu = vec![0.0; g];
    (0..st.len())
        .map(|s| {
            let gs = st.state(s);
            let worst = (0..sc.loadn.len())
                .map(|w| {
                    per_gpu.fill(0.0);
                    for (x, &v) in sc.loadn(w, l).iter().enumerate() {
                        per_gpu[gs[x] as usize] += v;
                    }
                    per_gpu.iter().cloned().fold(0.0, f64::max)
                })
                .fold(0.0, f64::max);
            let moves = sc.moves(l).map_or(0.0, |m| {
                gs.iter()
                    .enumerate()
                    .map(|(x, &h)| m[x * g + h as usize])
                    .sum()
            });
            sc.weights.balance * worst + moves
        })
        .collect()
}

/// Solves the chain exactly, or `None` if the states of a layer exceed `cap` or the caller
/// interrupts (the time limit is not checked: the work is fixed and small by `cap`).
pub fn solve_chain(sc: &Scaled, cap: usize, ctl: &dyn Control) -> Option<ChainResult> {
    let (layers, e, g) = (sc.layers, sc.experts, sc.gpus);
    if layers == 0 {
        return None;
    }
    let st = enumerate(e, g, sc.slots, cap)?;
    let n = st.len();
    // cost[h * g + k]: weighted link cost from GPU h to GPU k.
    let cost: Vec<f64> = (0..g * g)
        .map(|i| sc.weights.comm * sc.topo.cost(i / g, i % g))
        .collect();
    // offsets[s * e + y] = y * g + gpu of y in state s: where state s reads its table entries.
    let offsets: Vec<u32> = (0..n * e)
        .map(|i| ((i % e) * g + st.gpu_of[i] as usize) as u32)
        .collect();
    let mut value = node_costs(sc, 0, &st);
    let mut back: Vec<Vec<u32>> = Vec::with_capacity(layers);
    let mut table = vec![0.0; n * e * g];
    let mut order: Vec<u32> = (0..n as u32).collect();
    for l in 0..layers - 1 {
        if ctl.interrupted() {
            return None;
        }
        // table[s][y][k]: link cost of every pair ending at expert y of layer l+1 placed on GPU k,
        // when layer l is in state s.
        let t = sc.tn(l);
        for s in 0..n {
            let gs = st.state(s);
            let row = &mut table[s * e * g..(s + 1) * e * g];
            row.fill(0.0);
            for (x, &h) in gs.iter().enumerate() {
                let c = &cost[h as usize * g..(h as usize + 1) * g];
                for y in 0..e {
                    let w = t[x * e + y];
                    if w > 0.0 {
                        for (o, &ck) in row[y * g..(y + 1) * g].iter_mut().zip(c) {
                            *o += w * ck;
                        }
                    }
                }
            }
        }
        // Cheapest predecessors first: every term is >= 0, so once a predecessor's value alone
        // reaches the best total found, no later one can beat it.
        order.sort_by(|&a, &b| value[a as usize].total_cmp(&value[b as usize]));
        let node = node_costs(sc, l + 1, &st);
        let mut next = vec![f64::INFINITY; n];
        let mut from = vec![0u32; n];
        for s2 in 0..n {
            let off = &offsets[s2 * e..(s2 + 1) * e];
            let mut best = f64::INFINITY;
            let mut arg = 0u32;
            for &s in &order {
                let v = value[s as usize];
                if v >= best {
                    break;
                }
                let row = &table[s as usize * e * g..(s as usize + 1) * e * g];
                let total = v + off.iter().map(|&o| row[o as usize]).sum::<f64>();
                if total < best {
                    best = total;
                    arg = s;
                }
            }
            next[s2] = best + node[s2];
            from[s2] = arg;
        }
        value = next;
        back.push(from);
    }
    let (mut s, &best) = value
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("at least one state");
    let mut path = vec![0usize; layers];
    path[layers - 1] = s;
    for l in (0..layers - 1).rev() {
        s = back[l][s] as usize;
        path[l] = s;
    }
    let lists = path
        .iter()
        .map(|&s| {
            let mut gpus = vec![Vec::with_capacity(sc.slots); g];
            for (x, &h) in st.state(s).iter().enumerate() {
                gpus[h as usize].push(x as u16);
            }
            gpus
        })
        .collect();
    Some(ChainResult { lists, value: best })
}
