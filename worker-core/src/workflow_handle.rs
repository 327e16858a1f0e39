//! The caller's grip on a workflow: its events, its result, its steps'
//! outputs, its cancellation; the same for one run in this process and
//! one stored in a backend.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::local_flow::LocalFlow;
use crate::remote::RemoteWorkflow;
use crate::workflow_log::WorkflowEvent;

/// Returned by [`WORKER::start_workflow`](crate::WORKER::start_workflow)
/// and [`attach_workflow`](crate::WORKER::attach_workflow): read the
/// workflow's events, await its result, read a step's output, cancel it.
///
/// Each handle reads every event from the first, whenever it was made.
/// Dropping it does not stop the workflow.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("fetch", |ctx| async move { ctx.emit(json!({"got": 1}))?; Ok(()) }).await?;
/// manager.register("store", |_ctx| async { Ok(()) }).await?;
///
/// let flow = Workflow::new("copy")
///     .step("fetch", "fetch", Call::new())
///     .step("store", "store", Call::new()).after(["fetch"]);
/// let mut flow_handle = manager.start_workflow(flow).await?;
/// let mut seen = Vec::new();
/// while let Some(event) = flow_handle.recv().await {
///     seen.push(match event {
///         WorkflowEvent::Started { step, .. } => format!("{step} started"),
///         WorkflowEvent::Message { step, message } => format!("{step} said {message}"),
///         WorkflowEvent::Ended { step, outcome, .. } => format!("{step} {outcome}"),
///     });
/// }
/// assert_eq!(seen, [
///     "fetch started", r#"fetch said {"got":1}"#, "fetch succeeded",
///     "store started", "store succeeded",
/// ]);
/// flow_handle.await_result().await?;
/// # Ok(()) }
/// ```
pub struct WorkflowHandle {
    inner: Inner,
}

enum Inner {
    Local {
        flow: Arc<LocalFlow>,
        /// The next event this handle reads.
        cursor: usize,
    },
    Remote(Box<dyn RemoteWorkflow>),
}

impl fmt::Debug for WorkflowHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("name", &self.name())
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl WorkflowHandle {
    pub(crate) fn local(flow: Arc<LocalFlow>) -> Self {
        WorkflowHandle {
            inner: Inner::Local { flow, cursor: 0 },
        }
    }

    pub(crate) fn remote(flow: Box<dyn RemoteWorkflow>) -> Self {
        WorkflowHandle {
            inner: Inner::Remote(flow),
        }
    }

    /// The workflow's id: what [`attach_workflow`](crate::WORKER::attach_workflow)
    /// takes, in any process.
    pub fn id(&self) -> &str {
        match &self.inner {
            Inner::Local { flow, .. } => flow.log.id_text(),
            Inner::Remote(remote) => remote.id(),
        }
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        match &self.inner {
            Inner::Local { flow, .. } => flow.log.name(),
            Inner::Remote(remote) => remote.name(),
        }
    }

    /// The next event, in order; `None` once every step has ended and
    /// every event was read.
    pub async fn recv(&mut self) -> Option<WorkflowEvent> {
        poll_fn(|cx| match &mut self.inner {
            Inner::Local { flow, cursor, .. } => flow.log.poll_event(cursor, cx),
            Inner::Remote(remote) => remote.poll_event(cx),
        })
        .await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<WorkflowEvent> {
        match &mut self.inner {
            Inner::Local { flow, cursor, .. } => flow.log.try_event(cursor),
            Inner::Remote(remote) => remote.try_event(),
        }
    }

    /// Whether every step has ended (events may still be unread).
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            Inner::Local { flow, .. } => flow.log.is_finished(),
            Inner::Remote(remote) => remote.is_finished(),
        }
    }

    /// Waits until every step has ended. `Ok(())` if every step
    /// succeeded; else the error of the step that failed for good, as an
    /// [`Error::Step`] that names it (its predicates answer for the step's
    /// error: `is_timeout`, `is_panic`, …), or, after a cancel, an error
    /// that [`is_cancelled`](Error::is_cancelled). Unread events stay
    /// readable.
    pub async fn await_result(&self) -> Result<()> {
        match &self.inner {
            Inner::Local { flow, .. } => flow.log.outcome().await,
            Inner::Remote(remote) => remote.outcome().await,
        }
    }

    /// The output of `step` read as `T`, once it has succeeded (this waits
    /// for it to end). An error if there is no such step, if it didn't
    /// succeed, or if its output doesn't fit `T` (naming the step).
    pub async fn output<T: DeserializeOwned>(&self, step: &str) -> Result<T> {
        let (output, worker) = match &self.inner {
            Inner::Local { flow, .. } => (flow.log.output(step).await?, flow.log.worker_of(step)),
            Inner::Remote(remote) => (remote.output(step).await?, remote.worker_of(step)),
        };
        T::deserialize(output).map_err(|error| Error::StepOutputMismatch {
            step: step.to_owned(),
            worker: worker.unwrap_or_default().to_owned(),
            reason: error.to_string(),
        })
    }

    /// Cancels the workflow: every step that hasn't ended ends as
    /// cancelled (one executing gets the grace period), once, counted once
    /// in its worker's statistics. Returns once all have ended; `Ok(())`
    /// also if the workflow had already ended.
    pub async fn cancel(&self) -> Result<()> {
        match &self.inner {
            Inner::Local { flow, .. } => {
                flow.cancel().await;
                Ok(())
            }
            Inner::Remote(remote) => remote.cancel().await,
        }
    }
}
