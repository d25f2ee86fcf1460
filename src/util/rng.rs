//! The one seeded generator of the crate: ChaCha8 (`rand_chacha`, drawn through `rand`) behind
//! the few draws the synthetic traces and the learned predictor's initial weights and shuffles
//! use, so a seed gives the same output on every machine and thread count.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded ChaCha8 stream (portable: the same values on every platform for a seed).
#[derive(Debug, Clone)]
pub(crate) struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SeededRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The next 64 random bits (the stream the other draws consume).
    #[cfg(test)]
    fn next_u64(&mut self) -> u64 {
        rand::Rng::next_u64(&mut self.0)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform in 0..n (n >= 1).
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A standard normal sample (Box-Muller).
    pub(crate) fn normal(&mut self) -> f32 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    /// Shuffles `xs` in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        xs.shuffle(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ChaCha8Rng::seed_from_u64(0)'s first output.
    const KNOWN_FIRST: u64 = 0xB585_F767_A79A_3B6C;

    #[test]
    fn same_seed_same_stream_and_known_first_value() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Pinned: a change here (a new rand_chacha stream) changes every synthetic trace.
        assert_eq!(SeededRng::new(0).next_u64(), KNOWN_FIRST);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut r = SeededRng::new(1);
        for n in 1..200 {
            assert!(r.below(n) < n);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let mut xs: Vec<u32> = (0..50).collect();
        r.shuffle(&mut xs);
        xs.sort_unstable();
        assert_eq!(xs, (0..50).collect::<Vec<_>>());
    }
}
