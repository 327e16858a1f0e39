//! The timeline's duration classes: how an ending batch files a duration
//! (the SQL in `sql.rs` `COUNT_ENDINGS` and migration 7, which must agree
//! with [`ROLLUP_SECONDS`], [`CLASSES_PER_DOUBLING`] and [`NO_DURATION`]) and how a percentile
//! is read back from the counts per class.
//!
//! A class `c` holds the durations in `[2^(c/4), 2^((c+1)/4))` ms: four per
//! doubling, each 19 % wide, so a percentile read from them is within 19 %
//! of the exact one, from microseconds to days, in a few rows per bucket.

/// The rollup's bucket, in seconds: the `5` of the SQL.
pub(crate) const ROLLUP_SECONDS: f64 = 5.0;

/// Classes per doubling of the duration.
const CLASSES_PER_DOUBLING: f64 = 4.0;

/// The class of runs that have no duration to count (cancelled, stalled).
pub(crate) const NO_DURATION: i16 = i16::MIN;

/// The durations of class `class`, in ms: `[low, high)`.
fn bounds(class: i16) -> (f64, f64) {
    let low = |c: f64| (c / CLASSES_PER_DOUBLING).exp2();
    (low(f64::from(class)), low(f64::from(class) + 1.0))
}

/// The `quantile` (0..=1) of the durations counted per class, as
/// `percentile_cont` would give it had each class's durations been spread
/// evenly over it; `None` if nothing with a duration was counted.
pub(crate) fn percentile(counts: &[(i16, u64)], quantile: f64) -> Option<f64> {
    let mut classes: Vec<(i16, u64)> = counts
        .iter()
        .copied()
        .filter(|&(class, count)| class != NO_DURATION && count > 0)
        .collect();
    classes.sort_unstable_by_key(|&(class, _)| class);
    let total: u64 = classes.iter().map(|&(_, count)| count).sum();
    if total == 0 {
        return None;
    }
    // The rank among `total` values, counted from 0, as percentile_cont.
    let rank = quantile.clamp(0.0, 1.0) * (total - 1) as f64;
    let mut below = 0u64;
    for &(class, count) in &classes {
        if rank < (below + count) as f64 {
            let (low, high) = bounds(class);
            // The class's values sit at the middles of `count` equal steps.
            let within = (rank - below as f64 + 0.5) / count as f64;
            return Some(low + (high - low) * within);
        }
        below += count;
    }
    classes.last().map(|&(class, _)| bounds(class).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class the SQL files `ms` under.
    fn class_of(ms: f64) -> i16 {
        (CLASSES_PER_DOUBLING * ms.max(1.0 / 1024.0).ln() / 2f64.ln()).floor() as i16
    }

    #[test]
    fn a_duration_falls_inside_its_class() {
        for ms in [0.002, 0.5, 1.0, 1.1, 3.0, 250.0, 86_400_000.0] {
            let (low, high) = bounds(class_of(ms));
            assert!(low <= ms && ms < high, "{ms} not in [{low}, {high})");
        }
    }

    #[test]
    fn the_p95_from_classes_is_within_a_class_of_the_exact_one() {
        // 1..=1000 ms, one each: the exact p95 (percentile_cont) is 950.05.
        let mut counts: Vec<(i16, u64)> = Vec::new();
        for ms in 1..=1000 {
            let class = class_of(f64::from(ms));
            match counts.iter_mut().find(|(c, _)| *c == class) {
                Some((_, n)) => *n += 1,
                None => counts.push((class, 1)),
            }
        }
        counts.push((NO_DURATION, 500));
        let p95 = percentile(&counts, 0.95).unwrap();
        assert!((p95 / 950.05 - 1.0).abs() < 0.19, "{p95}");
        let p50 = percentile(&counts, 0.5).unwrap();
        assert!((p50 / 500.5 - 1.0).abs() < 0.19, "{p50}");
    }

    #[test]
    fn one_class_and_nothing_counted() {
        let (low, high) = bounds(0);
        let p = percentile(&[(0, 10)], 0.95).unwrap();
        assert!(low <= p && p < high);
        assert_eq!(percentile(&[(NO_DURATION, 3)], 0.95), None);
        assert_eq!(percentile(&[], 0.95), None);
    }
}
