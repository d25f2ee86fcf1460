//! Top-K selection over a score vector, without allocation.

/// Writes the indices of the `idx.len()` highest scores of `scores` into `idx`, best first; ties
/// go to the lower index. `scratch` must be at least `scores.len()` long and is overwritten.
/// Returns how many indices were written (`min(idx.len(), scores.len())`).
pub fn top_k_into(scores: &[f32], scratch: &mut [u16], idx: &mut [u16]) -> usize {
    let n = scores.len();
    let k = idx.len().min(n);
    let order = &mut scratch[..n];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u16;
    }
    let better = |a: &u16, b: &u16| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k == 0 {
        return 0;
    }
    if k < n {
        order.select_nth_unstable_by(k - 1, better);
    }
    order[..k].sort_unstable_by(better);
    idx[..k].copy_from_slice(&order[..k]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_with_low_index_ties() {
        let s = [0.1, 0.9, 0.5, 0.9, 0.0];
        let mut scratch = [0u16; 5];
        let mut idx = [0u16; 3];
        assert_eq!(top_k_into(&s, &mut scratch, &mut idx), 3);
        assert_eq!(idx, [1, 3, 2]);
    }
}
