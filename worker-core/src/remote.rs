//! The caller's side of a run or a workflow that lives in a backend, not
//! in this process: the traits a [`WorkerHandle`](crate::WorkerHandle) and
//! a [`WorkflowHandle`](crate::WorkflowHandle) read them through. (The backend contract itself is in `backend`.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::error::Result;
use crate::workflow_log::WorkflowEvent;

/// A boxed, sendable future, as the backend traits return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The caller's side of a run stored in a backend: what a
/// [`WorkerHandle`](crate::WorkerHandle) of it reads.
pub trait RemoteRun: Send + Sync + 'static {
    /// The run's id.
    fn id(&self) -> &str;
    /// The worker's name.
    fn worker_name(&self) -> &str;
    /// The next message, in order, from the first; `Ready(None)` once the
    /// run has ended and every message was read.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Value>>;
    /// The next message if one has arrived.
    fn try_recv(&mut self) -> Option<Value>;
    /// Whether the run has ended, as far as this handle knows.
    fn is_finished(&self) -> bool;
    /// Cancels the run and waits until it has ended.
    fn cancel(&self) -> BoxFuture<'_, Result<()>>;
    /// Waits for the outcome: the output as JSON, or the error, with the
    /// same predicates and text as in-process.
    fn outcome(self: Box<Self>) -> BoxFuture<'static, Result<Value>>;
}

/// The caller's side of a workflow stored in a backend: what a
/// [`WorkflowHandle`](crate::WorkflowHandle) of it reads.
pub trait RemoteWorkflow: Send + Sync + 'static {
    /// The workflow's id.
    fn id(&self) -> &str;
    /// The workflow's name.
    fn name(&self) -> &str;
    /// The next event, in order, from the first; `Ready(None)` once every
    /// step has ended and every event was read.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<WorkflowEvent>>;
    /// The next event if one has arrived.
    fn try_event(&mut self) -> Option<WorkflowEvent>;
    /// Whether every step has ended, as far as this handle knows.
    fn is_finished(&self) -> bool;
    /// Cancels every step that hasn't ended and waits until they have.
    fn cancel(&self) -> BoxFuture<'_, Result<()>>;
    /// Waits for the workflow's outcome: `Ok` once every step succeeded,
    /// else the error of the step that failed (an
    /// [`Error::Step`](crate::Error::Step)) or the cancellation, with the
    /// same predicates and text as in-process.
    fn outcome(&self) -> BoxFuture<'_, Result<()>>;
    /// Waits for `step` to end and gives its output as JSON if it
    /// succeeded.
    fn output(&self, step: &str) -> BoxFuture<'_, Result<Value>>;
    /// The worker `step` runs, if it is a step of this workflow.
    fn worker_of(&self, step: &str) -> Option<&str>;
}
