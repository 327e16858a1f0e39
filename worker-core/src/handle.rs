//! The caller's grip on a run: its messages, its result, its cancellation.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::Poll;

use serde_json::Value;

use crate::Result;
use crate::run::Run;
use crate::signal::Signal;

/// Returned by [`WORKER::call`](crate::WORKER::call): read the run's
/// messages, await its result or cancel it.
///
/// Dropping the handle does not stop the run (it goes on, fire-and-forget);
/// its unread messages are freed and later ones discarded.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("count", |ctx| async move {
///     for i in 1..=3 {
///         ctx.emit(json!({"progress": i * 33}))?;
///     }
///     Ok(())
/// }).await?;
///
/// let mut handle = manager.call("count", None, None).await?;
/// let mut seen = Vec::new();
/// while let Some(message) = handle.recv().await {
///     seen.push(message["progress"].as_i64().unwrap());
/// }
/// assert_eq!(seen, [33, 66, 99]);
/// handle.await_result().await?;
/// # Ok(()) }
/// ```
pub struct WorkerHandle {
    run: Arc<Run>,
    /// Messages already taken from the run, in order; refilled a batch at a time.
    inbox: VecDeque<Value>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("worker", &self.worker_name())
            .field("run_id", &self.id())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    pub(crate) fn new(run: Arc<Run>) -> Self {
        WorkerHandle {
            run,
            inbox: VecDeque::new(),
        }
    }

    /// The run's id, as listed by [`WORKER::running`](crate::WORKER::running).
    pub fn id(&self) -> &str {
        self.run.id_str()
    }

    /// The worker's name.
    pub fn worker_name(&self) -> &str {
        self.run.worker_name()
    }

    /// Cancels the run and waits until it has ended (at most the grace
    /// period). Errors with [`Error::RunNotFound`](crate::Error::RunNotFound)
    /// if the run has already ended.
    pub async fn cancel(&self) -> Result<()> {
        self.run.cancel_and_wait().await
    }

    /// The next message the worker emitted, in order; `None` once the run
    /// has ended and every message has been read. Messages emitted before
    /// the first `recv` (even before the run ended) wait for it.
    pub async fn recv(&mut self) -> Option<Value> {
        std::future::poll_fn(|cx| {
            if let Some(message) = self.inbox.pop_front() {
                return Poll::Ready(Some(message));
            }
            self.run
                .poll_messages(&mut self.inbox, cx)
                .map(|_| self.inbox.pop_front())
        })
        .await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Value> {
        if self.inbox.is_empty() {
            self.run.take_messages(&mut self.inbox);
        }
        self.inbox.pop_front()
    }

    /// Whether the run has ended (its messages may still be unread).
    pub fn is_finished(&self) -> bool {
        self.run.signals.is_fired(Signal::Ended)
    }

    /// Waits for the run to end and returns its result: `Ok(())`, the
    /// worker's error, or an error for a timeout
    /// ([`is_timeout`](crate::Error::is_timeout)), a panic
    /// ([`is_panic`](crate::Error::is_panic)) or a cancellation
    /// ([`is_cancelled`](crate::Error::is_cancelled)). Unread messages are
    /// discarded. Stats are up to date when it returns.
    pub async fn await_result(self) -> Result<()> {
        self.run.detach_reader();
        self.run.signals.wait(Signal::Ended).await;
        self.run.take_outcome()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.run.detach_reader();
    }
}
