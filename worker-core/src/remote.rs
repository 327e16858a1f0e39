//! The caller's side of a run that lives in a backend, not in this
//! process: the trait a [`WorkerHandle`](crate::WorkerHandle) reads it
//! through. (The backend contract itself is in `backend`.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::error::Result;

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
