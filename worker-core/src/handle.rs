//! The caller's grip on a run: its messages, its result, its cancellation.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::Poll;

use serde::de::DeserializeOwned;
use serde_json::Value;

use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::job::Follow;
use crate::remote::RemoteRun;
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
    inner: Inner,
}

/// A run of this process, a run of this process that another call
/// started (a duplicate key joined it), or one stored in a backend.
enum Inner {
    Local(LocalHandle),
    Joined(Arc<Run>, Arc<Follow>),
    Remote(Box<dyn RemoteRun>),
}

struct LocalHandle {
    run: Arc<Run>,
    /// The run's task; its output is the run's outcome.
    task: Option<JoinHandle<Result<Value>>>,
    /// Messages already taken from the run, in order; refilled a batch at a
    /// time. Boxed on the first `recv`: most handles never read.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes for the handles that never read (bench B5)"
    )]
    inbox: Option<Box<VecDeque<Value>>>,
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
    pub(crate) fn new(run: Arc<Run>, task: JoinHandle<Result<Value>>) -> Self {
        WorkerHandle {
            inner: Inner::Local(LocalHandle {
                run,
                task: Some(task),
                inbox: None,
            }),
        }
    }

    /// Another handle on a run of this process: its messages from now on,
    /// and its outcome.
    pub(crate) fn joined(run: Arc<Run>, follow: Arc<Follow>) -> Self {
        WorkerHandle {
            inner: Inner::Joined(run, follow),
        }
    }

    /// The handle of a run stored in a backend.
    pub(crate) fn remote(run: Box<dyn RemoteRun>) -> Self {
        WorkerHandle {
            inner: Inner::Remote(run),
        }
    }

    /// The run's id, as listed by [`WORKER::running`](crate::WORKER::running).
    pub fn id(&self) -> &str {
        match &self.inner {
            Inner::Local(local) => local.run.id_str(),
            Inner::Joined(run, _) => run.id_str(),
            Inner::Remote(remote) => remote.id(),
        }
    }

    /// The worker's name.
    pub fn worker_name(&self) -> &str {
        match &self.inner {
            Inner::Local(local) => local.run.worker_name(),
            Inner::Joined(run, _) => run.worker_name(),
            Inner::Remote(remote) => remote.worker_name(),
        }
    }

    /// Cancels the run and waits until it has ended (at most the grace
    /// period). Errors with [`Error::RunNotFound`](crate::Error::RunNotFound)
    /// if the run has already ended.
    pub async fn cancel(&self) -> Result<()> {
        match &self.inner {
            Inner::Local(local) => local.run.cancel_and_wait().await,
            Inner::Joined(run, _) => run.cancel_and_wait().await,
            Inner::Remote(remote) => remote.cancel().await,
        }
    }

    /// The next message the worker emitted, in order; `None` once the run
    /// has ended and every message has been read. Messages emitted before
    /// the first `recv` (even before the run ended) wait for it.
    pub async fn recv(&mut self) -> Option<Value> {
        std::future::poll_fn(|cx| match &mut self.inner {
            Inner::Local(local) => {
                let inbox = local.inbox.get_or_insert_default();
                if let Some(message) = inbox.pop_front() {
                    return Poll::Ready(Some(message));
                }
                local
                    .run
                    .poll_messages(inbox, cx)
                    .map(|_| inbox.pop_front())
            }
            Inner::Joined(_, follow) => follow.poll_recv(cx),
            Inner::Remote(remote) => remote.poll_recv(cx),
        })
        .await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Value> {
        match &mut self.inner {
            Inner::Local(local) => {
                let inbox = local.inbox.get_or_insert_default();
                if inbox.is_empty() {
                    local.run.take_messages(inbox);
                }
                inbox.pop_front()
            }
            Inner::Joined(_, follow) => follow.try_recv(),
            Inner::Remote(remote) => remote.try_recv(),
        }
    }

    /// Whether the run has ended (its messages may still be unread).
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            Inner::Local(local) => local.run.signals.is_fired(Signal::Ended),
            Inner::Joined(_, follow) => follow.is_finished(),
            Inner::Remote(remote) => remote.is_finished(),
        }
    }

    /// Waits for the run to end and returns its result: `Ok(())`, the
    /// worker's error, or an error for a timeout
    /// ([`is_timeout`](crate::Error::is_timeout)), a panic
    /// ([`is_panic`](crate::Error::is_panic)) or a cancellation
    /// ([`is_cancelled`](crate::Error::is_cancelled)). Unread messages are
    /// discarded. Stats are up to date when it returns.
    pub async fn await_result(self) -> Result<()> {
        self.outcome().await.map(drop)
    }

    /// Like [`await_result`](Self::await_result), and gives the worker's
    /// output: what its `Result<T>` held, read back as `T` (any
    /// `Deserialize` type; `serde_json::Value` gives the raw JSON, and a
    /// `Result<()>` worker gives `null`). A type the output doesn't fit is
    /// an error naming the worker and serde's reason.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Report { rows: u32 }
    ///
    /// let manager = WorkerManager::new();
    /// manager.register_with("report", WorkerOptions::new(), |_ctx| async {
    ///     Ok(Report { rows: 3 })
    /// }).await?;
    /// let handle = manager.call("report", None, None).await?;
    /// assert_eq!(handle.await_output::<Report>().await?, Report { rows: 3 });
    /// # Ok(()) }
    /// ```
    pub async fn await_output<T: DeserializeOwned>(self) -> Result<T> {
        let worker = self.worker_name().to_owned();
        let output = self.outcome().await?;
        T::deserialize(output).map_err(|error| Error::OutputMismatch {
            worker,
            reason: error.to_string(),
        })
    }

    async fn outcome(self) -> Result<Value> {
        match self.inner {
            Inner::Local(mut local) => {
                local.run.detach_reader();
                let Some(task) = local.task.take() else {
                    return Err(Error::msg("the run's result was already taken"));
                };
                match task.await {
                    Ok(outcome) => outcome,
                    // The task can only fail to deliver if its runtime
                    // dropped it; the run then ended as cancelled.
                    Err(_) => Err(local.run.cancelled_error()),
                }
            }
            Inner::Joined(run, follow) => {
                let stored = std::future::poll_fn(|cx| follow.poll_outcome(cx)).await;
                stored.rebuild(run.worker_name(), run.id_str())
            }
            Inner::Remote(remote) => remote.outcome().await,
        }
    }
}

impl Drop for LocalHandle {
    fn drop(&mut self) {
        self.run.detach_reader();
    }
}
