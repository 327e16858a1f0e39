//! What a worker receives: its identity, payload, configuration, logging,
//! per-run state, messages to the caller and cancellation.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{AppConfig, Environment};
use crate::error::{Error, Result};
use crate::run::Run;
use crate::signal::Signal;
use crate::step::StepOf;
use crate::sync::lock;

/// A run's view of itself, handed to the worker when the run starts.
///
/// Cheap to clone (one `Arc`); clones refer to the same run. After the run
/// has ended, messages emitted through a leftover clone are discarded.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("greet", |ctx| async move {
///     let name = ctx.payload().and_then(|p| p["name"].as_str()).unwrap_or("world");
///     ctx.info(&format!("greeting {name}"));          // [Worker:greet run:1a2b3c4d] greeting Ada
///     ctx.set_state("greeted", json!(name)).await?;    // private to this run
///     ctx.emit(json!({"greeting": format!("Hello, {name}!")}))?;
///     Ok(())
/// }).await?;
///
/// let mut handle = manager.call("greet", None, Some(json!({"name": "Ada"}))).await?;
/// assert_eq!(handle.recv().await, Some(json!({"greeting": "Hello, Ada!"})));
/// handle.await_result().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WorkerContext {
    run: Arc<Run>,
}

impl fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerContext")
            .field("worker", &self.worker_name())
            .field("run_id", &self.run_id())
            .finish_non_exhaustive()
    }
}

impl WorkerContext {
    pub(crate) fn new(run: Arc<Run>) -> Self {
        WorkerContext { run }
    }

    /// The worker's registered name, e.g. `"send-email"`.
    pub fn worker_name(&self) -> &str {
        self.run.worker_name()
    }

    /// This run's id, a UUID such as `"550e8400-e29b-41d4-a716-446655440000"`.
    pub fn run_id(&self) -> &str {
        self.run.id_str()
    }

    /// The manager's configuration when the run started.
    pub fn config(&self) -> &Arc<AppConfig> {
        &self.run.settings().config
    }

    /// Which attempt this is: 1 on the first, 2 on the first retry (see
    /// [`WorkerOptions::retries`](crate::WorkerOptions::retries)).
    pub fn attempt(&self) -> u32 {
        self.run.attempt()
    }

    /// The JSON the caller passed, if any.
    pub fn payload(&self) -> Option<&Value> {
        self.run.payload()
    }

    /// The environment the manager runs in.
    pub fn environment(&self) -> Environment {
        self.run.settings().environment
    }

    /// `true` unless `RUSTF_ENV`/`NODE_ENV` (or the builder) say production.
    pub fn is_development(&self) -> bool {
        self.environment() == Environment::Development
    }

    /// `true` when `RUSTF_ENV`/`NODE_ENV` is `production`/`prod`, or the
    /// builder said so.
    pub fn is_production(&self) -> bool {
        self.environment() == Environment::Production
    }

    /// Logs through the `log` crate (target `worker`), prefixed
    /// `[Worker:NAME run:XXXXXXXX] ` with the last 8 characters of the run id
    /// ([`RunId::short`](crate::RunId::short)).
    pub fn log(&self, level: log::Level, message: &str) {
        self.run.log(level, format_args!("{message}"));
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(log::Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(log::Level::Warn, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: &str) {
        self.log(log::Level::Error, message);
    }

    /// Logs at debug level, in development only.
    pub fn debug(&self, message: &str) {
        if self.is_development() {
            self.log(log::Level::Debug, message);
        }
    }

    /// Stores a value in this run's private state.
    pub async fn set_state(&self, key: impl Into<String>, value: Value) -> Result<()> {
        lock(&self.run.state)
            .get_or_insert_default()
            .insert(key.into(), value);
        Ok(())
    }

    /// A value from this run's state; other runs' state is never visible.
    pub async fn get_state(&self, key: &str) -> Option<Value> {
        lock(&self.run.state).as_ref()?.get(key).cloned()
    }

    /// Forgets all of this run's state.
    pub async fn clear_state(&self) -> Result<()> {
        lock(&self.run.state).take();
        Ok(())
    }

    /// Sends a message to the caller's [`WorkerHandle::recv`](crate::WorkerHandle::recv).
    ///
    /// Never fails, and never drops a message a reader will read: it
    /// returns `Ok(())` always, and the `Result` is there so that the
    /// seed's `ctx.emit(..)?` reads naturally. With no handle (the caller
    /// used `run`, dropped its handle or is awaiting the result) the message
    /// is discarded. While a handle is attached and the manager's message
    /// buffer (1024 by default) is full of unread messages, the run is held
    /// at its next `.await` that waits, until the reader catches up: a slow
    /// reader slows the worker down. So unread messages take at most the
    /// buffer plus what the worker emits between two of its own waits.
    ///
    /// The hold applies to the run's own task. A task the worker spawned
    /// with a clone of this context is not held; it should use
    /// [`send`](Self::send), which waits for room itself.
    pub fn emit(&self, message: Value) -> Result<()> {
        self.run.observe_message(&message);
        self.run.emit(message);
        Ok(())
    }

    /// Like [`emit`](Self::emit), but first waits until the buffer has room
    /// (or the reader goes away). Returns an error only if the run is
    /// cancelled while it waits.
    pub async fn send(&self, message: Value) -> Result<()> {
        self.run.observe_message(&message);
        // With room in the buffer (the common case) nothing waits, so
        // nothing registers a waker.
        let message = match self.run.try_emit(message) {
            Ok(()) => return Ok(()),
            Err(full) => full,
        };
        tokio::select! {
            biased;
            () = self.run.emit_waiting(message) => Ok(()),
            () = self.cancelled() => Err(self.run.cancelled_error()),
        }
    }

    /// Sleeps, returning early if the run is cancelled.
    ///
    /// Awaited in the run's own task (the usual case), it costs a timer and
    /// nothing else: the run's driver is woken by a cancel anyway.
    pub async fn sleep(&self, duration: Duration) {
        let mut sleep = pin!(tokio::time::sleep(duration));
        let mut cancel = CancelWait::default();
        poll_fn(|cx| {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            cancel.poll(&self.run, cx)
        })
        .await;
    }

    /// Whether the run has been asked to stop: cancelled (by id, by handle or
    /// by shutdown), or timed out. A blocking worker, or a task holding a
    /// clone of this context, checks it to know the run is over.
    pub fn is_cancelled(&self) -> bool {
        self.run.signals.is_fired(Signal::Cancel)
    }

    /// Resolves when the run is asked to stop (by `cancel`, its handle or
    /// shutdown; then the worker has the grace period to return) or has
    /// timed out (then the worker's future is already dropped, and only
    /// what outlives it, like a spawned task, sees this).
    pub async fn cancelled(&self) {
        let mut cancel = CancelWait::default();
        poll_fn(|cx| cancel.poll(&self.run, cx)).await;
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.run.elapsed()
    }

    /// The timeout this run was started with, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.run.timeout()
    }

    /// The id of the workflow this run is a step of; `None` for a run
    /// that isn't a step (see [`Workflow`](crate::Workflow)).
    pub fn workflow_id(&self) -> Option<&str> {
        self.step_of().map(StepOf::workflow_text)
    }

    /// The name of the step this run is, in its workflow; `None` for a
    /// run that isn't a step.
    pub fn step(&self) -> Option<&str> {
        self.step_of().map(StepOf::name)
    }

    /// The output of `parent`, a step this step waits for, read as `T`
    /// (any `Deserialize` type; `Value` for the raw JSON). Every parent
    /// has succeeded by the time a step starts, so its output is here.
    ///
    /// An error if this run isn't a step, if `parent` isn't one of its
    /// parents, or if the output doesn't fit `T` (naming the step and
    /// serde's reason); none of these is retried.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register_with("count", WorkerOptions::new(), |_ctx| async { Ok(3u32) }).await?;
    /// manager.register_with("double", WorkerOptions::new(), |ctx| async move {
    ///     assert_eq!(ctx.step(), Some("doubled"));
    ///     let count: u32 = ctx.parent_output("counted")?;
    ///     Ok(count * 2)
    /// }).await?;
    /// let flow = Workflow::new("arithmetic")
    ///     .step("counted", "count", Call::new())
    ///     .step("doubled", "double", Call::new()).after(["counted"]);
    /// let flow_handle = manager.start_workflow(flow).await?;
    /// assert_eq!(flow_handle.output::<u32>("doubled").await?, 6);
    /// # Ok(()) }
    /// ```
    pub fn parent_output<T: DeserializeOwned>(&self, parent: &str) -> Result<T> {
        match self.step_of() {
            Some(step) => step.parent_output(parent),
            None => Err(Error::validation(format!(
                "worker '{}' asked for the output of step '{parent}', but run {} is not a workflow's step",
                self.worker_name(),
                self.run_id()
            ))),
        }
    }

    fn step_of(&self) -> Option<&StepOf> {
        self.run.job()?.step.as_ref()
    }
}

/// Waits for a run's `Cancel` signal. Polled by the run's own driver with
/// the driver's waker, it registers nothing: the driver is woken on cancel.
/// Anywhere else (a spawned task, a combinator with wakers of its own) it
/// falls back to the run's `Notify`, boxed so that the common case keeps
/// the future small.
#[derive(Default)]
struct CancelWait<'a> {
    waiter: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
}

impl<'a> CancelWait<'a> {
    fn poll(&mut self, run: &'a Run, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(waiter) = &mut self.waiter {
            return waiter.as_mut().poll(cx);
        }
        if run.signals.is_fired(Signal::Cancel) {
            return Poll::Ready(());
        }
        if run.is_driven_by(cx.waker()) {
            return Poll::Pending;
        }
        self.waiter
            .insert(Box::pin(run.signals.wait(Signal::Cancel)))
            .as_mut()
            .poll(cx)
    }
}
