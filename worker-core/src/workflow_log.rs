//! A workflow's record in this process, as its handles read it: every
//! event in order (so that a handle attached late replays from the first),
//! each step's state and output, and the workflow's outcome. The driver
//! writes it; any number of handles read it, each at its own place.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::Stored;
use crate::run_id::RunId;
use crate::run_state::{Outcome, RunState};
use crate::sync::lock;
use crate::workflow::{Plan, WorkflowId};
use crate::workflow_status::{StepState, StepStatus, WorkflowState, WorkflowStatus};

/// What a [`WorkflowHandle`](crate::WorkflowHandle) reads, in the order it
/// happened. Each step has at most one `Started`, then its messages in the
/// order its worker emitted them, then exactly one `Ended`; a step that
/// never ran (a step it waits for failed, or the workflow was cancelled
/// first) has an `Ended` and no `Started`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkflowEvent {
    /// The step's run started executing (its first attempt).
    Started {
        /// The step.
        step: String,
        /// Its run: the worker's run page, `WORKER::attach`, `cancel`.
        run_id: RunId,
    },
    /// The step's worker emitted a message.
    Message {
        /// The step.
        step: String,
        /// What it emitted.
        message: Value,
    },
    /// The step ended, once.
    Ended {
        /// The step.
        step: String,
        /// How: `Cancelled` also for a step that never ran because a step
        /// it waits for failed.
        outcome: Outcome,
        /// Its error, if it didn't succeed: for a step that never ran, the
        /// name of the step that failed.
        error: Option<String>,
    },
}

impl WorkflowEvent {
    /// The step it is about.
    pub fn step(&self) -> &str {
        match self {
            WorkflowEvent::Started { step, .. }
            | WorkflowEvent::Message { step, .. }
            | WorkflowEvent::Ended { step, .. } => step,
        }
    }
}

/// How a workflow ended.
#[derive(Debug, Clone)]
pub(crate) enum FlowEnd {
    Succeeded,
    /// This step failed for good, with this error.
    Failed(usize, Stored),
    Cancelled,
}

/// A workflow's record.
#[derive(Debug)]
pub(crate) struct FlowLog {
    plan: Arc<Plan>,
    /// Each step's run, in the plan's order, once they are made.
    run_ids: OnceLock<Box<[RunId]>>,
    created_at: SystemTime,
    inner: Mutex<Inner>,
}

/// Where one step stands.
#[derive(Debug, Default)]
struct StepRecord {
    /// `None` while it waits for its parents.
    state: Option<RunState>,
    /// Once it succeeded.
    output: Option<Value>,
    /// Once it ended otherwise: its error's text.
    error: Option<String>,
}

/// What happened, as compact as it can be kept: a `WorkflowEvent` is made
/// of it when a handle reads it.
#[derive(Debug)]
enum Entry {
    Started(usize),
    Message(usize, Value),
    Ended(usize, Outcome, Option<String>),
}

#[derive(Debug)]
struct Inner {
    entries: Vec<Entry>,
    steps: Vec<StepRecord>,
    end: Option<FlowEnd>,
    ended_at: Option<SystemTime>,
    /// Handles waiting for the next change.
    wakers: Vec<Waker>,
}

impl FlowLog {
    /// The record of `plan`.
    pub(crate) fn new(plan: Arc<Plan>) -> Self {
        let count = plan.steps.len();
        FlowLog {
            plan,
            run_ids: OnceLock::new(),
            created_at: SystemTime::now(),
            inner: Mutex::new(Inner {
                // A start and an end a step, and room for a message each.
                entries: Vec::with_capacity(3 * count),
                steps: (0..count).map(|_| StepRecord::default()).collect(),
                end: None,
                ended_at: None,
                wakers: Vec::new(),
            }),
        }
    }

    /// Its steps' runs are made: these, in the plan's order.
    pub(crate) fn set_run_ids(&self, run_ids: Vec<RunId>) {
        let _ = self.run_ids.set(run_ids.into_boxed_slice());
    }

    fn run_id(&self, step: usize) -> RunId {
        self.run_ids
            .get()
            .and_then(|ids| ids.get(step).copied())
            .unwrap_or_else(|| RunId::from(uuid::Uuid::nil()))
    }

    /// Its id as text.
    pub(crate) fn id_text(&self) -> &str {
        self.plan.id_text()
    }

    pub(crate) fn id(&self) -> WorkflowId {
        self.plan.id
    }

    pub(crate) fn name(&self) -> &str {
        &self.plan.name
    }

    pub(crate) fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// The worker `step` runs, if it is a step of this workflow.
    pub(crate) fn worker_of(&self, step: &str) -> Option<&str> {
        let at = self.plan.step_index(step)?;
        Some(&self.plan.steps[at].worker)
    }

    fn event(&self, entry: &Entry) -> WorkflowEvent {
        let name = |step: usize| self.plan.steps[step].name.clone();
        match entry {
            Entry::Started(step) => WorkflowEvent::Started {
                step: name(*step),
                run_id: self.run_id(*step),
            },
            Entry::Message(step, message) => WorkflowEvent::Message {
                step: name(*step),
                message: message.clone(),
            },
            Entry::Ended(step, outcome, error) => WorkflowEvent::Ended {
                step: name(*step),
                outcome: *outcome,
                error: error.clone(),
            },
        }
    }

    fn change(&self, write: impl FnOnce(&mut Inner)) {
        let wakers = {
            let mut inner = lock(&self.inner);
            write(&mut inner);
            std::mem::take(&mut inner.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Its parents are done: the step's run may start.
    pub(crate) fn released(&self, step: usize) {
        self.change(|inner| inner.steps[step].state = Some(RunState::Queued));
    }

    pub(crate) fn started(&self, step: usize) {
        self.change(|inner| {
            inner.steps[step].state = Some(RunState::Running);
            inner.entries.push(Entry::Started(step));
        });
    }

    pub(crate) fn message(&self, step: usize, message: Value) {
        self.change(|inner| inner.entries.push(Entry::Message(step, message)));
    }

    /// The step ended with `outcome`; `error` is its text if it didn't
    /// succeed.
    pub(crate) fn ended(
        &self,
        step: usize,
        outcome: Outcome,
        output: Option<Value>,
        error: Option<String>,
    ) {
        self.change(|inner| {
            let record = &mut inner.steps[step];
            record.state = Some(RunState::Ended(outcome));
            record.output = output;
            record.error = error.clone();
            inner.entries.push(Entry::Ended(step, outcome, error));
        });
    }

    /// Every step has ended: the workflow's outcome.
    pub(crate) fn finish(&self, end: FlowEnd) {
        self.change(|inner| {
            inner.end = Some(end);
            inner.ended_at = Some(SystemTime::now());
        });
    }

    pub(crate) fn is_finished(&self) -> bool {
        lock(&self.inner).end.is_some()
    }

    /// The event at `cursor`, which then moves on; `Ready(None)` once the
    /// workflow has ended and every event was read.
    pub(crate) fn poll_event(
        &self,
        cursor: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<WorkflowEvent>> {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.entries.get(*cursor) {
            *cursor += 1;
            return Poll::Ready(Some(self.event(entry)));
        }
        if inner.end.is_some() {
            return Poll::Ready(None);
        }
        inner.wakers.push(cx.waker().clone());
        Poll::Pending
    }

    /// The event at `cursor` if there is one yet.
    pub(crate) fn try_event(&self, cursor: &mut usize) -> Option<WorkflowEvent> {
        let inner = lock(&self.inner);
        let event = inner.entries.get(*cursor).map(|entry| self.event(entry));
        if event.is_some() {
            *cursor += 1;
        }
        event
    }

    /// Waits for the workflow's end: `Ok` once every step succeeded, else
    /// the failed step's error (naming the step) or the cancellation.
    pub(crate) async fn outcome(&self) -> Result<()> {
        let end = poll_fn(|cx| {
            let mut inner = lock(&self.inner);
            match &inner.end {
                Some(end) => Poll::Ready(end.clone()),
                None => {
                    inner.wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        match end {
            FlowEnd::Succeeded => Ok(()),
            FlowEnd::Failed(step, stored) => {
                let failed = &self.plan.steps[step];
                let error = match stored.rebuild(&failed.worker, &self.run_id(step).to_string()) {
                    Err(error) => error,
                    Ok(_) => Error::msg("the step's error was lost"),
                };
                Err(Error::Step {
                    workflow: self.plan.name.clone(),
                    step: failed.name.clone(),
                    error: Box::new(error),
                })
            }
            FlowEnd::Cancelled => Err(Error::WorkflowCancelled {
                workflow: self.plan.name.clone(),
                id: self.plan.id.to_string(),
            }),
        }
    }

    /// Where it stands now.
    pub(crate) fn status(&self) -> WorkflowStatus {
        let inner = lock(&self.inner);
        let plan = &self.plan;
        let (state, failed_step, error) = match &inner.end {
            None => (WorkflowState::Running, None, None),
            Some(FlowEnd::Succeeded) => (WorkflowState::Succeeded, None, None),
            Some(FlowEnd::Failed(step, _)) => (
                WorkflowState::Failed,
                Some(plan.steps[*step].name.clone()),
                inner.steps[*step].error.clone(),
            ),
            Some(FlowEnd::Cancelled) => (
                WorkflowState::Cancelled,
                None,
                Some(format!(
                    "workflow '{}' {} was cancelled",
                    plan.name, plan.id
                )),
            ),
        };
        WorkflowStatus {
            id: plan.id,
            name: plan.name.clone(),
            state,
            created_at: self.created_at,
            ended_at: inner.ended_at,
            failed_step,
            error,
            steps: plan
                .steps
                .iter()
                .enumerate()
                .zip(&inner.steps)
                .map(|((at, step), record)| StepStatus {
                    run_id: self.run_id(at),
                    name: step.name.clone(),
                    worker: step.worker.clone(),
                    parents: step
                        .parents
                        .iter()
                        .map(|&parent| plan.steps[parent].name.clone())
                        .collect(),
                    state: record.state.map_or(StepState::Waiting, StepState::Run),
                })
                .collect(),
        }
    }

    /// Waits for `step` to end, then gives its output if it succeeded.
    pub(crate) async fn output(&self, step: &str) -> Result<Value> {
        let Some(at) = self.plan.step_index(step) else {
            let steps: Vec<&str> = self.plan.steps.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::validation(format!(
                "workflow '{}' has no step '{step}' (its steps: {})",
                self.plan.name,
                steps.join(", ")
            )));
        };
        poll_fn(|cx| {
            let mut inner = lock(&self.inner);
            let record = &inner.steps[at];
            match record.state {
                Some(RunState::Ended(Outcome::Succeeded)) => {
                    Poll::Ready(Ok(record.output.clone().unwrap_or(Value::Null)))
                }
                Some(RunState::Ended(outcome)) => Poll::Ready(Err(Error::msg(format!(
                    "step '{step}' of workflow '{}' has no output: it ended {outcome}{}",
                    self.plan.name,
                    record
                        .error
                        .as_deref()
                        .map(|error| format!(": {error}"))
                        .unwrap_or_default()
                )))),
                _ => {
                    inner.wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// How a stored workflow ended, as its backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowEnd {
    /// Every step succeeded.
    Succeeded,
    /// Step `step` (an index into the plan's steps) failed for good.
    Failed {
        /// The step.
        step: usize,
        /// Its error's kind, as `Error::kind` gives it.
        error_kind: String,
        /// Its error's text.
        error: String,
    },
    /// It was cancelled.
    Cancelled,
}

/// A workflow's events and outcome as a backend follows them from its
/// storage: the backend writes what it reads (steps released, started,
/// their messages, their endings, the end), and a
/// [`RemoteWorkflow`](crate::backend::RemoteWorkflow) reads it with the
/// same rules as a workflow of this process (every handle from the first
/// event, `recv` ending once every step ended).
#[derive(Debug)]
pub struct WorkflowLog(FlowLog);

impl WorkflowLog {
    /// The log of `plan`, whose steps are the runs `run_ids`, in order.
    pub fn new(plan: Arc<Plan>, run_ids: Vec<RunId>) -> Self {
        let log = FlowLog::new(plan);
        log.set_run_ids(run_ids);
        WorkflowLog(log)
    }

    /// Step `step`'s parents are done: its run is queued.
    pub fn released(&self, step: usize) {
        self.0.released(step);
    }

    /// Step `step`'s run started.
    pub fn started(&self, step: usize) {
        self.0.started(step);
    }

    /// Step `step`'s worker emitted `message`.
    pub fn message(&self, step: usize, message: Value) {
        self.0.message(step, message);
    }

    /// Step `step` ended: its output if it succeeded, else its error's
    /// text.
    pub fn ended(
        &self,
        step: usize,
        outcome: Outcome,
        output: Option<Value>,
        error: Option<String>,
    ) {
        self.0.ended(step, outcome, output, error);
    }

    /// Every step has ended: the workflow's outcome.
    pub fn finish(&self, end: WorkflowEnd) {
        self.0.finish(match end {
            WorkflowEnd::Succeeded => FlowEnd::Succeeded,
            WorkflowEnd::Failed {
                step,
                error_kind,
                error,
            } => FlowEnd::Failed(step, Stored::error(&error_kind, error)),
            WorkflowEnd::Cancelled => FlowEnd::Cancelled,
        });
    }

    /// The event at `cursor`, which then moves on; `Ready(None)` once the
    /// workflow has ended and every event was read.
    pub fn poll_event(
        &self,
        cursor: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<WorkflowEvent>> {
        self.0.poll_event(cursor, cx)
    }

    /// The event at `cursor` if there is one yet.
    pub fn try_event(&self, cursor: &mut usize) -> Option<WorkflowEvent> {
        self.0.try_event(cursor)
    }

    /// Whether it has ended.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for its end: `Ok` once every step succeeded, else the failed
    /// step's error (an `Error::Step`) or the cancellation.
    pub async fn outcome(&self) -> Result<()> {
        self.0.outcome().await
    }

    /// Waits for `step` to end, then gives its output if it succeeded.
    pub async fn output(&self, step: &str) -> Result<Value> {
        self.0.output(step).await
    }

    /// The worker `step` runs, if it is a step of this workflow.
    pub fn worker_of(&self, step: &str) -> Option<&str> {
        self.0.worker_of(step)
    }

    /// Its id as text.
    pub fn id_text(&self) -> &str {
        self.0.id_text()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Where it stands now, as far as this log knows.
    pub fn status(&self) -> WorkflowStatus {
        self.0.status()
    }
}
