//! Workflows on the manager: `start_workflow` and `attach_workflow`, and
//! the driver that runs a workflow in this process. A durable workflow
//! goes to the backend whole; here, each step is a job held until its
//! parents have succeeded, and one task per workflow follows its steps,
//! writes their events to its log, and releases or cancels what comes
//! next.

use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::handle::WorkerHandle;
use crate::job::Stored;
use crate::local_flow::LocalFlow;
use crate::manager::WorkerManager;
use crate::run_state::Outcome;
use crate::step::StepOf;
use crate::workflow::{Plan, Workflow, WorkflowId};
use crate::workflow_handle::WorkflowHandle;
use crate::workflow_log::{FlowEnd, FlowLog};
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
        let plan = workflow.plan(|worker, call| self.resolve(worker, call))?;
        if let Some(backend) = self.workflow_backend(&plan)? {
            return backend
                .start_workflow(plan)
                .await
                .map(WorkflowHandle::remote);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::msg(format!(
                "can't start workflow '{}': start_workflow() must run inside a tokio runtime",
                plan.name
            ))
        })?;
        let mut runs = Vec::with_capacity(plan.steps.len());
        let mut handles = Vec::with_capacity(plan.steps.len());
        let mut steps = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let parents = step.parents.iter().map(|&parent| {
                let parent = &plan.steps[parent];
                (parent.name.clone(), parent.worker.clone())
            });
            let step_of = Arc::new(StepOf::new(plan.id, &step.name, parents));
            match self.enqueue_step(&step.worker, step.call.clone(), step_of.clone()) {
                Ok((run, handle)) => {
                    runs.push(run);
                    handles.push(handle);
                    steps.push(step_of);
                }
                Err(error) => {
                    // Shutdown began in between: what was made ends, as
                    // cancelled, counted once.
                    for run in &runs {
                        run.signals.fire(crate::signal::Signal::Cancel);
                    }
                    return Err(error);
                }
            }
        }
        let run_ids: Vec<_> = runs.iter().map(|run| run.id).collect();
        let flow = Arc::new(LocalFlow::new(FlowLog::new(&plan, &run_ids), runs));
        self.workflows_kept().insert(flow.clone());
        runtime.spawn(drive(self.clone(), plan, flow.clone(), handles, steps));
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

/// Runs `plan` in this process: releases each step once its parents have
/// succeeded, dooms the steps after one that failed, and ends the
/// workflow once every step has ended.
async fn drive(
    manager: WorkerManager,
    plan: Plan,
    flow: Arc<LocalFlow>,
    handles: Vec<WorkerHandle>,
    steps: Vec<Arc<StepOf>>,
) {
    let children = plan.children();
    let mut waiting_for: Vec<usize> = plan.steps.iter().map(|step| step.parents.len()).collect();
    let mut outputs: Vec<Option<Value>> = vec![None; plan.steps.len()];
    // For a step that will not run: the step whose failure doomed it.
    let mut doomed: Vec<Option<usize>> = vec![None; plan.steps.len()];
    let mut failed: Option<(usize, Stored)> = None;

    let mut watchers = JoinSet::new();
    for (step, (handle, step_of)) in handles.into_iter().zip(&steps).enumerate() {
        watchers.spawn(watch(step, handle, step_of.clone(), flow.clone()));
    }
    for (step, planned) in plan.steps.iter().enumerate() {
        if planned.parents.is_empty() {
            release(&plan, &flow, &steps, &outputs, step);
        }
    }
    while let Some(joined) = watchers.join_next().await {
        let Ok((step, outcome)) = joined else {
            // A watcher only ends otherwise if its runtime is going away.
            return;
        };
        match outcome {
            Ok(output) => {
                flow.log
                    .ended(step, Outcome::Succeeded, Some(output.clone()), None);
                outputs[step] = Some(output);
                for &child in &children[step] {
                    waiting_for[child] -= 1;
                    if waiting_for[child] == 0 && doomed[child].is_none() && !flow.is_cancelled() {
                        release(&plan, &flow, &steps, &outputs, child);
                    }
                }
            }
            Err(error) => {
                let outcome = Outcome::of(&error);
                let text = match doomed[step] {
                    Some(by) => format!("not run: step '{}' failed", flow.log.step_name(by)),
                    None if flow.is_cancelled() && outcome == Outcome::Cancelled => {
                        format!("cancelled with workflow '{}'", plan.name)
                    }
                    None => error.to_string(),
                };
                flow.log.ended(step, outcome, None, Some(text));
                if doomed[step].is_none() && !flow.is_cancelled() {
                    failed.get_or_insert((step, Stored::of(&Err(error))));
                    doom_descendants(&children, &flow, &mut doomed, step);
                }
            }
        }
    }
    let end = match failed {
        _ if flow.is_cancelled() => FlowEnd::Cancelled,
        Some((step, error)) => FlowEnd::Failed(step, error),
        None => FlowEnd::Succeeded,
    };
    flow.ended();
    manager.workflows_kept().ended(plan.id);
    flow.log.finish(end);
}

/// `step`'s parents have all succeeded: it gets their outputs and may
/// start (after its delay, if its call has one).
fn release(
    plan: &Plan,
    flow: &LocalFlow,
    steps: &[Arc<StepOf>],
    outputs: &[Option<Value>],
    step: usize,
) {
    let planned = &plan.steps[step];
    let parents = planned
        .parents
        .iter()
        .map(|&parent| outputs[parent].clone().unwrap_or(Value::Null))
        .collect();
    steps[step].set_outputs(parents);
    flow.log.released(step);
    if let Some(job) = flow.run(step).as_deref().and_then(|run| run.job()) {
        job.release(planned.call.start);
    }
}

/// Every step after `failed` (they are all still held) is cancelled: it
/// ends at once, counted once as cancelled, and never starts.
fn doom_descendants(
    children: &[Vec<usize>],
    flow: &LocalFlow,
    doomed: &mut [Option<usize>],
    failed: usize,
) {
    let mut next: Vec<usize> = children[failed].clone();
    while let Some(step) = next.pop() {
        if doomed[step].is_some() {
            continue;
        }
        doomed[step] = Some(failed);
        if let Some(run) = flow.run(step) {
            run.signals.fire(crate::signal::Signal::Cancel);
        }
        next.extend(&children[step]);
    }
}

/// Follows one step's run: `Started` once it starts, each message, and
/// finally its outcome (the driver writes `Ended`, after which it releases
/// or dooms what comes next).
async fn watch(
    step: usize,
    mut handle: WorkerHandle,
    step_of: Arc<StepOf>,
    flow: Arc<LocalFlow>,
) -> (usize, Result<Value>) {
    let first = tokio::select! {
        biased;
        () = step_of.started() => None,
        // The run started and emitted, or ended, between the two polls.
        message = handle.recv() => Some(message),
    };
    if first.is_none() || step_of.has_started() {
        flow.log.started(step);
        if let Some(Some(message)) = first {
            flow.log.message(step, message);
        }
        while let Some(message) = handle.recv().await {
            flow.log.message(step, message);
        }
    }
    (step, handle.await_output::<Value>().await)
}
