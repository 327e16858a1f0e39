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
use crate::manager::Shared;
use crate::private::BoxFuture;
use crate::signal::{Signal, Signals};
use crate::stats::Ending;
use crate::{Error, Result, WorkerContext};

/// Everything one run's context, handle and manager share. Kept small: many
/// thousands may be in flight, and what only some runs use (messages, state)
/// is allocated on first use.
pub(crate) struct Run {
    pub(crate) id: u128,
    id_text: [u8; 36],
    pub(crate) definition: Arc<Definition>,
    pub(crate) settings: Arc<Settings>,
    manager: Arc<Shared>,
    pub(crate) payload: Option<Value>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) started: Instant,
    pub(crate) signals: Signals,
    outcome: Mutex<Option<Result<(), Box<Error>>>>,
    /// Whether a handle may still read messages; if not, they are discarded.
    reader: AtomicBool,
    mailbox: OnceLock<Box<Mailbox>>,
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
        manager: Arc<Shared>,
        definition: Arc<Definition>,
        settings: Arc<Settings>,
        timeout: Option<Duration>,
        payload: Option<Value>,
        has_reader: bool,
    ) -> Arc<Self> {
        // A thread-local ChaCha generator (uuid's `fast-rng`): unguessable
        // ids without a system call per run.
        let uuid = uuid::Uuid::new_v4();
        let mut id_text = [0u8; 36];
        uuid.hyphenated().encode_lower(&mut id_text);
        Arc::new(Run {
            id: uuid.as_u128(),
            id_text,
            definition,
            settings,
            manager,
            payload,
            timeout,
            started: Instant::now(),
            signals: Signals::default(),
            outcome: Mutex::new(None),
            reader: AtomicBool::new(has_reader),
            mailbox: OnceLock::new(),
            state: Mutex::new(None),
        })
    }

    pub(crate) fn id_str(&self) -> &str {
        std::str::from_utf8(&self.id_text).unwrap_or_default()
    }

    pub(crate) fn worker_name(&self) -> &str {
        &self.definition.name
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

    /// Executes the run to its end and records that end. Whoever awaits this
    /// (the run's task after `call`, the caller itself in `run`) drives the
    /// worker; if this future is dropped first (its runtime shut down, its
    /// caller gave up), the run still ends, as cancelled.
    pub(crate) fn drive(self: Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        // Made before the future is first polled, so that a task dropped
        // unpolled (its runtime shut down first) still ends the run.
        let guard = EndOnDrop(Some(self));
        async move {
            let mut guard = guard;
            let Some(run) = guard.0.clone() else { return };
            let (outcome, ending) = run.execute().await;
            guard.0 = None;
            run.finish(outcome, ending);
        }
    }

    async fn execute(self: &Arc<Self>) -> (Result<()>, Ending) {
        if self.signals.is_fired(Signal::Cancel) {
            return (Err(self.cancelled_error()), Ending::Cancelled);
        }
        let ctx = WorkerContext::new(self.clone());
        let handler = &self.definition.handler;
        let mut work = match catch_unwind(AssertUnwindSafe(|| handler(ctx))) {
            Ok(future) => CatchUnwind(future),
            Err(panic) => return self.panicked(panic),
        };
        // Boxed, and only when there is a timeout: most runs have none, and
        // a `Sleep` would double the size of every run's task.
        let mut deadline = self
            .timeout
            .map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        let deadline = async {
            match deadline.as_mut() {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            result = &mut work => {
                // A run asked to stop ends cancelled, even if the worker,
                // told by `ctx.cancelled()`, wound down and returned itself.
                if self.signals.is_fired(Signal::Cancel) {
                    return (Err(self.cancelled_error()), Ending::Cancelled);
                }
                return match result {
                    Ok(Ok(())) => (Ok(()), Ending::Succeeded),
                    Ok(Err(error)) => (Err(error), Ending::Failed),
                    Err(panic) => self.panicked(panic),
                };
            }
            () = self.signals.wait(Signal::Cancel) => {}
            () = deadline => {
                let timeout = self.timeout.unwrap_or_default();
                return (Err(Error::run_timed_out(self.worker_name(), timeout)), Ending::TimedOut);
            }
        }
        // Cancelled: the worker saw `ctx.cancelled()` fire; give it the grace
        // period to clean up, then drop it wherever it is.
        let grace = self.settings.grace_period;
        let expired = Box::pin(tokio::time::sleep(grace));
        tokio::select! {
            biased;
            _ = &mut work => {}
            () = expired => self.log(log::Level::Warn, format_args!(
                "did not stop within the {} grace period after cancellation; dropped",
                format_duration(grace)
            )),
        }
        (Err(self.cancelled_error()), Ending::Cancelled)
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

    /// The one transition to "ended": counted, unlisted, outcome stored and
    /// message stream closed, then the end signalled, in that order, so that
    /// whoever sees the end also sees the stats and the running list up to
    /// date.
    fn finish(&self, outcome: Result<()>, ending: Ending) {
        let took = self.started.elapsed();
        self.definition.stats.ended(ending, took);
        self.manager.running.remove(self.id);
        self.log_ending(&outcome, ending, took);
        lock(&self.state).take();
        *lock(&self.outcome) = Some(outcome.map_err(Box::new));
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
        self.manager.running.remove(self.id);
        *lock(&self.outcome) = Some(Err(Box::new(Error::Shutdown)));
        self.end_messages();
        self.signals.fire(Signal::Ended);
    }

    /// The run's result, once: the caller of `run` or the handle's owner.
    pub(crate) fn take_outcome(&self) -> Result<()> {
        match lock(&self.outcome).take() {
            Some(outcome) => outcome.map_err(|error| *error),
            None => Err(Error::msg("the run's result was already taken")),
        }
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
            Box::new(Mailbox::new(self.settings.message_buffer, ended))
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
            .map_or(self.settings.message_buffer, |m| m.capacity())
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

/// Ends the run as cancelled if `drive` is dropped before it finished.
struct EndOnDrop(Option<Arc<Run>>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run.log(
                log::Level::Warn,
                format_args!(
                    "dropped before it ended (its runtime shut down or its caller stopped waiting)"
                ),
            );
            run.finish(Err(run.cancelled_error()), Ending::Cancelled);
        }
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
