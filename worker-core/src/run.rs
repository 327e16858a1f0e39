//! One run's record: what its context, its handle, its driver and the
//! running set share, and the one place it moves from running to exactly
//! one ending (succeeded, failed, timed out, panicked, cancelled).
//!
//! This layer knows nothing of how a run is executed (see `drive`) or who
//! started it (the manager): a run reads its worker's definition and its
//! settings through a [`Scope`], and leaves the scope's running set itself.

use std::any::Any;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Settings;
use crate::definition::Definition;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::mailbox::Mailbox;
use crate::observe::{Observer, Outcome, RunInfo};
use crate::run_id::RunId;
use crate::running::{Listed, RunningSet};
use crate::signal::{Signal, Signals};
use crate::sync::{lock, now};
use crate::telemetry::{Spans, metrics};

/// What runs read from their manager: the definitions (by index, so a run
/// stores a number, not a counted reference), the settings, and the set
/// that lists them while they are in flight. The manager keeps one scope
/// per thread that starts runs, so runs on different cores share no
/// reference count.
pub(crate) struct Scope {
    pub(crate) definitions: Vec<Arc<Definition>>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) running: Arc<RunningSet<Run>>,
    /// Runs with a key or a start time that have not started yet: waiting
    /// for their time, or at their worker's gate.
    pub(crate) pending: Arc<RunningSet<Run>>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("definitions", &self.definitions.len())
            .finish_non_exhaustive()
    }
}

/// Everything one run's context, handle and driver share. Kept small: many
/// thousands may be in flight, and what only some runs use (messages, state)
/// is allocated on first use.
pub(crate) struct Run {
    pub(crate) id: RunId,
    /// The id as text, made on first use: most runs are never asked.
    id_text: OnceLock<Box<str>>,
    scope: Arc<Scope>,
    /// The run's definition, an index into `scope`.
    definition: u32,
    /// The payload; a job's is in its `job` until it starts.
    payload: Option<Value>,
    /// The timeout in nanoseconds, `u64::MAX` for none: half the size of an
    /// `Option<Duration>` (a run is counted to the byte, bench B5).
    timeout_ns: u64,
    pub(crate) started: Instant,
    pub(crate) signals: Signals,
    /// Which attempt is executing or next: 1 for the first. 16 bits, so
    /// that it shares a word with `definition` and `reader`; `retries` is
    /// capped to fit.
    attempt: AtomicU16,
    /// Time spent waiting for concurrency slots, in µs: not part of the
    /// run's duration in the statistics.
    slot_wait_us: AtomicU64,
    /// Whether a handle may still read messages; if not, they are discarded.
    reader: AtomicBool,
    /// Executed for a backend: one attempt only (the backend retries), and
    /// cancelled through the backend.
    durable: bool,
    /// Where it stands among runs waiting to start: higher first.
    priority: i32,
    /// A run with a key or a start time: see `job`.
    job: Option<Box<Job>>,
    mailbox: OnceLock<Box<Mailbox>>,
    #[expect(
        clippy::box_collection,
        reason = "8 bytes for the runs that keep no state (bench B5)"
    )]
    pub(crate) state: Mutex<Option<Box<HashMap<String, Value>>>>,
    /// Its tracing span; nothing without the `tracing` feature.
    pub(crate) spans: Spans,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("worker", &self.worker_name())
            .field("id", &self.id_str())
            .finish_non_exhaustive()
    }
}

impl Listed for Run {
    fn id(&self) -> u128 {
        self.id.as_u128()
    }
    fn started(&self) -> Instant {
        self.started
    }
}

/// What a new run is made of, besides its scope and definition.
pub(crate) struct Spec {
    pub(crate) timeout: Option<Duration>,
    pub(crate) payload: Option<Value>,
    /// Whether a handle will read its messages.
    pub(crate) has_reader: bool,
    /// A backend's run: its id and attempt.
    pub(crate) durable: Option<(RunId, u16)>,
    pub(crate) priority: i32,
    pub(crate) job: Option<Box<Job>>,
}

impl Run {
    pub(crate) fn new(scope: Arc<Scope>, definition: u32, spec: Spec) -> Arc<Self> {
        let Spec {
            timeout,
            payload,
            has_reader,
            durable,
            priority,
            job,
        } = spec;
        // A thread-local ChaCha generator (uuid's `fast-rng`): unguessable
        // ids without a system call per run. A backend's run keeps its id.
        let id = durable.map_or_else(RunId::random, |(id, _)| id);
        let spans = Spans::new(&scope.definitions[definition as usize].name, id);
        Arc::new(Run {
            id,
            id_text: OnceLock::new(),
            scope,
            definition,
            payload,
            timeout_ns: timeout.map_or(u64::MAX, |t| {
                u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1)
            }),
            started: now(),
            signals: Signals::default(),
            attempt: AtomicU16::new(durable.map_or(1, |(_, attempt)| attempt.max(1))),
            slot_wait_us: AtomicU64::new(0),
            reader: AtomicBool::new(has_reader),
            durable: durable.is_some(),
            priority,
            job,
            mailbox: OnceLock::new(),
            state: Mutex::new(None),
            spans,
        })
    }

    /// Whether a backend executes this run here (one attempt; cancelled
    /// through the backend).
    pub(crate) fn is_durable(&self) -> bool {
        self.durable
    }

    /// The payload it runs with: a job's is known once it started.
    pub(crate) fn payload(&self) -> Option<&Value> {
        match &self.job {
            None => self.payload.as_ref(),
            Some(job) => job.started_payload(),
        }
    }

    /// Its priority among runs waiting to start (a job's may change until
    /// it starts).
    pub(crate) fn priority(&self) -> i32 {
        match &self.job {
            None => self.priority,
            Some(job) => job.priority(),
        }
    }

    /// The value of its worker's `limit_by` field in its payload, which
    /// the per-key limits apply to; `None` for a worker without
    /// `limit_by`. Read again for each retry rather than kept in every run:
    /// the payload doesn't change, and was checked when the run was called.
    pub(crate) fn limit_key(&self) -> Option<String> {
        let field = self.definition().options.get_limit_by()?;
        crate::limits::limit_key(self.worker_name(), field, self.payload()).ok()
    }

    /// The job's extras, for a run with a key or a start time.
    pub(crate) fn job(&self) -> Option<&Job> {
        self.job.as_deref()
    }

    pub(crate) fn definition(&self) -> &Definition {
        &self.scope.definitions[self.definition as usize]
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.scope.settings
    }

    pub(crate) fn id_str(&self) -> &str {
        self.id_text
            .get_or_init(|| self.id.to_string().into_boxed_str())
    }

    /// The timeout this run's attempts have, if any.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        (self.timeout_ns != u64::MAX).then(|| Duration::from_nanos(self.timeout_ns))
    }

    /// The attempt executing now, or the next one while between two.
    pub(crate) fn attempt(&self) -> u32 {
        u32::from(self.attempt.load(Relaxed))
    }

    /// Time since the run was admitted.
    pub(crate) fn elapsed(&self) -> Duration {
        now().saturating_duration_since(self.started)
    }

    /// Counts time an attempt waited for its concurrency slot.
    pub(crate) fn waited_for_slot(&self, wait: Duration) {
        let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.slot_wait_us.fetch_add(us, Relaxed);
    }

    /// Moves on to the next attempt, after one that failed.
    pub(crate) fn next_attempt(&self) -> u32 {
        u32::from(self.attempt.fetch_add(1, Relaxed)) + 1
    }

    pub(crate) fn worker_name(&self) -> &str {
        &self.definition().name
    }

    /// Logs with the run's prefix, `[Worker:NAME run:XXXXXXXX] `; formats
    /// nothing when the level is off.
    /// With the `tracing` feature, an event in the run's span instead.
    pub(crate) fn log(&self, level: log::Level, message: fmt::Arguments<'_>) {
        let in_run_task = DRIVING.get().0 == self as *const Run as *const ();
        self.spans.log(
            level,
            self.worker_name(),
            || self.id_str(),
            in_run_task,
            message,
        );
    }

    /// What observers are told about this run.
    pub(crate) fn info(&self) -> RunInfo<'_> {
        RunInfo {
            worker: self.worker_name(),
            run_id: self.id,
            attempt: self.attempt(),
            payload: self.payload(),
            key: self.job.as_ref().and_then(|job| job.key.as_deref()),
            priority: self.priority(),
        }
    }

    /// Tells each of the manager's observers; nothing to do when there
    /// are none.
    #[inline]
    pub(crate) fn observe(&self, event: impl Fn(&dyn Observer, RunInfo<'_>)) {
        let observers = &self.settings().observers;
        if !observers.is_empty() {
            let info = self.info();
            observers.each(|observer| event(observer, info));
        }
    }

    /// The run was admitted: counted as running, and announced.
    pub(crate) fn admitted(&self) {
        self.definition().stats.started();
        metrics::started(self.worker_name());
        self.observe(|observer, run| observer.started(run));
    }

    /// An attempt failed and will be tried again after `delay`.
    pub(crate) fn retrying(&self, error: &Error, delay: Duration) {
        self.definition().stats.retried();
        metrics::retried(self.worker_name());
        self.spans.retrying(self.attempt(), error, delay);
        self.observe(|observer, run| observer.attempt_failed(run, error, delay));
    }

    /// An attempt waited `wait` for a concurrency slot.
    pub(crate) fn waited(&self, wait: Duration) {
        self.definition().stats.waited(wait);
        metrics::waited(self.worker_name(), wait);
    }

    /// The run emitted `message`: observers see it, read or not.
    #[inline]
    pub(crate) fn observe_message(&self, message: &Value) {
        self.observe(|observer, run| observer.message(run, message));
    }

    pub(crate) fn panicked<T>(&self, panic: &(dyn Any + Send)) -> (Result<T>, Outcome) {
        (
            Err(Error::from_panic(self.worker_name(), panic)),
            Outcome::Panicked,
        )
    }

    /// The ending of a run cancelled before it finished.
    pub(crate) fn cancelled<T>(&self) -> (Result<T>, Outcome) {
        (Err(self.cancelled_error()), Outcome::Cancelled)
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
    pub(crate) fn finish(&self, outcome: &Result<Value>, ending: Outcome) {
        let now = now();
        let waited = Duration::from_micros(self.slot_wait_us.load(Relaxed));
        let took = now
            .saturating_duration_since(self.started)
            .saturating_sub(waited);
        self.definition().stats.ended(ending, took, now);
        if let Some(job) = &self.job {
            self.release_key(job);
            job.ended(outcome);
        }
        self.scope.pending.remove(self.id.as_u128());
        self.scope.running.remove(self.id.as_u128());
        // Counted and unlisted first: whoever the workflow's end wakes sees
        // the step's run as ended everywhere.
        if let Some(step) = self.job.as_ref().and_then(|job| job.step.as_ref()) {
            step.ended(outcome);
        }
        metrics::ended(self.worker_name(), ending, took);
        self.spans.ended(ending, outcome.as_ref().err(), took);
        self.observe(|observer, run| observer.ended(run, ending, outcome, took));
        // Under a tracing subscriber, the span's ending event says it.
        if !Spans::tracing_active() {
            self.log_ending(outcome, ending, took);
        }
        lock(&self.state).take();
        self.end_messages();
        self.signals.fire(Signal::Ended);
    }

    fn log_ending(&self, outcome: &Result<Value>, ending: Outcome, took: Duration) {
        let level = match (outcome, ending) {
            (Ok(_), _) => log::Level::Debug,
            (Err(_), Outcome::Cancelled) => log::Level::Info,
            (Err(_), _) => log::Level::Error,
        };
        // Checked here, not only in `log`: the elapsed text is built before
        // `log` is called, and most runs log nothing.
        if !log::log_enabled!(target: "worker", level) {
            return;
        }
        let took = crate::duration::format_elapsed(took);
        match outcome {
            Ok(_) => self.log(level, format_args!("finished in {took}")),
            Err(_) if ending == Outcome::Cancelled => {
                self.log(level, format_args!("cancelled after {took}"))
            }
            Err(error) => self.log(level, format_args!("failed after {took}: {error}")),
        }
    }

    /// Frees the run's key for the next call, unless it is another run's
    /// by now.
    fn release_key(&self, job: &Job) {
        if let Some(key) = &job.key {
            let mut keys = lock(&self.definition().keys);
            if keys.get(key) == Some(&self.id) {
                keys.remove(key);
            }
        }
    }

    /// Lists a job that hasn't started among the pending runs (where
    /// `cancel`, `scheduled` and shutdown find it).
    pub(crate) fn list_pending(self: &Arc<Self>) {
        self.scope.pending.insert(self.clone());
    }

    /// A job starts: listed as running, no longer pending.
    pub(crate) fn list_started(self: &Arc<Self>) {
        self.list();
        self.scope.pending.remove(self.id.as_u128());
    }

    /// Lists the run in its scope's running set.
    pub(crate) fn list(self: &Arc<Self>) {
        self.scope.running.insert(self.clone());
    }

    /// Ends a run that was listed but refused before it started (shutdown
    /// began in between): not counted, since it never ran.
    pub(crate) fn abandon(&self) {
        self.scope.running.remove(self.id.as_u128());
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

    // ── the driver ──────────────────────────────────────────────────────

    /// Marks this thread as polling this run's worker with `waker` until the
    /// guard drops: the driver registers that waker for `Cancel` right
    /// after the poll, so a cancellation wait polled with it needs no
    /// waiter of its own (see [`is_driven_by`](Self::is_driven_by)).
    pub(crate) fn enter_driver(&self, waker: &Waker) -> DriverGuard {
        let entered = (
            self as *const Run as *const (),
            waker.data(),
            waker.vtable() as *const _ as *const (),
        );
        DriverGuard {
            previous: DRIVING.replace(entered),
        }
    }

    /// Whether `waker` is the one the run's driver is polling the worker
    /// with, on this thread, right now: then a cancel wakes it.
    pub(crate) fn is_driven_by(&self, waker: &Waker) -> bool {
        let (run, data, vtable) = DRIVING.get();
        run == self as *const Run as *const ()
            && data == waker.data()
            && vtable == waker.vtable() as *const _ as *const ()
    }

    /// `true` if the handle has fallen a full buffer behind: the driver
    /// must not poll the worker until `waker` is woken.
    pub(crate) fn hold_for_reader(&self, waker: &Waker) -> bool {
        self.reader.load(SeqCst) && self.mailbox.get().is_some_and(|m| m.hold_driver(waker))
    }

    // ── messages ────────────────────────────────────────────────────────

    fn mailbox(&self) -> &Mailbox {
        self.mailbox.get_or_init(|| {
            let ended = self.signals.is_fired(Signal::Ended);
            Box::new(Mailbox::new(self.settings().message_buffer, ended))
        })
    }

    /// Queues a message for the handle, or drops it if nobody will read it.
    pub(crate) fn emit(&self, message: Value) {
        if let Some(job) = &self.job {
            job.fan_out(&message);
        }
        if self.reader.load(SeqCst) {
            self.mailbox().push(message);
        }
    }

    /// Like [`emit`](Self::emit) if the buffer has room; a full one hands
    /// the message back.
    pub(crate) fn try_emit(&self, message: Value) -> Result<(), Value> {
        let Some(job) = &self.job else {
            return match self.reader.load(SeqCst) {
                true => self.mailbox().try_push(message),
                false => Ok(()),
            };
        };
        // A job's message goes to its joined handles only once the
        // caller's handle took it: a full buffer hands it back unsent.
        if self.reader.load(SeqCst) {
            self.mailbox().try_push(message.clone())?;
        }
        job.fan_out(&message);
        Ok(())
    }

    /// Like [`emit`](Self::emit), waiting for room in the buffer first.
    pub(crate) async fn emit_waiting(&self, message: Value) {
        if let Some(job) = &self.job {
            job.fan_out(&message);
        }
        if self.reader.load(SeqCst) {
            self.mailbox().push_waiting(message, &self.signals).await;
        }
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

type Driving = (*const (), *const (), *const ());

thread_local! {
    /// The run whose worker this thread is polling, and the waker it polls
    /// with; nulls when none. Compared, never dereferenced.
    static DRIVING: Cell<Driving> = const {
        Cell::new((std::ptr::null(), std::ptr::null(), std::ptr::null()))
    };
}

/// Restores the previous driver on drop: a `run()` inside a worker drives
/// a nested run in the same task.
pub(crate) struct DriverGuard {
    previous: Driving,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        DRIVING.set(self.previous);
    }
}
