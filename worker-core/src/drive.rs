//! Driving a run: polls the worker's future against its deadline, its
//! cancellation and its reader, and records the run's one ending.
//!
//! Generic over the worker's future so that the future lives inside the
//! run's task (one allocation, not two); everything that does not touch
//! the future is in non-generic functions, so each worker adds little code.

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

/// The worker's future, or the panic its handler raised while making it.
pub(crate) type Work<Fut> = std::thread::Result<Fut>;

/// Executes the run to its end, records that end and returns the outcome.
/// Whoever awaits this (the run's task after `call`, the caller itself in
/// `run`) drives the worker; if this future is dropped first (its runtime
/// shut down, its caller gave up), even before its first poll, the run
/// still ends, as cancelled.
pub(crate) fn drive<Fut>(run: Arc<Run>, work: Work<Fut>) -> impl Future<Output = Result<()>> + Send
where
    Fut: Future<Output = Result<()>> + Send,
{
    let driving = Driving { run, ended: false };
    async move {
        let mut driving = driving;
        let (outcome, ending) = match work {
            Ok(work) => {
                Supervise {
                    run: &driving.run,
                    work: pin!(work),
                    timers: Timers::default(),
                }
                .await
            }
            Err(panic) => driving.run.panicked(&*panic),
        };
        driving.ended = true;
        driving.run.finish(&outcome, ending);
        outcome
    }
}

/// The run being driven; ends it as cancelled if dropped before it ended.
struct Driving {
    run: Arc<Run>,
    ended: bool,
}

impl Drop for Driving {
    fn drop(&mut self) {
        if !self.ended {
            self.run.log(
                log::Level::Warn,
                format_args!(
                    "dropped before it ended (its runtime shut down or its caller stopped waiting)"
                ),
            );
            self.run.signals.fire(Signal::Cancel);
            self.run
                .finish(&Err(self.run.cancelled_error()), Ending::Cancelled);
        }
    }
}

/// Polls the worker against its deadline and, once the run is cancelled,
/// against the grace period. Written by hand rather than with `select!` so
/// that a run's task holds no `Notified`: cancellation wakes it directly.
struct Supervise<'a, Fut> {
    run: &'a Run,
    work: Pin<&'a mut Fut>,
    timers: Timers,
}

/// The non-generic half of [`Supervise`].
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

impl<Fut: Future<Output = Result<()>>> Future for Supervise<'_, Fut> {
    type Output = (Result<()>, Ending);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let worked = match this.timers.before_work(this.run, cx) {
            Next::End(ending) => return Poll::Ready(ending),
            Next::Hold => Poll::Pending,
            Next::Poll => {
                let _driving = this.run.enter_driver(cx.waker());
                match catch_unwind(AssertUnwindSafe(|| this.work.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
                    Err(panic) => Poll::Ready(Err(panic)),
                }
            }
        };
        this.timers.after_work(this.run, worked, cx)
    }
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
pub(crate) fn start<Fut>(make: impl FnOnce() -> Fut) -> Work<Fut> {
    catch_unwind(AssertUnwindSafe(make))
}
