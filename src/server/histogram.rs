//! Fixed-bucket histograms that thousands of sessions add to without contending: each
//! session counts into a [`Local`] and adds it to the shared [`Histogram`] every
//! [`Local::BATCH`] observations, at each ping tick, and when it ends.

use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus histogram of whole numbers (a unit of the caller's choosing).
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Inclusive upper bounds, ascending; the last is `u64::MAX` (`+Inf`).
    bounds: [u64; N],
    /// Observations per bucket (not cumulative).
    counts: [AtomicU64; N],
    sum: AtomicU64,
}

/// A session's own counts, not yet added to the shared histogram: a few dozen bytes, as
/// every session carries two (a count never passes [`Local::BATCH`], so a byte holds it).
#[derive(Debug, Clone, Copy)]
pub struct Local<const N: usize> {
    counts: [u8; N],
    n: u8,
    sum: u64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: [u64; N]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(bounds[N - 1], u64::MAX);
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }

    /// Adds one observation directly (for rare events).
    pub fn observe(&self, value: u64) {
        self.counts[self.bucket(value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    fn bucket(&self, value: u64) -> usize {
        self.bounds.partition_point(|b| *b < value)
    }

    /// Adds a session's counts and clears them.
    pub fn absorb(&self, local: &mut Local<N>) {
        if local.n == 0 {
            return;
        }
        for (shared, n) in self.counts.iter().zip(&local.counts) {
            if *n > 0 {
                shared.fetch_add(u64::from(*n), Ordering::Relaxed);
            }
        }
        self.sum.fetch_add(local.sum, Ordering::Relaxed);
        *local = Local::default();
    }

    /// (upper bound, cumulative count) per bucket, the sum and the count.
    pub fn read(&self) -> (Vec<(u64, u64)>, u64, u64) {
        let mut total = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, n)| {
                total += n.load(Ordering::Relaxed);
                (*bound, total)
            })
            .collect();
        (buckets, self.sum.load(Ordering::Relaxed), total)
    }
}

impl<const N: usize> Default for Local<N> {
    fn default() -> Self {
        Local {
            counts: [0; N],
            sum: 0,
            n: 0,
        }
    }
}

impl<const N: usize> Local<N> {
    /// Observations a session keeps before adding them to the shared histogram.
    pub const BATCH: u8 = 64;

    /// Counts one observation; true when the batch is full and wants absorbing.
    pub fn observe(&mut self, shared: &Histogram<N>, value: u64) -> bool {
        self.counts[shared.bucket(value)] += 1;
        self.sum = self.sum.saturating_add(value);
        self.n += 1;
        self.n >= Self::BATCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let h = Histogram::new([1, 10, u64::MAX]);
        let mut local = Local::default();
        for v in [0, 1, 2, 10, 11, 1_000] {
            local.observe(&h, v);
        }
        assert_eq!(h.read().2, 0, "nothing shared before absorbing");
        h.absorb(&mut local);
        h.observe(5);
        let (buckets, sum, count) = h.read();
        assert_eq!(buckets, vec![(1, 2), (10, 5), (u64::MAX, 7)]);
        assert_eq!((sum, count), (1_029, 7));
        h.absorb(&mut local);
        assert_eq!(h.read().2, 7, "an absorbed local starts again from zero");
    }

    #[test]
    fn a_full_batch_asks_to_be_absorbed() {
        let h = Histogram::new([u64::MAX]);
        let mut local = Local::default();
        let full = (0..Local::<1>::BATCH)
            .map(|_| local.observe(&h, 1))
            .filter(|f| *f)
            .count();
        assert_eq!(full, 1);
    }
}
