//! `WORKER::`, the global API: the seed's nine calls on the process-global
//! manager, usable from anywhere without passing a manager around.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use crate::{Result, WorkerContext, WorkerHandle, WorkerManager, WorkerStats};

/// The global worker API. Each call goes to [`WorkerManager::global`], which
/// already holds every `#[worker]` fn of the program.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use std::time::Duration;
/// use worker_core::prelude::*;
///
/// WORKER::register("send-welcome", |ctx| async move {
///     let to = ctx.payload().and_then(|p| p["to"].as_str())
///         .ok_or_else(|| Error::validation("'to' address required"))?;
///     ctx.info(&format!("sending to {to}"));
///     ctx.emit(json!({"status": "sent", "to": to}))?;
///     Ok(())
/// }).await?;
///
/// // Call and await.
/// WORKER::run("send-welcome", Some(json!({"to": "a@b.c"}))).await?;
///
/// // Call with a handle: stream messages, then the result.
/// let mut handle = WORKER::call("send-welcome", Some(Duration::from_secs(5)), Some(json!({"to": "x@y.z"}))).await?;
/// while let Some(message) = handle.recv().await {
///     assert_eq!(message["status"], "sent");
/// }
/// handle.await_result().await?;
///
/// // Bad input is turned away with a clear error.
/// let err = WORKER::run("send-welcome", None).await.unwrap_err();
/// assert!(err.is_validation());
/// let err = WORKER::run("no-such-worker", None).await.unwrap_err();
/// assert_eq!(err.to_string(), "Worker 'no-such-worker' not registered");
///
/// let stats = WORKER::stats("send-welcome").await.unwrap();
/// assert_eq!((stats.runs, stats.errors), (3, 1));
/// # Ok(()) }
/// ```
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy)]
pub struct WORKER;

impl WORKER {
    /// Registers a worker definition. See [`WorkerManager::register`].
    pub async fn register<F, Fut>(name: impl Into<String>, handler: F) -> Result<()>
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        WorkerManager::global().register(name, handler).await
    }

    /// Registers a worker with its run policy. See
    /// [`WorkerManager::register_with`].
    pub async fn register_with<F, Fut, O>(
        name: impl Into<String>,
        options: crate::WorkerOptions,
        handler: F,
    ) -> Result<()>
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
        O: serde::Serialize + Send + 'static,
    {
        WorkerManager::global()
            .register_with(name, options, handler)
            .await
    }

    /// Starts a run and returns its handle. See [`WorkerManager::call`].
    pub async fn call(
        worker_name: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> Result<WorkerHandle> {
        WorkerManager::global()
            .call(worker_name, timeout, payload)
            .await
    }

    /// Starts a run with per-call options (delay, key, priority, …). See
    /// [`WorkerManager::call_with`].
    pub async fn call_with(worker_name: &str, call: crate::Call) -> Result<WorkerHandle> {
        WorkerManager::global().call_with(worker_name, call).await
    }

    /// Stores many runs of one worker at once; their ids in order. See
    /// [`WorkerManager::call_many`].
    pub async fn call_many(
        worker_name: &str,
        calls: impl IntoIterator<Item = crate::Call>,
    ) -> Result<Vec<String>> {
        WorkerManager::global().call_many(worker_name, calls).await
    }

    /// Ids of runs waiting for their start time, soonest first. See
    /// [`WorkerManager::scheduled`].
    pub async fn scheduled(worker_name: Option<&str>) -> Result<Vec<String>> {
        WorkerManager::global().scheduled(worker_name).await
    }

    /// Pauses a worker: its runs wait until [`resume`](Self::resume). See
    /// [`WorkerManager::pause`].
    pub async fn pause(worker_name: &str) -> Result<()> {
        WorkerManager::global().pause(worker_name).await
    }

    /// Resumes a paused worker. See [`WorkerManager::resume`].
    pub async fn resume(worker_name: &str) -> Result<()> {
        WorkerManager::global().resume(worker_name).await
    }

    /// Whether a worker is paused. See [`WorkerManager::is_paused`].
    pub async fn is_paused(worker_name: &str) -> Result<bool> {
        WorkerManager::global().is_paused(worker_name).await
    }

    /// Runs a worker and waits for its result. See [`WorkerManager::run`].
    pub async fn run(worker_name: &str, payload: Option<Value>) -> Result<()> {
        WorkerManager::global().run(worker_name, payload).await
    }

    /// A handle on a durable run by id, from any process. See
    /// [`WorkerManager::attach`].
    pub async fn attach(run_id: &str) -> Result<WorkerHandle> {
        WorkerManager::global().attach(run_id).await
    }

    /// Starts a workflow of steps that wait for each other. See
    /// [`WorkerManager::start_workflow`].
    pub async fn start_workflow(workflow: crate::Workflow) -> Result<crate::WorkflowHandle> {
        WorkerManager::global().start_workflow(workflow).await
    }

    /// A handle on a workflow by its id, from its first event. See
    /// [`WorkerManager::attach_workflow`].
    pub async fn attach_workflow(id: &str) -> Result<crate::WorkflowHandle> {
        WorkerManager::global().attach_workflow(id).await
    }

    /// Cancels a run by id. See [`WorkerManager::cancel`].
    pub async fn cancel(run_id: &str) -> Result<()> {
        WorkerManager::global().cancel(run_id).await
    }

    /// Registered worker names, sorted.
    pub async fn definitions() -> Result<Vec<String>> {
        WorkerManager::global().definitions().await
    }

    /// Ids of the runs in flight, oldest first.
    pub async fn running() -> Result<Vec<String>> {
        WorkerManager::global().running().await
    }

    /// Ids of one worker's runs in flight. See [`WorkerManager::running_for`].
    pub async fn running_for(worker_name: &str) -> Result<Vec<String>> {
        WorkerManager::global().running_for(worker_name).await
    }

    /// A worker's statistics; `None` for an unknown name.
    pub async fn stats(worker_name: &str) -> Option<WorkerStats> {
        WorkerManager::global().stats(worker_name).await
    }

    /// Refuses new runs, cancels those in flight and waits for them. See
    /// [`WorkerManager::shutdown`].
    pub async fn shutdown() -> Result<()> {
        WorkerManager::global().shutdown().await
    }
}
