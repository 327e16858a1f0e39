//! Per-worker statistics: lock-free counters updated once as each run ends,
//! read as a consistent-enough [`WorkerStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A snapshot of one worker's statistics, from
/// [`WORKER::stats`](crate::WORKER::stats).
///
/// Every run that ends is counted once: a run that succeeds or fails (an
/// error, a panic, a timeout) in `runs`, and in `errors` too if it failed; a
/// cancelled run in `cancelled` only. Times come from a monotonic clock and
/// cover finished runs, not cancelled ones.
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
    /// Runs in flight now.
    pub running: u64,
    /// Duration of the last finished run, in milliseconds.
    pub last_run_ms: Option<u64>,
    /// Total duration of all finished runs, in milliseconds.
    pub total_runtime_ms: u64,
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

/// How a run ended, as far as statistics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Succeeded,
    Failed,
    TimedOut,
    Panicked,
    Cancelled,
}

const NO_RUN: u64 = u64::MAX;

/// The live counters behind [`WorkerStats`]. Writers bump `runs` before
/// `errors` before `timeouts`/`panics`, and readers load them in the
/// opposite order, so a snapshot never shows more errors than runs.
#[derive(Debug)]
pub(crate) struct StatsCell {
    started: AtomicU64,
    runs: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    timeouts: AtomicU64,
    panics: AtomicU64,
    last_run_us: AtomicU64,
    total_runtime_us: AtomicU64,
}

impl Default for StatsCell {
    fn default() -> Self {
        StatsCell {
            started: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            last_run_us: AtomicU64::new(NO_RUN),
            total_runtime_us: AtomicU64::new(0),
        }
    }
}

impl StatsCell {
    pub(crate) fn started(&self) {
        self.started.fetch_add(1, SeqCst);
    }

    pub(crate) fn ended(&self, ending: Ending, took: Duration) {
        if ending == Ending::Cancelled {
            self.cancelled.fetch_add(1, SeqCst);
            return;
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX - 1);
        self.total_runtime_us.fetch_add(us, SeqCst);
        self.last_run_us.store(us, SeqCst);
        self.runs.fetch_add(1, SeqCst);
        match ending {
            Ending::Succeeded | Ending::Cancelled => {}
            Ending::Failed => {
                self.errors.fetch_add(1, SeqCst);
            }
            Ending::TimedOut => {
                self.errors.fetch_add(1, SeqCst);
                self.timeouts.fetch_add(1, SeqCst);
            }
            Ending::Panicked => {
                self.errors.fetch_add(1, SeqCst);
                self.panics.fetch_add(1, SeqCst);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let timeouts = self.timeouts.load(SeqCst);
        let panics = self.panics.load(SeqCst);
        let errors = self.errors.load(SeqCst);
        let runs = self.runs.load(SeqCst);
        let cancelled = self.cancelled.load(SeqCst);
        let started = self.started.load(SeqCst);
        let last = self.last_run_us.load(SeqCst);
        WorkerStats {
            runs,
            errors,
            cancelled,
            timeouts,
            panics,
            running: started.saturating_sub(runs + cancelled),
            last_run_ms: (last != NO_RUN).then_some(last / 1000),
            total_runtime_ms: self.total_runtime_us.load(SeqCst) / 1000,
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
        cell.ended(Ending::Succeeded, Duration::from_millis(3));
        cell.ended(Ending::TimedOut, Duration::from_millis(5));
        cell.ended(Ending::Cancelled, Duration::from_millis(100));
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
        for _ in 0..10 {
            cell.started();
            cell.ended(Ending::Succeeded, Duration::from_micros(300));
        }
        let stats = cell.snapshot();
        assert_eq!(stats.total_runtime_ms, 3);
        assert_eq!(stats.last_run_ms, Some(0));
    }

    #[test]
    fn empty_stats() {
        let stats = StatsCell::default().snapshot();
        assert_eq!(stats.last_run_ms, None);
        assert_eq!(stats.average_ms(), 0.0);
        assert_eq!(stats.success_rate(), 0.0);
    }
}
