//! Workflows on the manager: `start_workflow`, `attach_workflow` and what
//! dashboards read. A durable workflow goes to the backend whole; in this
//! process each step is a job held until its parents have succeeded, made
//! all at once here, and the workflow (`LocalFlow`) takes it from there
//! as its steps report to it.

use std::sync::Arc;

use crate::call::Resolved;
use crate::error::{Error, Result};
use crate::local_flow::LocalFlow;
use crate::manager::WorkerManager;
use crate::signal::Signal;
use crate::step::{StepOf, StepSink};
use crate::workflow::{Workflow, WorkflowId};
use crate::workflow_handle::WorkflowHandle;
use crate::workflow_log::FlowLog;
use crate::workflow_status::{WorkflowState, WorkflowStatus};

impl WorkerManager {
    /// Starts a workflow: checks it whole (an error, and nothing stored or
    /// run, for a cycle, an unknown parent, a duplicate step name, an
    /// unknown worker, an empty workflow or an invalid call; each
    /// [`is_validation`](Error::is_validation) and naming the step), then
    /// starts the steps that wait for nothing. Each step is an ordinary run
    /// of its worker (its timeout, retries, limits, priority and messages),
    /// started once every step it waits for has succeeded; independent
    /// steps run in parallel.
    ///
    /// When a step fails for good, the steps after it don't run (each ends
    /// as cancelled, naming the failed step, counted once in its worker's
    /// `cancelled`), the other branches finish, and the workflow fails with
    /// the step's error.
    ///
    /// With a backend, a workflow of durable workers is stored whole in one
    /// commit and runs on any node, whether or not this process is still
    /// there; one of `local` workers runs in this process, kept (with its
    /// events) until it ends and then among the last 100 ended.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register("step", |_ctx| async { Ok(()) }).await?;
    /// let flow = Workflow::new("loop")
    ///     .step("a", "step", Call::new()).after(["b"])
    ///     .step("b", "step", Call::new()).after(["a"]);
    /// let err = manager.start_workflow(flow).await.unwrap_err();
    /// assert!(err.is_validation());
    /// assert!(err.to_string().contains("has a cycle: a → b → a"));
    /// # Ok(()) }
    /// ```
    pub async fn start_workflow(&self, workflow: Workflow) -> Result<WorkflowHandle> {
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let mut plan = workflow.plan(|worker, call| self.resolve(worker, call))?;
        if let Some(backend) = self.workflow_backend(&plan)? {
            return backend
                .start_workflow(plan)
                .await
                .map(WorkflowHandle::remote);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::msg(format!(
                "can't start workflow '{}': start_workflow() must run inside a tokio runtime",
                plan.name
            )));
        }
        // The payloads go to the steps' runs; the plan keeps the rest, for
        // the steps' names, parents and start times.
        let calls: Vec<Resolved> = plan
            .steps
            .iter_mut()
            .map(|step| {
                let payload = step.call.payload.take();
                Resolved {
                    payload,
                    ..step.call.clone()
                }
            })
            .collect();
        let plan = Arc::new(plan);
        let flow = Arc::new(LocalFlow::new(
            plan.clone(),
            FlowLog::new(plan.clone()),
            self.workflow_registry(),
        ));
        let sink: Arc<dyn StepSink> = flow.clone();
        let sink = Arc::downgrade(&sink);
        let mut steps = Vec::with_capacity(calls.len());
        for (index, call) in calls.into_iter().enumerate() {
            let step_of = StepOf::new(plan.clone(), index, sink.clone());
            match self.enqueue_step(&plan.steps[index].worker, call, step_of) {
                Ok(run) => steps.push(run),
                Err(error) => {
                    // Shutdown began in between: what was made ends, as
                    // cancelled, counted once.
                    for run in &steps {
                        run.signals.fire(Signal::Cancel);
                    }
                    return Err(error);
                }
            }
        }
        flow.log
            .set_run_ids(steps.iter().map(|run| run.id).collect());
        self.workflows_kept().insert(flow.clone());
        flow.begin(steps);
        Ok(WorkflowHandle::local(flow))
    }

    /// A handle on a workflow by its id, replaying from its first event:
    /// one this process runs or ran (the last 100 ended are kept), or, with
    /// a backend, one stored there, from any process.
    pub async fn attach_workflow(&self, id: &str) -> Result<WorkflowHandle> {
        let parsed: WorkflowId = id.parse().map_err(Error::validation)?;
        if let Some(flow) = self.workflows_kept().find(parsed) {
            return Ok(WorkflowHandle::local(flow));
        }
        match self.backend() {
            Some(backend) => backend
                .attach_workflow(parsed)
                .await
                .map(WorkflowHandle::remote),
            None => Err(Error::validation(format!(
                "no workflow {id} in this process: it is unknown, or ended before the last {} kept",
                crate::local_flow::KEPT_ENDED
            ))),
        }
    }

    /// Workflows, for dashboards: running ones (newest first), then the
    /// latest ended, at most `limit`. In durable mode, the backend's
    /// (every node's) and this process's.
    pub async fn workflows(&self, limit: usize) -> Result<Vec<WorkflowStatus>> {
        let mut all: Vec<WorkflowStatus> = self
            .workflows_kept()
            .all()
            .iter()
            .map(|flow| flow.log.status())
            .collect();
        if let Some(history) = self.history() {
            all.extend(history.workflows(limit).await?);
            // Running first, then by start, newest first.
            all.sort_by_key(|flow| {
                (
                    flow.state != WorkflowState::Running,
                    std::cmp::Reverse(flow.created_at),
                )
            });
        }
        all.truncate(limit);
        Ok(all)
    }

    /// One workflow with its steps, by id; `Ok(None)` if neither this
    /// process nor the backend knows it.
    pub async fn workflow(&self, id: &str) -> Result<Option<WorkflowStatus>> {
        let Ok(parsed) = id.parse::<WorkflowId>() else {
            return Ok(None);
        };
        if let Some(flow) = self.workflows_kept().find(parsed) {
            return Ok(Some(flow.log.status()));
        }
        match self.history() {
            Some(history) => history.workflow(parsed).await,
            None => Ok(None),
        }
    }

    /// Cancels a workflow by id, wherever it runs, and returns once every
    /// step has ended (see [`WorkflowHandle::cancel`]).
    pub async fn cancel_workflow(&self, id: &str) -> Result<()> {
        self.attach_workflow(id).await?.cancel().await
    }

    /// How many workflows this process is running now.
    pub fn workflows_running(&self) -> usize {
        self.workflows_kept().live_count()
    }
}
