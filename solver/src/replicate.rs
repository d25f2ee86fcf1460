//! Hot-expert replication (EPLB's `replicate_experts`): give each extra physical slot to the
//! expert with the largest load per replica.

/// Replica counts per expert for `physical` slots, at most `max_replicas` each; ties go to the
/// lowest expert id. `weight` is one layer's loads, `[experts]`.
pub fn replica_counts(weight: &[f64], physical: usize, max_replicas: usize) -> Vec<u32> {
    let mut cnt = vec![1u32; weight.len()];
    for _ in weight.len()..physical {
        let mut best: Option<usize> = None;
        for (e, &w) in weight.iter().enumerate() {
            if cnt[e] as usize >= max_replicas {
                continue;
            }
            let v = w / cnt[e] as f64;
            if best.is_none_or(|b| v > weight[b] / cnt[b] as f64) {
                best = Some(e);
            }
        }
        cnt[best.expect("physical <= experts x max_replicas")] += 1;
    }
    cnt
}

/// EPLB's `replicate_experts` on one row: `(phy2log, rank, logcnt)` where the first
/// `weight.len()` slots are the experts in order and each later slot holds the expert with the
/// largest load per replica at that moment.
pub fn replicate_experts(weight: &[f64], physical: usize) -> (Vec<usize>, Vec<u32>, Vec<u32>) {
    let n = weight.len();
    let mut phy2log: Vec<usize> = (0..n).collect();
    let mut rank = vec![0u32; n];
    let mut cnt = vec![1u32; n];
    for _ in n..physical {
        let mut best = 0;
        for e in 1..n {
            if weight[e] / cnt[e] as f64 > weight[best] / cnt[best] as f64 {
                best = e;
            }
        }
        phy2log.push(best);
        rank.push(cnt[best]);
        cnt[best] += 1;
    }
    (phy2log, rank, cnt)
}
