//! Cross-validation of the online options on the training traces: for each fold held out, the
//! offline prior is fitted on the other folds and an online `markov` runs prequentially over
//! the held-out fold (as it would over a new workload); the grid point with the best mean of
//! recall@k and recall@2k at h = 1 over the folds wins (ties: the earlier point).

use std::sync::Arc;

use super::{DecayedCounts, Head, OnlineOptions, OnlinePredictor, Prior};
use crate::predict::{MarkovPredictor, StaticPredictor, prequential_recall};
use crate::trace::Trace;

/// Half-lives tried, in tokens (infinity: no decay).
pub const HALF_LIVES: [f64; 5] = [500.0, 1000.0, 2000.0, 4000.0, f64::INFINITY];
/// Prior weights tried, in pseudo-tokens.
pub const PRIOR_WEIGHTS: [f32; 5] = [1.0, 4.0, 16.0, 64.0, 256.0];
/// Every this many tokens of a held-out fold is scored (all are observed).
const STRIDE: usize = 8;

/// Chooses the half-life and prior weight by cross-validation over `folds` (at least two).
pub fn tune(folds: &[&Trace]) -> Result<OnlineOptions, String> {
    if folds.len() < 2 {
        return Err("online tuning needs at least two folds".into());
    }
    let mut total = vec![0f64; HALF_LIVES.len() * PRIOR_WEIGHTS.len()];
    for (i, held) in folds.iter().enumerate() {
        let rest: Vec<&Trace> = folds
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, t)| *t)
            .collect();
        let train = Trace::concat(&rest)?;
        let stat = Arc::new(StaticPredictor::fit(&train, 1));
        let markov = Arc::new(MarkovPredictor::fit(&train, 1, &stat));
        for (g, slot) in total.iter_mut().enumerate() {
            let opts = OnlineOptions {
                half_life: HALF_LIVES[g / PRIOR_WEIGHTS.len()],
                prior_weight: PRIOR_WEIGHTS[g % PRIOR_WEIGHTS.len()],
                head_lr: OnlineOptions::DEFAULT.head_lr,
            };
            let mut p = OnlinePredictor {
                head: Head::Markov,
                counts: DecayedCounts::new(*held.shape(), 1, opts.half_life),
                prior: Some(Prior {
                    stat: stat.clone(),
                    markov: markov.clone(),
                }),
                opts,
                lookahead: 1,
            };
            *slot += prequential_recall(&mut p, held, STRIDE);
        }
    }
    let best = total
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |b, (g, &v)| if v > b.1 { (g, v) } else { b });
    Ok(OnlineOptions {
        half_life: HALF_LIVES[best.0 / PRIOR_WEIGHTS.len()],
        prior_weight: PRIOR_WEIGHTS[best.0 % PRIOR_WEIGHTS.len()],
        head_lr: OnlineOptions::DEFAULT.head_lr,
    })
}
