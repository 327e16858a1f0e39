//! Throughput and latency over the last 15 minutes, for the dashboard's
//! charts: ended runs counted per 5-second bucket by outcome, with a
//! log-scale histogram of durations per bucket for its p95.
//!
//! Fixed memory (180 buckets, about 1 KiB each) whatever the load: a
//! bucket is reused once it is 15 minutes old.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use worker_core::backend::TimelineBucket;
use worker_core::observe::Outcome;

/// The width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(5);

/// How many buckets: 15 minutes' worth.
pub const BUCKETS: usize = 180;

/// Duration bins: bin `i` holds durations up to `MIN_MS × GROWTH^i`, so a
/// p95 read from them is within 10 % of the true one, from 10 µs to hours.
const BINS: usize = 256;
const MIN_MS: f64 = 0.01;
const GROWTH: f64 = 1.1;

/// Runs per outcome and their durations, per 5 seconds.
#[derive(Debug)]
pub struct Timeline {
    buckets: Mutex<Vec<Bucket>>,
}

#[derive(Debug, Clone)]
struct Bucket {
    /// Which 5 seconds since the epoch this bucket counts; `u64::MAX` for
    /// none yet.
    slot: u64,
    counts: [u32; Outcome::ALL.len()],
    bins: Box<[u32; BINS]>,
}

impl Default for Timeline {
    fn default() -> Self {
        let empty = Bucket {
            slot: u64::MAX,
            counts: [0; Outcome::ALL.len()],
            bins: Box::new([0; BINS]),
        };
        Timeline {
            buckets: Mutex::new(vec![empty; BUCKETS]),
        }
    }
}

fn slot_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / BUCKET.as_secs()
}

fn outcome_index(outcome: Outcome) -> usize {
    // `Outcome::ALL` holds every outcome: the position is always found.
    Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0)
}

fn bin_of(duration: Duration) -> usize {
    let ms = duration.as_secs_f64() * 1e3;
    if ms <= MIN_MS {
        return 0;
    }
    ((ms / MIN_MS).ln() / GROWTH.ln())
        .ceil()
        .min((BINS - 1) as f64) as usize
}

fn bin_upper_ms(bin: usize) -> f64 {
    MIN_MS * GROWTH.powi(bin as i32)
}

impl Timeline {
    /// Counts a run that ended now.
    pub fn record(&self, outcome: Outcome, duration: Duration) {
        self.record_at(SystemTime::now(), outcome, duration);
    }

    /// Counts a run that ended `at`.
    pub fn record_at(&self, at: SystemTime, outcome: Outcome, duration: Duration) {
        let slot = slot_of(at);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = &mut buckets[(slot % BUCKETS as u64) as usize];
        if bucket.slot != slot {
            bucket.slot = slot;
            bucket.counts = [0; Outcome::ALL.len()];
            bucket.bins.fill(0);
        }
        bucket.counts[outcome_index(outcome)] += 1;
        // Cancelled and stalled runs have no duration in the statistics.
        if !matches!(outcome, Outcome::Cancelled | Outcome::Stalled) {
            bucket.bins[bin_of(duration)] += 1;
        }
    }

    /// The runs that ended in the last `window` as of `now` (at most 15
    /// minutes), per 5-second bucket, oldest first; buckets with none are
    /// left out.
    pub fn buckets(&self, now: SystemTime, window: Duration) -> Vec<TimelineBucket> {
        let newest = slot_of(now);
        let span = (window.as_secs() / BUCKET.as_secs()).clamp(1, BUCKETS as u64);
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        (0..span)
            .rev()
            .map(|back| newest.saturating_sub(back))
            .filter_map(|slot| {
                let kept = &buckets[(slot % BUCKETS as u64) as usize];
                (kept.slot == slot).then(|| TimelineBucket {
                    start: UNIX_EPOCH + Duration::from_secs(slot * BUCKET.as_secs()),
                    counts: Outcome::ALL
                        .into_iter()
                        .zip(kept.counts)
                        .filter(|(_, count)| *count > 0)
                        .map(|(outcome, count)| (outcome, u64::from(count)))
                        .collect(),
                    p95_ms: p95_ms(&kept.bins),
                })
            })
            .collect()
    }
}

fn p95_ms(bins: &[u32; BINS]) -> Option<f64> {
    let total: u64 = bins.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = (total as f64 * 0.95).ceil() as u64;
    let mut seen = 0;
    for (bin, &count) in bins.iter().enumerate() {
        seen += u64::from(count);
        if seen >= rank {
            return Some((bin_upper_ms(bin) * 100.0).round() / 100.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome_and_p95_within_ten_percent_for_the_last_15_minutes() {
        let timeline = Timeline::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for ms in 1..=100 {
            timeline.record_at(now, Outcome::Succeeded, Duration::from_millis(ms));
        }
        timeline.record_at(now, Outcome::Failed, Duration::from_millis(1));
        timeline.record_at(now, Outcome::Cancelled, Duration::from_secs(100));
        // 20 minutes ago: outside the window.
        timeline.record_at(
            now - Duration::from_secs(1200),
            Outcome::Failed,
            Duration::ZERO,
        );
        let window = BUCKET * BUCKETS as u32;
        let buckets = timeline.buckets(now, window);
        assert_eq!(buckets.len(), 1, "only the bucket with runs: {buckets:?}");
        let last = &buckets[0];
        assert_eq!(slot_of(last.start), slot_of(now));
        let count = |outcome| {
            last.counts
                .iter()
                .find(|(o, _)| *o == outcome)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(count(Outcome::Succeeded), 100);
        assert_eq!(
            count(Outcome::Failed),
            1,
            "a run 20 minutes old is not shown"
        );
        assert_eq!(count(Outcome::Cancelled), 1);
        let p95 = last.p95_ms.unwrap();
        assert!((95.0..=105.0).contains(&p95), "p95 of 1..=100 ms: {p95}");
        // The old run's bucket was reused by a newer one, not added to it.
        timeline.record_at(
            now + Duration::from_secs(900),
            Outcome::Failed,
            Duration::ZERO,
        );
        let later = timeline.buckets(now + Duration::from_secs(900), window);
        assert_eq!(later.last().unwrap().counts, [(Outcome::Failed, 1)]);
    }
}
