//! What a worker receives: its identity, payload, configuration, logging,
//! per-run state, messages to the caller and cancellation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{AppConfig, Environment};
use crate::run::{Run, lock};
use crate::signal::Signal;
use crate::{Error, Result};

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

    /// The JSON the caller passed, if any.
    pub fn payload(&self) -> Option<&Value> {
        self.run.payload.as_ref()
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
    /// `[Worker:NAME run:XXXXXXXX] ` with the first 8 characters of the run id.
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
    /// Never fails for lack of a listener: with no handle (the caller used
    /// `run`, dropped its handle or is awaiting the result) the message is
    /// discarded. While a handle is attached, at most the manager's message
    /// buffer (1024 by default) may wait unread; past that `emit` returns
    /// [`Error::MessageBufferFull`] rather than drop anything silently. Use
    /// [`send`](Self::send) to wait for the reader instead.
    pub fn emit(&self, message: Value) -> Result<()> {
        self.run
            .emit(message)
            .map_err(|_| Error::MessageBufferFull {
                worker: self.worker_name().to_owned(),
                run_id: self.run_id().to_owned(),
                capacity: self.run.message_buffer(),
            })
    }

    /// Like [`emit`](Self::emit), but when the buffer is full waits until
    /// the reader makes room (or goes away, or the run is cancelled).
    pub async fn send(&self, message: Value) -> Result<()> {
        // With room in the buffer (the common case) nothing waits, so
        // nothing registers a waker.
        let message = match self.run.emit(message) {
            Ok(()) => return Ok(()),
            Err(full) => full,
        };
        tokio::select! {
            () = self.run.emit_waiting(message) => Ok(()),
            () = self.cancelled() => Err(self.run.cancelled_error()),
        }
    }

    /// Sleeps, returning early if the run is cancelled.
    pub async fn sleep(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.cancelled() => {}
        }
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
        self.run.signals.wait(Signal::Cancel).await;
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.run.started.elapsed()
    }

    /// The timeout this run was started with, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.run.timeout
    }
}
