//! Driving a run: polls the worker's future against its deadline, its
//! cancellation, its reader and its concurrency slot, tries it again as its
//! worker's options say, and records the run's one ending.
//!
//! Generic over the worker's future so that the future lives inside the
//! run's task (one allocation, not two); everything that does not touch
//! the future is in the non-generic [`Supervisor`], so each worker adds
//! little code. Written by hand rather than with `select!`, so that a run's
//! task holds no `Notified`: cancellation wakes it directly.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::context::WorkerContext;
use crate::duration::format_duration;
use crate::error::{Error, Result};
use crate::gate::{Claim, Slot};
use crate::run::Run;
use crate::run_state::Outcome;
use crate::signal::Signal;
use crate::telemetry::AttemptSpan;

/// A run being driven: the future a run's task (after `call`) or its
/// caller (in `run`) polls. It executes the worker to the run's end,
/// attempt after attempt, records that end and returns the outcome: the
/// output as JSON. Dropped before the end (its runtime shut down, its
/// caller gave up), even before its first poll, it still ends the run, as
/// cancelled.
///
/// Written by hand rather than as an `async` block: a generator would keep
/// the worker's future twice (once as a captured value, once pinned), and
/// a run's task is the one allocation the run's size is counted in.
pub(crate) struct RunTask<F, Fut> {
    run: Arc<Run>,
    supervisor: Supervisor,
    /// Makes the next attempt's future: kept only for a worker with
    /// retries.
    handler: Option<Arc<F>>,
    /// The attempt's future; `Between` between attempts and once the run
    /// has ended, so that what it holds is dropped before the end is
    /// announced. Structurally pinned.
    work: Work<Fut>,
    /// The current attempt's tracing span; nothing without `tracing`.
    attempt_span: AttemptSpan,
}

/// An attempt in progress, or none. The attempt's flags sit in the
/// enum's tag word, so they cost the task no space of their own (every
/// byte counts there: tokio rounds a task up to 128 bytes).
enum Work<Fut> {
    Attempt { flags: Flags, future: Fut },
    Between,
}

/// What the driver knows about the current attempt.
#[derive(Default, Clone, Copy)]
struct Flags {
    /// The attempt has been polled once (its deadline runs).
    started: bool,
    /// The run is cancelled and the grace period runs.
    cancelling: bool,
}

impl<F, Fut> RunTask<F, Fut> {
    /// `work` is the first attempt's future, made by the caller.
    pub(crate) fn new(run: Arc<Run>, slot: Claim, handler: Option<Arc<F>>, work: Fut) -> Self {
        let attempt_span = run.spans.attempt(1);
        RunTask {
            run,
            attempt_span,
            supervisor: Supervisor::new(slot),
            handler,
            work: Work::Attempt {
                flags: Flags::default(),
                future: work,
            },
        }
    }
}

impl<F, Fut, O> Future for RunTask<F, Fut>
where
    F: Fn(WorkerContext) -> Fut,
    Fut: Future<Output = Result<O>>,
    O: Serialize,
{
    type Output = Result<Value>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        // SAFETY: `work` is structurally pinned: it is only ever reached
        // through `Pin::new_unchecked` below and replaced or dropped in place
        // (through its pin), never moved; `Drop` doesn't move it either.
        // The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let mut work = unsafe { Pin::new_unchecked(&mut this.work) };
        let ending = loop {
            // SAFETY: see above; `future` is only used pinned.
            let Work::Attempt { flags, future } = (unsafe { work.as_mut().get_unchecked_mut() })
            else {
                // Between two attempts.
                match this.supervisor.poll_backoff(&this.run, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(ending)) => break ending,
                    Poll::Ready(Ok(())) => {}
                }
                // `attempt_failed` only starts a backoff for a task that
                // keeps its handler (see the check below).
                let Some(handler) = &this.handler else {
                    unreachable!("a run waited for a retry without a handler to retry with");
                };
                let context = WorkerContext::new(this.run.clone());
                match start(|| handler(context)) {
                    Ok(next) => {
                        this.attempt_span = this.run.spans.attempt(this.run.attempt());
                        work.set(Work::Attempt {
                            flags: Flags::default(),
                            future: next,
                        })
                    }
                    Err(panic) => {
                        let failed = this.run.panicked(&*panic);
                        if let Some(ending) = this.supervisor.attempt_failed(&this.run, failed) {
                            break ending;
                        }
                    }
                }
                continue;
            };
            let future = unsafe { Pin::new_unchecked(future) };
            let ended = match this.supervisor.before_work(flags, &this.run, cx) {
                Next::End(ending) => ending,
                next => {
                    let worked = match next {
                        Next::Poll => {
                            let _driving = this.run.enter_driver(cx.waker());
                            let _span = this.attempt_span.enter();
                            match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                                Ok(Poll::Pending) => Poll::Pending,
                                Ok(Poll::Ready(result)) => Poll::Ready(Ok(
                                    result.and_then(|output| serialize(&this.run, &output))
                                )),
                                Err(panic) => Poll::Ready(Err(panic)),
                            }
                        }
                        // Held for the reader, or waiting for a slot.
                        _ => Poll::Pending,
                    };
                    match this.supervisor.after_work(*flags, &this.run, worked, cx) {
                        Poll::Ready(ending) => ending,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            };
            // The attempt is over: its future goes now, before a retry
            // starts or the end is announced.
            work.set(Work::Between);
            if this.handler.is_none() {
                break ended;
            }
            if let Some(ending) = this.supervisor.attempt_failed(&this.run, ended) {
                break ending;
            }
        };
        // Whoever sees the run ended sees its resources freed.
        work.set(Work::Between);
        this.supervisor = Supervisor::new(None);
        this.attempt_span = AttemptSpan::none();
        let (outcome, ending) = ending;
        if ending == Outcome::TimedOut {
            // Whatever outlives the run (a blocking fn's thread, a task the
            // worker spawned with a clone of its context) is told to stop.
            // Not on a timed-out attempt that is retried: the retry shares
            // the context, and must not start out cancelled.
            this.run.signals.fire(Signal::Cancel);
        }
        this.run.finish(&outcome, ending);
        Poll::Ready(outcome)
    }
}

impl<F, Fut> Drop for RunTask<F, Fut> {
    fn drop(&mut self) {
        if !self.run.signals.is_fired(Signal::Ended) {
            self.run.log(
                log::Level::Warn,
                format_args!(
                    "dropped before it ended (its runtime shut down or its caller stopped waiting)"
                ),
            );
            self.run.signals.fire(Signal::Cancel);
            // SAFETY: as in `poll`, the worker's future is dropped in place.
            unsafe { Pin::new_unchecked(&mut self.work) }.set(Work::Between);
            self.supervisor = Supervisor::new(None);
            let (outcome, ending) = self.run.cancelled::<Value>();
            self.run.finish(&outcome, ending);
        }
    }
}

fn serialize<O: Serialize>(run: &Run, output: &O) -> Result<Value> {
    serde_json::to_value(output).map_err(|error| {
        Error::permanent(format!(
            "Worker '{}' returned an output that can't be serialized to JSON: {error}",
            run.worker_name()
        ))
    })
}

/// The non-generic half of [`RunTask`]: everything but the worker's future.
struct Supervisor {
    /// The current attempt's concurrency slot, held or awaited.
    slot: Claim,
    /// During an attempt, its deadline (or once cancelled, the end of the
    /// grace period); between attempts, when the next one starts. Boxed,
    /// and only made when needed: a `Sleep` would double the size of every
    /// run's task.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What to do before polling the worker.
enum Next {
    Poll,
    /// The reader is a full buffer behind, or no slot is free: don't poll
    /// the worker now.
    Hold,
    End((Result<Value>, Outcome)),
}

impl Supervisor {
    fn new(slot: Claim) -> Self {
        Supervisor { slot, timer: None }
    }

    fn before_work(&mut self, flags: &mut Flags, run: &Run, cx: &mut Context<'_>) -> Next {
        let cancelled = run.signals.is_fired(Signal::Cancel);
        if !flags.started {
            // A run cancelled while it waited to start never starts.
            if cancelled {
                return Next::End(run.cancelled());
            }
            match self.slot.as_deref_mut() {
                None => {}
                // A slot free at once is a wait of zero: the percentiles
                // are of every attempt of a limited worker.
                Some(Slot::Held(_)) => run.waited(Duration::ZERO),
                Some(Slot::Waiting(waiting)) => {
                    let permit = match waiting.poll(cx) {
                        Poll::Pending => return Next::Hold,
                        Poll::Ready(permit) => permit,
                    };
                    let wait = crate::sync::now().saturating_duration_since(waiting.since);
                    run.waited(wait);
                    run.waited_for_slot(wait);
                    self.slot = Some(Box::new(Slot::Held(permit)));
                }
            }
            flags.started = true;
            self.timer = run
                .timeout()
                .map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        }
        if !flags.cancelling && cancelled {
            // The deadline no longer matters: the grace period decides.
            flags.cancelling = true;
            let grace = run.settings().grace_period;
            self.timer = Some(Box::pin(tokio::time::sleep(grace)));
        }
        // Also during the grace period: the bound on unread messages holds
        // whatever the run is doing, and the grace timer still ends it.
        if run.hold_for_reader(cx.waker()) {
            return Next::Hold;
        }
        Next::Poll
    }

    fn after_work(
        &mut self,
        flags: Flags,
        run: &Run,
        worked: Poll<std::thread::Result<Result<Value>>>,
        cx: &mut Context<'_>,
    ) -> Poll<(Result<Value>, Outcome)> {
        if flags.cancelling {
            // Cancelled: the worker saw `ctx.cancelled()` fire and may clean
            // up until the grace period ends; then it is dropped.
            if worked.is_pending() {
                let grace_left = self
                    .timer
                    .as_mut()
                    .is_some_and(|grace| grace.as_mut().poll(cx).is_pending());
                if grace_left {
                    return Poll::Pending;
                }
                run.log(
                    log::Level::Warn,
                    format_args!(
                        "did not stop within the {} grace period after cancellation; dropped",
                        format_duration(run.settings().grace_period)
                    ),
                );
            }
            return Poll::Ready(run.cancelled());
        }
        if let Poll::Ready(result) = worked {
            // A cancel that arrived while the worker was finishing wins.
            if run.signals.is_fired(Signal::Cancel) {
                return Poll::Ready(run.cancelled());
            }
            return Poll::Ready(match result {
                Ok(Ok(output)) => (Ok(output), Outcome::Succeeded),
                Ok(Err(error)) => (Err(error), Outcome::Failed),
                Err(panic) => run.panicked(&*panic),
            });
        }
        let expired = self
            .timer
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        if expired {
            let error = Error::run_timed_out(run.worker_name(), run.timeout().unwrap_or_default());
            return Poll::Ready((Err(error), Outcome::TimedOut));
        }
        self.wake_on_cancel(run, cx);
        Poll::Pending
    }

    /// Only a run that waits needs waking on cancel (a quick run ends in its
    /// first poll). Register, then look again, so that a cancel in between
    /// is not missed.
    fn wake_on_cancel(&self, run: &Run, cx: &mut Context<'_>) {
        run.signals.set_driver(cx.waker());
        if run.signals.is_fired(Signal::Cancel) {
            cx.waker().wake_by_ref();
        }
    }

    /// An attempt ended as `ended`. Returns the run's ending, or `None` if
    /// the worker's options say to try again (the backoff has started).
    fn attempt_failed(
        &mut self,
        run: &Run,
        ended: (Result<Value>, Outcome),
    ) -> Option<(Result<Value>, Outcome)> {
        let (Err(error), ending) = &ended else {
            return Some(ended);
        };
        if *ending == Outcome::Cancelled {
            return Some(ended);
        }
        let definition = run.definition();
        let jitter = (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64;
        let Some(delay) = definition.options.retry_delay(run.attempt(), error, jitter) else {
            return Some(ended);
        };
        run.retrying(error, delay);
        let attempt = run.next_attempt();
        // Under a tracing subscriber, `retrying` above was the event.
        if !crate::telemetry::Spans::tracing_active() {
            run.log(
                log::Level::Warn,
                format_args!(
                    "attempt {} failed: {error}; attempt {attempt} in {}",
                    attempt - 1,
                    format_duration(delay)
                ),
            );
        }
        // The slot goes back while the run waits; the next attempt queues
        // for one when the backoff is over.
        self.slot = None;
        self.timer = Some(Box::pin(tokio::time::sleep(delay)));
        None
    }

    /// Waits out the backoff; a cancel ends the run at once.
    fn poll_backoff(
        &mut self,
        run: &Run,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<(), (Result<Value>, Outcome)>> {
        if run.signals.is_fired(Signal::Cancel) {
            return Poll::Ready(Err(run.cancelled()));
        }
        if let Some(backoff) = &mut self.timer {
            if backoff.as_mut().poll(cx).is_pending() {
                self.wake_on_cancel(run, cx);
                return Poll::Pending;
            }
        }
        self.timer = None;
        let limit_key = run.limit_key();
        self.slot = run
            .definition()
            .gate
            .retry(run.priority(), limit_key.as_deref());
        Poll::Ready(Ok(()))
    }
}

/// Awaits `future`, turning a panic into an `Err` with its payload.
pub(crate) async fn catch_panic<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = pin!(future);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

/// Calls a handler, catching a panic raised before it returns its future.
pub(crate) fn start<Fut>(make: impl FnOnce() -> Fut) -> std::thread::Result<Fut> {
    catch_unwind(AssertUnwindSafe(make))
}
