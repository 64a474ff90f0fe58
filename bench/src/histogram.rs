//! A small log-linear latency histogram (HdrHistogram's idea, ~1.6 % precision): values
//! below 128 get one bucket each; above, every power of two is split into 64 equal
//! sub-buckets. Written here rather than pulled in so the bench adds no dependency.
//!
//! Percentiles report the highest value of the bucket that holds the rank (capped at the
//! exact maximum), so they never understate a latency.

use serde::Serialize;

/// Sub-buckets per power of two, as a bit count (64 sub-buckets: relative error < 1/64).
const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Values below this are counted exactly.
const EXACT_LIMIT: u64 = 2 * SUB_BUCKETS;
/// Enough buckets for every `u64`.
const BUCKETS: usize = (EXACT_LIMIT + (64 - 7) * SUB_BUCKETS) as usize;

/// Counts of values (microseconds, in this crate) by bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

/// The percentiles every report prints, in the histogram's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        let index = bucket_index(value);
        debug_assert!(index < BUCKETS);
        self.counts[index] += 1;
        self.count += 1;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Adds every value of `other` (histograms of several tasks become one report).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The value at `quantile` (0.0..=1.0); 0 for an empty histogram.
    pub fn value_at(&self, quantile: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // The rank of the value asked for, 1-based: at least the first value.
        let rank = ((quantile.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_high(index).min(self.max);
            }
        }
        self.max
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count,
            p50: self.value_at(0.50),
            p90: self.value_at(0.90),
            p99: self.value_at(0.99),
            p999: self.value_at(0.999),
            max: self.max,
        }
    }
}

fn bucket_index(value: u64) -> usize {
    if value < EXACT_LIMIT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= 7 here
    let shift = exponent - SUB_BUCKET_BITS;
    let mantissa = value >> shift; // in [SUB_BUCKETS, 2 * SUB_BUCKETS)
    (EXACT_LIMIT + u64::from(exponent - 7) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The highest value that falls into bucket `index`.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT_LIMIT {
        return index;
    }
    let k = index - EXACT_LIMIT;
    let shift = (k / SUB_BUCKETS) as u32 + 1;
    let mantissa = SUB_BUCKETS + k % SUB_BUCKETS;
    // For the very last bucket the shift drops the top bit (0), and 0 - 1 wraps to u64::MAX.
    ((mantissa + 1) << shift).wrapping_sub(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.value_at(0.5), 50);
        assert_eq!(h.value_at(0.9), 90);
        assert_eq!(h.value_at(0.99), 99);
        assert_eq!(h.value_at(1.0), 100);
        assert_eq!(h.max(), 100);
    }

    #[test]
    fn large_values_are_within_two_percent_and_never_understated() {
        let mut h = Histogram::new();
        for v in (1..=10_000u64).map(|v| v * 1_000) {
            h.record(v);
        }
        for (q, exact) in [(0.5, 5_000_000u64), (0.9, 9_000_000), (0.99, 9_900_000)] {
            let got = h.value_at(q);
            assert!(got >= exact, "q {q}: {got} < {exact}");
            assert!((got - exact) as f64 / exact as f64 <= 0.02, "q {q}: {got}");
        }
        assert_eq!(h.percentiles().max, 10_000_000);
    }

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        for shift in 0..64 {
            for v in [
                1u64 << shift,
                (1u64 << shift) + 1,
                (1u64 << shift).wrapping_mul(3) / 2,
            ] {
                let index = bucket_index(v);
                assert!(index < BUCKETS);
                assert!(bucket_high(index) >= v, "value {v}");
            }
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_max() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(20);
        b.record(30_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 30_000);
        assert_eq!(a.value_at(0.5), 20);
        assert_eq!(Histogram::new().percentiles().p99, 0);
    }
}
