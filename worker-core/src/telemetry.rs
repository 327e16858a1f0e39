//! What a run tells the outside world without being asked: log lines, and
//! with the `tracing` feature its spans and events, with the `metrics`
//! feature its counters and histograms.
//!
//! Each feature is compiled in or out here and nowhere else: with both off
//! a run's [`Spans`] is empty and every call below is a plain `log` call or
//! nothing.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::observe::Outcome;
use crate::run_id::RunId;

/// The run's `worker.run` span, made where the run was called, so that it
/// is a child of the caller's span (an HTTP request's trace holds the runs
/// it started, whichever task executes them).
#[cfg(feature = "tracing")]
pub(crate) struct Spans {
    run: tracing::Span,
}

/// Nothing: the `tracing` feature is off.
#[cfg(not(feature = "tracing"))]
pub(crate) struct Spans;

impl Spans {
    #[cfg(feature = "tracing")]
    pub(crate) fn new(worker: &str, run_id: RunId) -> Self {
        let run = tracing::info_span!(
            target: "worker",
            "worker.run",
            worker,
            run_id = %run_id,
            attempt = 1u32,
            outcome = tracing::field::Empty,
        );
        Spans { run }
    }

    #[cfg(not(feature = "tracing"))]
    #[inline(always)]
    pub(crate) fn new(_worker: &str, _run_id: RunId) -> Self {
        Spans
    }

    /// A `worker.attempt` span for attempt number `attempt`, a child of the
    /// run's span; the driver enters it while it polls the worker.
    pub(crate) fn attempt(&self, attempt: u32) -> AttemptSpan {
        #[cfg(feature = "tracing")]
        {
            if attempt > 1 {
                self.run.record("attempt", attempt);
            }
            let span =
                tracing::info_span!(target: "worker", parent: &self.run, "worker.attempt", attempt);
            if attempt == 1 {
                tracing::info!(target: "worker", parent: &span, "started");
            } else {
                tracing::info!(target: "worker", parent: &span, attempt, "retry started");
            }
            AttemptSpan(span)
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = attempt;
            AttemptSpan
        }
    }

    /// A failed attempt that will be tried again after `delay`.
    pub(crate) fn retrying(&self, attempt: u32, error: &Error, delay: Duration) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "worker", parent: &self.run,
            attempt,
            error = %error,
            delay_ms = delay.as_secs_f64() * 1e3,
            "retrying"
        );
        #[cfg(not(feature = "tracing"))]
        let _ = (attempt, error, delay);
    }

    /// The run's one ending: recorded on the span, and an event.
    pub(crate) fn ended(&self, outcome: Outcome, error: Option<&Error>, elapsed: Duration) {
        #[cfg(feature = "tracing")]
        {
            self.run.record("outcome", outcome.as_str());
            let elapsed_ms = elapsed.as_secs_f64() * 1e3;
            let parent = &self.run;
            match (outcome, error) {
                (Outcome::Succeeded, _) => {
                    tracing::info!(target: "worker", parent: parent, elapsed_ms, "succeeded")
                }
                (Outcome::Cancelled, _) => {
                    tracing::info!(target: "worker", parent: parent, elapsed_ms, "cancelled")
                }
                (Outcome::TimedOut, error) => {
                    tracing::error!(target: "worker", parent: parent, elapsed_ms, error = error.map(tracing::field::display), "timed out")
                }
                (Outcome::Panicked, error) => {
                    tracing::error!(target: "worker", parent: parent, elapsed_ms, error = error.map(tracing::field::display), "panicked")
                }
                (Outcome::Failed | Outcome::Stalled, error) => {
                    tracing::error!(target: "worker", parent: parent, elapsed_ms, error = error.map(tracing::field::display), "failed")
                }
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (outcome, error, elapsed);
    }

    /// Whether the run's lines go to a tracing subscriber: the `tracing`
    /// feature is on and a subscriber is set. If not, they go to `log`.
    #[inline]
    pub(crate) fn tracing_active() -> bool {
        #[cfg(feature = "tracing")]
        {
            tracing::dispatcher::has_been_set()
        }
        #[cfg(not(feature = "tracing"))]
        {
            false
        }
    }

    /// A log line of the run's (its own `ctx.info(..)`s and the lifecycle
    /// lines): a `log` record with the run's prefix; or, while a tracing
    /// subscriber is set, a tracing event instead (one, not both, so that a
    /// subscriber that also collects `log` records doesn't see each line
    /// twice). The event is in the attempt's span when the worker logs from
    /// its own task (`in_run_task`), else in the run's span.
    pub(crate) fn log<'a>(
        &self,
        level: log::Level,
        worker: &str,
        run_id: impl FnOnce() -> &'a str,
        in_run_task: bool,
        message: fmt::Arguments<'_>,
    ) {
        #[cfg(feature = "tracing")]
        if Self::tracing_active() {
            macro_rules! event {
                ($level:expr) => {
                    if in_run_task {
                        tracing::event!(target: "worker", $level, "{message}")
                    } else {
                        tracing::event!(target: "worker", parent: &self.run, $level, "{message}")
                    }
                };
            }
            match level {
                log::Level::Error => event!(tracing::Level::ERROR),
                log::Level::Warn => event!(tracing::Level::WARN),
                log::Level::Info => event!(tracing::Level::INFO),
                log::Level::Debug => event!(tracing::Level::DEBUG),
                log::Level::Trace => event!(tracing::Level::TRACE),
            }
            return;
        }
        let _ = in_run_task;
        if log::log_enabled!(target: "worker", level) {
            // Its last 8 digits, as `RunId::short` gives them: the random
            // end of a time-ordered id.
            let id = run_id();
            log::log!(
                target: "worker",
                level,
                "[Worker:{worker} run:{}] {message}",
                &id[id.len().saturating_sub(8)..]
            );
        }
    }
}

/// The span of the attempt being executed; entered while the driver polls
/// the worker's future.
#[cfg(feature = "tracing")]
pub(crate) struct AttemptSpan(tracing::Span);

/// Nothing: the `tracing` feature is off.
#[cfg(not(feature = "tracing"))]
pub(crate) struct AttemptSpan;

impl AttemptSpan {
    /// None yet: the attempt starts later.
    pub(crate) fn none() -> Self {
        #[cfg(feature = "tracing")]
        {
            AttemptSpan(tracing::Span::none())
        }
        #[cfg(not(feature = "tracing"))]
        {
            AttemptSpan
        }
    }

    /// Enters the span until the guard drops.
    #[inline(always)]
    pub(crate) fn enter(&self) -> impl Sized + '_ {
        #[cfg(feature = "tracing")]
        {
            self.0.enter()
        }
    }
}

/// The `metrics` facade's series, all labelled with the worker's name (and
/// the outcome): never a run id or a payload, so their number stays that
/// of workers × outcomes.
pub(crate) mod metrics {
    use super::*;

    /// A run was admitted.
    #[inline(always)]
    pub(crate) fn started(worker: &str) {
        #[cfg(feature = "metrics")]
        ::metrics::gauge!("worker_in_flight", "worker" => worker.to_owned()).increment(1.0);
        #[cfg(not(feature = "metrics"))]
        let _ = worker;
    }

    /// A run ended.
    #[inline(always)]
    pub(crate) fn ended(worker: &str, outcome: Outcome, duration: Duration) {
        #[cfg(feature = "metrics")]
        {
            let worker = worker.to_owned();
            ::metrics::gauge!("worker_in_flight", "worker" => worker.clone()).decrement(1.0);
            ::metrics::counter!(
                "worker_runs_total",
                "worker" => worker.clone(),
                "outcome" => outcome.as_str()
            )
            .increment(1);
            ::metrics::histogram!("worker_run_duration_seconds", "worker" => worker)
                .record(duration.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (worker, outcome, duration);
    }

    /// An attempt failed and will be tried again.
    #[inline(always)]
    pub(crate) fn retried(worker: &str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!("worker_retries_total", "worker" => worker.to_owned()).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = worker;
    }

    /// An attempt of a worker with a concurrency limit waited `wait` for
    /// its slot.
    #[inline(always)]
    pub(crate) fn waited(worker: &str, wait: Duration) {
        #[cfg(feature = "metrics")]
        ::metrics::histogram!("worker_queue_wait_seconds", "worker" => worker.to_owned())
            .record(wait.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (worker, wait);
    }
}
