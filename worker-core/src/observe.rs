//! Watching runs from outside: the [`Observer`] trait a dashboard, an audit
//! log or a test implements to see every run start, emit, retry and end.
//!
//! Observers are called on the run's own path, synchronously, so they must
//! be quick and must not block: copy what you need and return. With no
//! observer installed a run pays one branch per event.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::run_id::RunId;
pub use crate::run_state::Outcome;

/// The run an [`Observer`] is told about.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    pub(crate) worker: &'a str,
    pub(crate) run_id: RunId,
    pub(crate) attempt: u32,
    pub(crate) payload: Option<&'a Value>,
    pub(crate) key: Option<&'a str>,
    pub(crate) priority: i32,
}

impl<'a> RunInfo<'a> {
    /// The worker's name.
    pub fn worker(&self) -> &'a str {
        self.worker
    }

    /// The run's unique key, if it has one (`Call::key`, or the worker's
    /// `unique` field).
    pub fn key(&self) -> Option<&'a str> {
        self.key
    }

    /// The run's priority among runs waiting to start.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The run's id, as `WorkerHandle::id` gives it.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The attempt executing, 1 for the first; in
    /// [`attempt_failed`](Observer::attempt_failed), the one that failed.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The payload the run was called with.
    pub fn payload(&self) -> Option<&'a Value> {
        self.payload
    }
}

/// Sees every run of a manager: its start, its messages, its failed
/// attempts and its one end. Install one with
/// [`WorkerManager::observe`](crate::WorkerManager::observe).
///
/// Every method has a default that does nothing, so an observer implements
/// only what it needs. They are called on the run's path (the caller's task
/// for `started`, the run's task for the others): keep them short and never
/// block or await in them.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use worker_core::observe::{Observer, Outcome, RunInfo};
/// use worker_core::prelude::*;
///
/// #[derive(Default)]
/// struct Endings(Mutex<Vec<(String, Outcome)>>);
///
/// impl Observer for Endings {
///     fn ended(&self, run: RunInfo<'_>, outcome: Outcome, _: &Result<Value>, _: std::time::Duration) {
///         self.0.lock().unwrap().push((run.worker().to_owned(), outcome));
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let manager = WorkerManager::new();
/// let endings = Arc::new(Endings::default());
/// manager.observe(endings.clone());
/// manager.register("hello", |_ctx| async { Ok(()) }).await?;
/// manager.run("hello", None).await?;
/// assert_eq!(*endings.0.lock().unwrap(), [("hello".to_owned(), Outcome::Succeeded)]);
/// # Ok(()) }
/// ```
pub trait Observer: Send + Sync + 'static {
    /// The run was admitted: listed in `running()`, counted as running. It
    /// may still wait for a concurrency slot.
    fn started(&self, run: RunInfo<'_>) {
        let _ = run;
    }

    /// The run emitted `message` (with `emit` or `send`), whether or not a
    /// handle reads it.
    fn message(&self, run: RunInfo<'_>, message: &Value) {
        let _ = (run, message);
    }

    /// An attempt failed with `error` and will be tried again after `delay`.
    fn attempt_failed(&self, run: RunInfo<'_>, error: &Error, delay: Duration) {
        let _ = (run, error, delay);
    }

    /// The run ended, once, with `outcome`. `result` is what its handle's
    /// `await_result` gives (the output as JSON on success); `duration`
    /// is its duration in the statistics (from call to end, less slot waits).
    fn ended(
        &self,
        run: RunInfo<'_>,
        outcome: Outcome,
        result: &Result<Value, Error>,
        duration: Duration,
    ) {
        let _ = (run, outcome, result, duration);
    }
}

/// The observers of one manager, shared by its runs through the settings.
#[derive(Clone, Default)]
pub(crate) struct Observers(std::sync::Arc<[std::sync::Arc<dyn Observer>]>);

impl Observers {
    /// These observers and `observer`.
    pub(crate) fn with(&self, observer: std::sync::Arc<dyn Observer>) -> Self {
        Observers(self.0.iter().cloned().chain([observer]).collect())
    }

    /// Calls `event` on each observer; costs a branch when there are none.
    #[inline]
    pub(crate) fn each(&self, event: impl Fn(&dyn Observer)) {
        for observer in self.0.iter() {
            event(&**observer);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} observer(s)", self.0.len())
    }
}
