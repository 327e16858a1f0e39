//! Driving a run: polls the worker's future against its deadline, its
//! cancellation and its reader, and records the run's one ending.
//!
//! Generic over the worker's future so that the future lives inside the
//! run's task (one allocation, not two); everything that does not touch
//! the future is in non-generic functions, so each worker adds little code.
//! Written by hand rather than with `select!`, so that a run's task holds
//! no `Notified`: cancellation wakes it directly.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::duration::format_duration;
use crate::error::{Error, Result};
use crate::run::Run;
use crate::signal::Signal;
use crate::stats::Ending;

/// A run being driven: the future a run's task (after `call`) or its
/// caller (in `run`) polls. It executes the worker to the run's end, records
/// that end and returns the outcome. Dropped before the end (its runtime
/// shut down, its caller gave up), even before its first poll, it still
/// ends the run, as cancelled.
///
/// Written by hand rather than as an `async` block: a generator would keep
/// the worker's future twice (once as a captured value, once pinned), and
/// a run's task is the one allocation the run's size is counted in.
pub(crate) struct RunTask<Fut> {
    run: Arc<Run>,
    timers: Timers,
    /// The worker's future; `None` once the run has ended, so that what it
    /// holds is dropped before the end is announced. Structurally pinned.
    work: Option<Fut>,
}

impl<Fut> RunTask<Fut> {
    pub(crate) fn new(run: Arc<Run>, work: Fut) -> Self {
        RunTask {
            run,
            timers: Timers::default(),
            work: Some(work),
        }
    }
}

impl<Fut: Future<Output = Result<()>>> Future for RunTask<Fut> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        // SAFETY: `work` is structurally pinned: it is only ever reached
        // through `Pin::new_unchecked` below and dropped in place (set to
        // `None` through its pin), never moved; `Drop` doesn't move it
        // either. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let mut work = unsafe { Pin::new_unchecked(&mut this.work) };
        let Some(future) = work.as_mut().as_pin_mut() else {
            panic!("a run's task was polled after its run ended");
        };
        let ending = match this.timers.before_work(&this.run, cx) {
            Next::End(ending) => ending,
            next => {
                let worked = match next {
                    Next::Poll => {
                        let _driving = this.run.enter_driver(cx.waker());
                        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                            Ok(Poll::Pending) => Poll::Pending,
                            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
                            Err(panic) => Poll::Ready(Err(panic)),
                        }
                    }
                    _ => Poll::Pending, // held for the reader
                };
                match this.timers.after_work(&this.run, worked, cx) {
                    Poll::Ready(ending) => ending,
                    Poll::Pending => return Poll::Pending,
                }
            }
        };
        // The worker's future and the timers go before the end is
        // announced: whoever sees the run ended sees its resources freed.
        work.set(None);
        this.timers = Timers::default();
        let (outcome, ending) = ending;
        this.run.finish(&outcome, ending);
        Poll::Ready(outcome)
    }
}

impl<Fut> Drop for RunTask<Fut> {
    fn drop(&mut self) {
        if self.work.is_some() {
            self.run.log(
                log::Level::Warn,
                format_args!(
                    "dropped before it ended (its runtime shut down or its caller stopped waiting)"
                ),
            );
            self.run.signals.fire(Signal::Cancel);
            // SAFETY: as in `poll`, the worker's future is dropped in place.
            unsafe { Pin::new_unchecked(&mut self.work) }.set(None);
            self.run
                .finish(&Err(self.run.cancelled_error()), Ending::Cancelled);
        }
    }
}

/// The non-generic half of [`RunTask`]: everything but the worker's future.
#[derive(Default)]
struct Timers {
    /// Whether the worker has been polled once.
    started: bool,
    /// Boxed, and only made when there is a timeout: a `Sleep` would double
    /// the size of every run's task.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the run is cancelled: when the worker will be dropped.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What to do before polling the worker.
enum Next {
    Poll,
    /// The reader is a full buffer behind: don't poll the worker now.
    Hold,
    End((Result<()>, Ending)),
}

impl Timers {
    fn before_work(&mut self, run: &Run, cx: &mut Context<'_>) -> Next {
        let cancelled = run.signals.is_fired(Signal::Cancel);
        if !self.started {
            // A run cancelled while it waited to start never starts.
            if cancelled {
                return Next::End((Err(run.cancelled_error()), Ending::Cancelled));
            }
            self.started = true;
            self.deadline = run
                .timeout
                .map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        }
        if self.grace.is_none() && cancelled {
            let grace = run.settings().grace_period;
            self.grace = Some(Box::pin(tokio::time::sleep(grace)));
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
        run: &Run,
        worked: Poll<std::thread::Result<Result<()>>>,
        cx: &mut Context<'_>,
    ) -> Poll<(Result<()>, Ending)> {
        if let Some(grace) = &mut self.grace {
            // Cancelled: the worker saw `ctx.cancelled()` fire and may clean
            // up until the grace period ends; then it is dropped.
            if worked.is_pending() {
                if grace.as_mut().poll(cx).is_pending() {
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
            return Poll::Ready((Err(run.cancelled_error()), Ending::Cancelled));
        }
        if let Poll::Ready(result) = worked {
            // A cancel that arrived while the worker was finishing wins.
            if run.signals.is_fired(Signal::Cancel) {
                return Poll::Ready((Err(run.cancelled_error()), Ending::Cancelled));
            }
            return Poll::Ready(match result {
                Ok(Ok(())) => (Ok(()), Ending::Succeeded),
                Ok(Err(error)) => (Err(error), Ending::Failed),
                Err(panic) => run.panicked(&*panic),
            });
        }
        let expired = self
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        if expired {
            // Whatever outlives the run (a blocking fn's thread, a task the
            // worker spawned with a clone of its context) is told to stop.
            run.signals.fire(Signal::Cancel);
            let error = Error::run_timed_out(run.worker_name(), run.timeout.unwrap_or_default());
            return Poll::Ready((Err(error), Ending::TimedOut));
        }
        // Only a run that waits needs waking on cancel (a quick run ends in
        // its first poll). Register, then look again, so that a cancel in
        // between is not missed.
        run.signals.set_driver(cx.waker());
        if run.signals.is_fired(Signal::Cancel) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
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

/// Ends a run whose handler panicked before it returned a future.
pub(crate) fn end_panicked(run: &Run, panic: &(dyn std::any::Any + Send)) -> Result<()> {
    let (outcome, ending) = run.panicked(panic);
    run.finish(&outcome, ending);
    outcome
}
