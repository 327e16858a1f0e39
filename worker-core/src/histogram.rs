//! A latency histogram that recording never locks: log-linear buckets
//! over microseconds, exact below 32 µs and 32 buckets per power of two
//! above. A value is read back as its bucket's middle, within 1.6 % of the
//! true value: two significant digits. Durations past 2^40 µs
//! (12.7 days) land in the last bucket.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const MAX_EXPONENT: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_EXPONENT - SUB_BITS + 1) as u64 * SUB) as usize;

/// The counts, allocated on the first record: a worker that never runs
/// (or a stripe no thread uses) costs a pointer.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: OnceLock<Box<[AtomicU64]>>,
}

fn index(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let exponent = (63 - us.leading_zeros()).min(MAX_EXPONENT);
    let us = us.min((1 << (MAX_EXPONENT + 1)) - 1);
    let sub = (us >> (exponent - SUB_BITS)) - SUB;
    (SUB + u64::from(exponent - SUB_BITS) * SUB + sub) as usize
}

/// The middle of bucket `index`, in microseconds.
fn middle(index: usize) -> f64 {
    let index = index as u64;
    if index < SUB {
        return index as f64;
    }
    let exponent = (index - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (index - SUB) % SUB;
    let width = 1u64 << (exponent - u64::from(SUB_BITS));
    ((SUB + sub) * width) as f64 + (width as f64 - 1.0) / 2.0
}

impl Histogram {
    pub(crate) fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let buckets = self
            .buckets
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        buckets[index(us)].fetch_add(1, Relaxed);
    }

    /// Adds this histogram's counts into `sum` (one slot per bucket).
    pub(crate) fn add_to(&self, sum: &mut Vec<u64>) {
        if let Some(buckets) = self.buckets.get() {
            sum.resize(BUCKETS, 0);
            for (total, count) in sum.iter_mut().zip(buckets.iter()) {
                *total += count.load(Relaxed);
            }
        }
    }
}

/// The `quantile` (0.0..=1.0) of summed counts, in milliseconds; `None`
/// with no count.
pub(crate) fn percentile_ms(counts: &[u64], quantile: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (bucket, &count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(middle(bucket) / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_middle_is_within_1_6_percent() {
        let mut us = 0u64;
        while us < 1 << 41 {
            let i = index(us);
            assert!(i < BUCKETS, "{us} µs -> {i}");
            let error = (middle(i) - us as f64).abs() / (us.max(1) as f64);
            assert!(
                us < SUB || error <= 1.0 / 64.0,
                "{us} µs read back as {}",
                middle(i)
            );
            us = us * 17 / 16 + 1;
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_come_from_the_summed_counts() {
        let histogram = Histogram::default();
        for ms in 1..=100u64 {
            histogram.record(Duration::from_millis(ms));
        }
        let mut counts = Vec::new();
        histogram.add_to(&mut counts);
        let p = |q| percentile_ms(&counts, q).unwrap();
        for (q, expected) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            assert!(
                (p(q) - expected).abs() / expected <= 1.0 / 32.0,
                "p{q} = {}",
                p(q)
            );
        }
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
