//! Per-worker statistics: lock-free counters updated once as each run ends,
//! read as a consistent-enough [`WorkerStats`] snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::{Histogram, percentile_ms};
use crate::limits::LimitUse;
use crate::run_state::Outcome;

/// A snapshot of one worker's statistics, from
/// [`WORKER::stats`](crate::WORKER::stats).
///
/// Every run that ends is counted once, by its final outcome: a run that
/// succeeds or fails (an error, a panic, a timeout) in `runs`, and in
/// `errors` too if it failed; a cancelled run in `cancelled` only. Attempts
/// that failed and were retried are counted in `retries`. Times come from a
/// monotonic clock (tokio's) and cover finished runs, not cancelled ones. A
/// run's duration runs from its call to its end, across its attempts and the
/// backoff between them, less the time it waited for a concurrency slot,
/// which the `wait_` percentiles give.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("flaky", |ctx| async move {
///     match ctx.payload() {
///         Some(_) => Err(Error::validation("no payload expected")),
///         None => Ok(()),
///     }
/// }).await?;
/// manager.run("flaky", None).await?;
/// assert!(manager.run("flaky", Some(json!(1))).await.is_err());
///
/// let stats = manager.stats("flaky").await.unwrap();
/// assert_eq!((stats.runs, stats.errors, stats.cancelled), (2, 1, 0));
/// assert_eq!(stats.success_rate(), 50.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Finished runs: succeeded or failed.
    pub runs: u64,
    /// Failed runs (errors, panics and timeouts); never more than `runs`.
    pub errors: u64,
    /// Runs cancelled before they finished (by id, by handle or by shutdown).
    pub cancelled: u64,
    /// Of `errors`, the runs that hit their timeout.
    pub timeouts: u64,
    /// Of `errors`, the runs that panicked.
    pub panics: u64,
    /// Runs executing now (an attempt started and not ended; in durable
    /// mode, claimed by a node). Runs waiting for a concurrency slot or a
    /// `resume` are `queued` instead; `WORKER::running()` lists both.
    pub running: u64,
    /// Runs due and waiting to start: for a concurrency slot, or while the
    /// worker is paused (in durable mode, queued in the cluster).
    #[serde(default)]
    pub queued: u64,
    /// Runs waiting for their start time (`Call::delay`/`at`).
    #[serde(default)]
    pub scheduled: u64,
    /// Whether the worker is paused.
    #[serde(default)]
    pub paused: bool,
    /// Scheduled ticks skipped because the previous scheduled run was still
    /// in flight.
    pub skipped: u64,
    /// Attempts that failed and were tried again. A run that failed twice
    /// and then succeeded adds 1 to `runs`, 0 to `errors` and 2 here.
    pub retries: u64,
    /// Duration of the last finished run, in milliseconds.
    pub last_run_ms: Option<u64>,
    /// Median duration of finished runs, in milliseconds, within 1.6 %
    /// (two significant digits); `None` before any.
    pub p50_ms: Option<f64>,
    /// 95th percentile of finished runs' durations, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile of finished runs' durations, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Median time an attempt waited for a concurrency slot, in
    /// milliseconds; `None` for a worker without `concurrency`.
    pub wait_p50_ms: Option<f64>,
    /// 99th percentile of that wait, in milliseconds.
    pub wait_p99_ms: Option<f64>,
    /// Total duration of all finished runs, in milliseconds.
    pub total_runtime_ms: u64,
    /// The worker's cluster-wide and per-key limits in use now ("12 of 16
    /// running", "73 of 100 this minute", the busiest keys); `None` for a
    /// worker without any.
    #[serde(default)]
    pub limits: Option<LimitUse>,
}

impl WorkerStats {
    /// Mean duration of finished runs in milliseconds; 0 before any.
    pub fn average_ms(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.total_runtime_ms as f64 / self.runs as f64
        }
    }

    /// Percentage of finished runs that succeeded; 0 before any.
    pub fn success_rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            (self.runs - self.errors) as f64 / self.runs as f64 * 100.0
        }
    }
}

/// The live counters behind [`WorkerStats`], striped by thread: a run is
/// admitted on its caller's thread and ends on a worker thread, and with one
/// shared set of counters every run would bounce that cache line between
/// cores. A snapshot sums the stripes.
///
/// Writers bump `runs` before `errors` before `timeouts`/`panics`; readers
/// load every stripe's `timeouts`/`panics`, then every `errors`, then every
/// `runs`, so a snapshot never shows more errors than runs, and every
/// finished count before any `started`, so `running` never underflows.
#[derive(Debug)]
pub(crate) struct StatsCell {
    stripes: Box<[Stripe]>,
    /// `Stripe::last_at` counts from here, to find the latest last run.
    epoch: Instant,
}

#[derive(Debug, Default)]
#[repr(align(128))] // a cache line (two, for adjacent-line prefetch) each
struct Stripe {
    started: AtomicU64,
    runs: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    timeouts: AtomicU64,
    panics: AtomicU64,
    retries: AtomicU64,
    skipped: AtomicU64,
    total_runtime_us: AtomicU64,
    last_run_us: AtomicU64,
    /// When this stripe's last run ended, in µs since `epoch`; 0 = never.
    last_at: AtomicU64,
    /// Finished runs' durations.
    durations: Histogram,
    /// Attempts' waits for a concurrency slot.
    waits: Histogram,
}

impl Default for StatsCell {
    fn default() -> Self {
        StatsCell {
            stripes: (0..stripe_count()).map(|_| Stripe::default()).collect(),
            epoch: crate::sync::now(),
        }
    }
}

/// How many stripes every definition has: enough for each core's threads
/// to have one of their own.
fn stripe_count() -> usize {
    (crate::sync::cores() * 2)
        .next_power_of_two()
        .min(MAX_STRIPES)
}

const MAX_STRIPES: usize = 64;

/// Live threads per stripe slot, to give a new thread the emptiest slot: a
/// plain counter (thread 5 and thread 9 on slot 1 of 4) would often put a
/// runtime's two workers on one stripe, and they would fight over it.
static OCCUPANCY: [AtomicUsize; MAX_STRIPES] = [const { AtomicUsize::new(0) }; MAX_STRIPES];

/// This thread's stripe slot, taken on first use, given back at thread exit.
struct Slot(usize);

impl Slot {
    fn take() -> Self {
        let count = stripe_count();
        let emptiest = (0..count)
            .min_by_key(|&slot| OCCUPANCY[slot].load(Relaxed))
            .unwrap_or(0);
        OCCUPANCY[emptiest].fetch_add(1, Relaxed);
        Slot(emptiest)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OCCUPANCY[self.0].fetch_sub(1, Relaxed);
    }
}

fn thread_index() -> usize {
    thread_local! {
        static SLOT: Slot = Slot::take();
    }
    // While the thread is being torn down its slot is gone; any will do.
    SLOT.try_with(|slot| slot.0).unwrap_or(0)
}

impl StatsCell {
    fn stripe(&self) -> &Stripe {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
    }

    pub(crate) fn started(&self) {
        self.stripe().started.fetch_add(1, SeqCst);
    }

    /// Counts an attempt that failed and will be tried again.
    pub(crate) fn retried(&self) {
        self.stripe().retries.fetch_add(1, SeqCst);
    }

    /// Records how long an attempt waited for a concurrency slot.
    pub(crate) fn waited(&self, wait: Duration) {
        self.stripe().waits.record(wait);
    }

    /// Counts a scheduled tick that started nothing.
    pub(crate) fn skipped(&self) {
        self.stripe().skipped.fetch_add(1, SeqCst);
    }

    /// Counts a run that took `took` and ended at `now`.
    pub(crate) fn ended(&self, outcome: Outcome, took: Duration, now: Instant) {
        let stripe = self.stripe();
        if outcome == Outcome::Cancelled {
            stripe.cancelled.fetch_add(1, SeqCst);
            return;
        }
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        stripe.durations.record(took);
        let took = us(took);
        stripe.total_runtime_us.fetch_add(took, SeqCst);
        // Plain stores: which run was last needs no ordering with the
        // counters, and a SeqCst store is a locked instruction on x86.
        stripe.last_run_us.store(took, Relaxed);
        stripe.last_at.store(
            us(now.saturating_duration_since(self.epoch)).max(1),
            Relaxed,
        );
        stripe.runs.fetch_add(1, SeqCst);
        match outcome {
            Outcome::Succeeded | Outcome::Cancelled => {}
            Outcome::Failed | Outcome::Stalled => {
                stripe.errors.fetch_add(1, SeqCst);
            }
            Outcome::TimedOut => {
                stripe.errors.fetch_add(1, SeqCst);
                stripe.timeouts.fetch_add(1, SeqCst);
            }
            Outcome::Panicked => {
                stripe.errors.fetch_add(1, SeqCst);
                stripe.panics.fetch_add(1, SeqCst);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let sum = |counter: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes.iter().map(|s| counter(s).load(SeqCst)).sum()
        };
        let timeouts = sum(|s| &s.timeouts);
        let panics = sum(|s| &s.panics);
        let errors = sum(|s| &s.errors);
        let runs = sum(|s| &s.runs);
        let cancelled = sum(|s| &s.cancelled);
        let started = sum(|s| &s.started);
        let last_run_ms = self
            .stripes
            .iter()
            .map(|s| (s.last_at.load(Relaxed), s.last_run_us.load(Relaxed)))
            .filter(|&(at, _)| at != 0)
            .max_by_key(|&(at, _)| at)
            .map(|(_, us)| us / 1000);
        let (mut durations, mut waits) = (Vec::new(), Vec::new());
        for stripe in self.stripes.iter() {
            stripe.durations.add_to(&mut durations);
            stripe.waits.add_to(&mut waits);
        }
        WorkerStats {
            runs,
            errors,
            cancelled,
            timeouts,
            panics,
            running: started.saturating_sub(runs + cancelled),
            retries: sum(|s| &s.retries),
            skipped: sum(|s| &s.skipped),
            last_run_ms,
            total_runtime_ms: sum(|s| &s.total_runtime_us) / 1000,
            p50_ms: percentile_ms(&durations, 0.50),
            p95_ms: percentile_ms(&durations, 0.95),
            p99_ms: percentile_ms(&durations, 0.99),
            wait_p50_ms: percentile_ms(&waits, 0.50),
            wait_p99_ms: percentile_ms(&waits, 0.99),
            ..WorkerStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_runs_are_counted_apart_from_runs() {
        let cell = StatsCell::default();
        for _ in 0..4 {
            cell.started();
        }
        let t0 = Instant::now();
        cell.ended(
            Outcome::Succeeded,
            Duration::from_millis(3),
            t0 + Duration::from_millis(3),
        );
        cell.ended(
            Outcome::TimedOut,
            Duration::from_millis(5),
            t0 + Duration::from_millis(5),
        );
        cell.ended(
            Outcome::Cancelled,
            Duration::from_millis(100),
            t0 + Duration::from_millis(100),
        );
        let stats = cell.snapshot();
        assert_eq!(stats.runs, 2);
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.timeouts, 1);
        assert_eq!(stats.cancelled, 1);
        assert_eq!(stats.running, 1);
        assert_eq!(stats.last_run_ms, Some(5));
        assert_eq!(stats.total_runtime_ms, 8);
    }

    #[test]
    fn sub_millisecond_runs_still_add_up() {
        let cell = StatsCell::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            cell.started();
            cell.ended(
                Outcome::Succeeded,
                Duration::from_micros(300),
                t0 + Duration::from_micros(300),
            );
        }
        let stats = cell.snapshot();
        assert_eq!(stats.total_runtime_ms, 3);
        assert_eq!(stats.last_run_ms, Some(0));
    }

    #[test]
    fn stripes_add_up_and_the_latest_last_run_wins() {
        let cell = std::sync::Arc::new(StatsCell::default());
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        cell.started();
                        cell.ended(
                            Outcome::Failed,
                            Duration::from_millis(i + 1),
                            t0 + Duration::from_millis(i + 1),
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let later = t0 + Duration::from_secs(1);
        cell.ended(Outcome::Succeeded, Duration::from_millis(42), later);
        let stats = cell.snapshot();
        assert_eq!((stats.runs, stats.errors, stats.running), (4001, 4000, 0));
        assert_eq!(stats.last_run_ms, Some(42));
    }

    #[test]
    fn empty_stats() {
        let stats = StatsCell::default().snapshot();
        assert_eq!(stats.last_run_ms, None);
        assert_eq!(stats.average_ms(), 0.0);
        assert_eq!(stats.success_rate(), 0.0);
    }
}
