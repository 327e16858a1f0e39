//! One run: its shared record, and the one place it moves from running to
//! exactly one ending (succeeded, failed, timed out, panicked, cancelled).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Settings;
use crate::definition::Definition;
use crate::duration::{format_duration, format_elapsed};
use crate::mailbox::Mailbox;
use crate::manager::View;
use crate::private::BoxFuture;
use crate::signal::{Signal, Signals};
use crate::stats::Ending;
use crate::{Error, Result, WorkerContext};

/// Everything one run's context, handle and manager share. Kept small: many
/// thousands may be in flight, and what only some runs use (messages, state)
/// is allocated on first use.
pub(crate) struct Run {
    pub(crate) id: u128,
    /// The id as text, made on first use: most runs are never asked.
    id_text: OnceLock<Box<str>>,
    /// The manager as the thread that started the run sees it: the run's
    /// definition and settings are read through it. One reference count,
    /// and one that runs on other cores don't touch.
    view: Arc<View>,
    /// The run's definition, an index into `view`.
    definition: u32,
    pub(crate) payload: Option<Value>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) started: Instant,
    pub(crate) signals: Signals,
    /// Whether a handle may still read messages; if not, they are discarded.
    reader: AtomicBool,
    mailbox: OnceLock<Box<Mailbox>>,
    #[expect(
        clippy::box_collection,
        reason = "8 bytes for the runs that keep no state (bench B5)"
    )]
    pub(crate) state: Mutex<Option<Box<HashMap<String, Value>>>>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("worker", &self.worker_name())
            .field("id", &self.id_str())
            .finish_non_exhaustive()
    }
}

impl Run {
    pub(crate) fn new(
        view: Arc<View>,
        definition: u32,
        timeout: Option<Duration>,
        payload: Option<Value>,
        has_reader: bool,
    ) -> Arc<Self> {
        // A thread-local ChaCha generator (uuid's `fast-rng`): unguessable
        // ids without a system call per run.
        let uuid = uuid::Uuid::new_v4();
        Arc::new(Run {
            id: uuid.as_u128(),
            id_text: OnceLock::new(),
            view,
            definition,
            payload,
            timeout,
            started: Instant::now(),
            signals: Signals::default(),
            reader: AtomicBool::new(has_reader),
            mailbox: OnceLock::new(),
            state: Mutex::new(None),
        })
    }

    pub(crate) fn definition(&self) -> &Definition {
        &self.view.definitions[self.definition as usize]
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.view.settings
    }

    pub(crate) fn id_str(&self) -> &str {
        self.id_text.get_or_init(|| {
            uuid::Uuid::from_u128(self.id)
                .hyphenated()
                .to_string()
                .into_boxed_str()
        })
    }

    pub(crate) fn worker_name(&self) -> &str {
        &self.definition().name
    }

    /// Logs with the run's prefix, `[Worker:NAME run:XXXXXXXX] `; formats
    /// nothing when the level is off.
    pub(crate) fn log(&self, level: log::Level, message: fmt::Arguments<'_>) {
        if log::log_enabled!(target: "worker", level) {
            log::log!(
                target: "worker",
                level,
                "[Worker:{} run:{}] {message}",
                self.worker_name(),
                &self.id_str()[..8]
            );
        }
    }

    /// Executes the run to its end, records that end and returns the
    /// outcome. Whoever awaits this (the run's task after `call`, the caller
    /// itself in `run`) drives the worker; if this future is dropped first
    /// (its runtime shut down, its caller gave up), the run still ends, as
    /// cancelled.
    pub(crate) fn drive(self: Arc<Self>) -> impl Future<Output = Result<()>> + Send + 'static {
        // Made before the future is first polled, so that a task dropped
        // unpolled (its runtime shut down first) still ends the run.
        let driving = Driving {
            run: self,
            ended: false,
        };
        async move {
            let mut driving = driving;
            let (outcome, ending) = driving.run.execute().await;
            driving.ended = true;
            driving.run.finish(&outcome, ending);
            outcome
        }
    }

    async fn execute(self: &Arc<Self>) -> (Result<()>, Ending) {
        if self.signals.is_fired(Signal::Cancel) {
            return (Err(self.cancelled_error()), Ending::Cancelled);
        }
        let ctx = WorkerContext::new(self.clone());
        let handler = &self.definition().handler;
        let work = match catch_unwind(AssertUnwindSafe(|| handler(ctx))) {
            Ok(future) => CatchUnwind(future),
            Err(panic) => return self.panicked(panic),
        };
        Supervise {
            run: self,
            work,
            // Boxed, and only when there is a timeout: a `Sleep` would
            // double the size of every run's task.
            deadline: self
                .timeout
                .map(|timeout| Box::pin(tokio::time::sleep(timeout))),
            grace: None,
        }
        .await
    }

    fn panicked(&self, panic: Box<dyn Any + Send>) -> (Result<()>, Ending) {
        let message = panic_message(&*panic);
        let error = Error::Panic {
            worker: self.worker_name().to_owned(),
            message,
        };
        (Err(error), Ending::Panicked)
    }

    pub(crate) fn cancelled_error(&self) -> Error {
        Error::Cancelled {
            worker: self.worker_name().to_owned(),
            run_id: self.id_str().to_owned(),
        }
    }

    /// The one transition to "ended": counted, unlisted, message stream
    /// closed, then the end signalled, in that order, so that whoever sees
    /// the end (or the outcome) also sees the stats and the running list up
    /// to date.
    fn finish(&self, outcome: &Result<()>, ending: Ending) {
        let now = Instant::now();
        self.definition().stats.ended(ending, self.started, now);
        let took = now.saturating_duration_since(self.started);
        self.view.manager.running.remove(self.id);
        self.log_ending(outcome, ending, took);
        lock(&self.state).take();
        self.end_messages();
        self.signals.fire(Signal::Ended);
    }

    fn log_ending(&self, outcome: &Result<()>, ending: Ending, took: Duration) {
        match outcome {
            Ok(()) => self.log(
                log::Level::Debug,
                format_args!("finished in {}", format_elapsed(took)),
            ),
            Err(_) if ending == Ending::Cancelled => self.log(
                log::Level::Info,
                format_args!("cancelled after {}", format_elapsed(took)),
            ),
            Err(error) => self.log(
                log::Level::Error,
                format_args!("failed after {}: {error}", format_elapsed(took)),
            ),
        }
    }

    /// Ends a run that was admitted but refused before it started (shutdown
    /// began in between): not counted, since it never ran.
    pub(crate) fn abandon(&self) {
        self.view.manager.running.remove(self.id);
        self.end_messages();
        self.signals.fire(Signal::Ended);
    }

    /// Signals the run to stop and waits until it has ended (at most the
    /// grace period for a worker that ignores the signal).
    pub(crate) async fn cancel_and_wait(&self) -> Result<()> {
        if self.signals.is_fired(Signal::Ended) {
            return Err(Error::RunNotFound(self.id_str().to_owned()));
        }
        self.signals.fire(Signal::Cancel);
        self.signals.wait(Signal::Ended).await;
        Ok(())
    }

    // ── messages ────────────────────────────────────────────────────────

    fn mailbox(&self) -> &Mailbox {
        self.mailbox.get_or_init(|| {
            let ended = self.signals.is_fired(Signal::Ended);
            Box::new(Mailbox::new(self.settings().message_buffer, ended))
        })
    }

    /// Queues a message for the handle, or drops it if nobody will read it.
    /// A full buffer hands the message back.
    pub(crate) fn emit(&self, message: Value) -> Result<(), Value> {
        if !self.reader.load(SeqCst) {
            return Ok(());
        }
        self.mailbox().try_push(message)
    }

    /// Like [`emit`](Self::emit), waiting for room instead of failing.
    pub(crate) async fn emit_waiting(&self, message: Value) {
        if self.reader.load(SeqCst) {
            self.mailbox().push_waiting(message, &self.signals).await;
        }
    }

    pub(crate) fn message_buffer(&self) -> usize {
        self.mailbox
            .get()
            .map_or(self.settings().message_buffer, |m| m.capacity())
    }

    pub(crate) fn poll_messages(
        &self,
        inbox: &mut VecDeque<Value>,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        self.mailbox().poll_take_all(inbox, cx, &self.signals)
    }

    pub(crate) fn take_messages(&self, inbox: &mut VecDeque<Value>) {
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.take_all(inbox, &self.signals);
        }
    }

    /// The handle is gone or awaiting the result: unread messages are freed
    /// and later ones discarded.
    pub(crate) fn detach_reader(&self) {
        if self.reader.swap(false, SeqCst) {
            if let Some(mailbox) = self.mailbox.get() {
                mailbox.detach_reader(&self.signals);
            }
        }
    }

    fn end_messages(&self) {
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.close();
        }
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
struct Supervise<'a> {
    run: &'a Arc<Run>,
    work: CatchUnwind,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the run is cancelled: when the worker will be dropped.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Supervise<'_> {
    type Output = (Result<()>, Ending);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let run = this.run;
        if this.grace.is_none() && run.signals.is_fired(Signal::Cancel) {
            this.grace = Some(Box::pin(tokio::time::sleep(run.settings().grace_period)));
        }
        let worked = Pin::new(&mut this.work).poll(cx);
        if let Some(grace) = &mut this.grace {
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
                Err(panic) => run.panicked(panic),
            });
        }
        let expired = this
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
        if this.grace.is_none() {
            // Only a run that waits needs waking on cancel (a quick run ends
            // in its first poll). Register, then look again, so that a
            // cancel in between is not missed.
            run.signals.set_driver(cx.waker());
            if run.signals.is_fired(Signal::Cancel) {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

/// Polls a boxed future, turning a panic into an `Err` with its payload.
pub(crate) struct CatchUnwind(pub(crate) BoxFuture);

impl Future for CatchUnwind {
    type Output = std::thread::Result<Result<()>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this crate is a single read or write that a
    // panic can't leave half-done, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
