//! The JSON the API answers, as types: a run's row, its page, the nodes,
//! the timeline, a run's outcome, and workflows with their steps. Both sources of runs (this process's
//! journal, a durable backend's history) are read into the same
//! [`StoredRun`]s and shown through these, so the page gets the same JSON
//! in both modes by construction.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Number, Value};
use worker_core::backend::{
    NodeInfo, ScheduledRun, Stall, StoredAttempt, StoredRun, TimelineBucket,
};
use worker_core::{Error, Outcome, RunId, RunState, StepStatus, WorkflowId, WorkflowStatus};

use crate::clock::{millis, unix_ms};

/// Milliseconds to 0.1 ms, as every duration in the API.
fn tenths(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// A row of the recent-runs list.
#[derive(Debug, Serialize)]
pub(crate) struct RunSummary {
    run_id: RunId,
    worker: String,
    outcome: Option<Outcome>,
    error: Option<String>,
    /// The attempt executing or last executed.
    attempts: u32,
    duration_ms: Option<f64>,
    started_at_ms: u64,
    ended_at_ms: Option<u64>,
    node: Option<String>,
}

impl RunSummary {
    pub(crate) fn of(run: &StoredRun) -> Self {
        RunSummary {
            run_id: run.run_id,
            worker: run.worker.clone(),
            outcome: run.outcome(),
            error: run.error.clone(),
            attempts: run.attempt,
            duration_ms: run.duration_ms.map(tenths),
            started_at_ms: unix_ms(run.started_at.unwrap_or(run.created_at)),
            ended_at_ms: run.ended_at.map(unix_ms),
            node: run.node.clone(),
        }
    }
}

/// A run's page: its row's fields, with every attempt instead of their
/// count, its payload, output and messages.
#[derive(Debug, Serialize)]
pub(crate) struct RunDetail {
    run_id: RunId,
    worker: String,
    outcome: Option<Outcome>,
    error: Option<String>,
    duration_ms: Option<f64>,
    started_at_ms: u64,
    ended_at_ms: Option<u64>,
    node: Option<String>,
    state: PageState,
    payload: Value,
    output: Value,
    attempts: Vec<AttemptView>,
    /// How many messages it sent, where counted (`null` in durable mode,
    /// where the events stream reads them all from the database).
    messages: Option<u64>,
    dropped: u64,
    progress: Option<Number>,
    retried_as: Option<String>,
    key: Option<String>,
    priority: i32,
    /// When it may start (or might have).
    due_at_ms: Option<u64>,
}

impl RunDetail {
    /// `retried_as`: the run the dashboard started to retry this one.
    pub(crate) fn of(run: &StoredRun, retried_as: Option<String>) -> Self {
        let mut attempts: Vec<AttemptView> = run.attempts.iter().map(AttemptView::of).collect();
        if run.state == RunState::Running {
            attempts.push(AttemptView::in_flight(run));
        }
        let summary = RunSummary::of(run);
        RunDetail {
            run_id: summary.run_id,
            worker: summary.worker,
            outcome: summary.outcome,
            error: summary.error,
            duration_ms: summary.duration_ms,
            started_at_ms: summary.started_at_ms,
            ended_at_ms: summary.ended_at_ms,
            node: summary.node,
            state: if run.state.is_ended() {
                PageState::Ended
            } else if run.state == RunState::Queued
                && run.due_at.is_some_and(|due| due > SystemTime::now())
            {
                PageState::Scheduled
            } else {
                PageState::Running
            },
            payload: run.payload.clone().unwrap_or(Value::Null),
            output: run.output.clone().unwrap_or(Value::Null),
            attempts,
            messages: run.messages,
            dropped: run.messages_dropped,
            progress: run.progress.clone(),
            retried_as,
            key: run.key.clone(),
            priority: run.priority,
            due_at_ms: run.due_at.map(unix_ms),
        }
    }
}

/// Where a run's page says it stands: a queued run shows as running (it
/// has started, as far as its caller knows); the outcome says how it ended.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum PageState {
    /// Waiting for its start time.
    Scheduled,
    Running,
    Ended,
}

/// A run waiting for its start time, as the Scheduled view lists it.
#[derive(Debug, Serialize)]
pub(crate) struct ScheduledView {
    run_id: RunId,
    worker: String,
    due_at_ms: u64,
    key: Option<String>,
    priority: i32,
}

impl ScheduledView {
    pub(crate) fn of(run: &ScheduledRun) -> Self {
        ScheduledView {
            run_id: run.run_id,
            worker: run.worker.clone(),
            due_at_ms: unix_ms(run.due_at),
            key: run.key.clone(),
            priority: run.priority,
        }
    }
}

/// One attempt on a run's page.
#[derive(Debug, Serialize)]
struct AttemptView {
    attempt: u32,
    /// How it ended; `"released"` for one a node shutting down handed
    /// back; `null` while in flight.
    outcome: Option<&'static str>,
    error: Option<String>,
    node: Option<String>,
    duration_ms: Option<f64>,
    started_at_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    retry_in_ms: Option<f64>,
}

impl AttemptView {
    fn of(attempt: &StoredAttempt) -> Self {
        AttemptView {
            attempt: attempt.attempt,
            outcome: Some(attempt.outcome.map_or("released", Outcome::as_str)),
            error: attempt.error.clone(),
            node: attempt.node.clone(),
            duration_ms: attempt.duration_ms.map(tenths),
            started_at_ms: attempt.started_at.map(unix_ms),
            ended_at_ms: Some(unix_ms(attempt.ended_at)),
            retry_in_ms: attempt.retry_in.map(millis),
        }
    }

    fn in_flight(run: &StoredRun) -> Self {
        AttemptView {
            attempt: run.attempt,
            outcome: None,
            error: None,
            node: run.node.clone(),
            duration_ms: None,
            started_at_ms: None,
            ended_at_ms: None,
            retry_in_ms: None,
        }
    }
}

/// `GET /nodes`: the processes, their runs, and the latest stalls.
#[derive(Debug, Serialize)]
pub(crate) struct NodesView {
    durable: bool,
    nodes: Vec<NodeView>,
    stalls: Vec<StallView>,
}

impl NodesView {
    pub(crate) fn of(durable: bool, nodes: &[NodeInfo], stalls: &[Stall]) -> Self {
        NodesView {
            durable,
            nodes: nodes.iter().map(NodeView::of).collect(),
            stalls: stalls.iter().map(StallView::of).collect(),
        }
    }
}

/// One process sharing the workers.
#[derive(Debug, Serialize)]
struct NodeView {
    node: String,
    last_heartbeat_ms: u64,
    started_at_ms: u64,
    executes: bool,
    /// How many runs it has in flight.
    running: usize,
    runs: Vec<RunId>,
}

impl NodeView {
    fn of(node: &NodeInfo) -> Self {
        NodeView {
            node: node.node.clone(),
            last_heartbeat_ms: unix_ms(node.last_heartbeat),
            started_at_ms: unix_ms(node.started_at),
            executes: node.executes,
            running: node.running.len(),
            runs: node.running.clone(),
        }
    }
}

/// An attempt whose node stopped renewing its lease.
#[derive(Debug, Serialize)]
struct StallView {
    run_id: RunId,
    worker: String,
    attempt: u32,
    node: Option<String>,
    at_ms: u64,
    detail: Option<String>,
}

impl StallView {
    fn of(stall: &Stall) -> Self {
        StallView {
            run_id: stall.run_id,
            worker: stall.worker.clone(),
            attempt: stall.attempt,
            node: stall.node.clone(),
            at_ms: unix_ms(stall.at),
            detail: stall.detail.clone(),
        }
    }
}

/// `GET /timeline`: `count` buckets of `bucket`, oldest first, ending with
/// the one `now` is in, each with its count per outcome and its p95.
#[derive(Debug, Serialize)]
pub(crate) struct TimelineView {
    bucket_seconds: u64,
    now_ms: u64,
    buckets: Vec<BucketView>,
}

/// One bucket: its start, the runs that ended in it by outcome (every
/// outcome present, 0 for none) and their p95 duration.
#[derive(Debug, Serialize)]
struct BucketView {
    start_ms: u64,
    p95_ms: Option<f64>,
    #[serde(flatten)]
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl TimelineView {
    pub(crate) fn of(
        buckets: &[TimelineBucket],
        bucket: Duration,
        count: usize,
        now: SystemTime,
    ) -> Self {
        let step = (bucket.as_millis() as u64).max(1);
        let newest = unix_ms(now) / step;
        let rows = (0..count as u64)
            .rev()
            .map(|back| newest.saturating_sub(back))
            .map(|slot| {
                let found = buckets.iter().find(|b| unix_ms(b.start) / step == slot);
                let counts = Outcome::ALL
                    .into_iter()
                    .map(|outcome| {
                        let count = found
                            .and_then(|b| b.counts.iter().find(|(o, _)| *o == outcome))
                            .map_or(0, |(_, n)| *n);
                        (outcome.as_str(), count)
                    })
                    .collect();
                BucketView {
                    start_ms: slot * step,
                    p95_ms: found
                        .and_then(|b| b.p95_ms)
                        .map(|ms| (ms * 100.0).round() / 100.0),
                    counts,
                }
            })
            .collect();
        TimelineView {
            bucket_seconds: bucket.as_secs(),
            now_ms: unix_ms(now),
            buckets: rows,
        }
    }
}

/// How a run ended, as the `outcome` SSE event gives it.
#[derive(Debug, Serialize)]
pub(crate) struct OutcomeView {
    pub(crate) ok: bool,
    pub(crate) outcome: Outcome,
    /// `"ok"`, or the error's [`Error::kind`].
    pub(crate) kind: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<Value>,
}

impl OutcomeView {
    /// The view of a run's result; a `null` output shows as none.
    pub(crate) fn of(result: &Result<Value, Error>) -> Self {
        match result {
            Ok(output) => OutcomeView {
                ok: true,
                outcome: Outcome::Succeeded,
                kind: "ok",
                error: None,
                output: Some(output.clone()).filter(|o| !o.is_null()),
            },
            Err(error) => OutcomeView {
                ok: false,
                outcome: Outcome::of(error),
                kind: error.kind(),
                error: Some(error.to_string()),
                output: None,
            },
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A row of the workflows list: where it stands and how far it got.
#[derive(Debug, Serialize)]
pub(crate) struct WorkflowSummary {
    id: WorkflowId,
    name: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    state: &'static str,
    /// Steps ended, however they ended: with `steps_total`, the progress.
    steps_done: usize,
    steps_total: usize,
    created_at_ms: u64,
    ended_at_ms: Option<u64>,
    failed_step: Option<String>,
    error: Option<String>,
}

impl WorkflowSummary {
    pub(crate) fn of(flow: &WorkflowStatus) -> Self {
        WorkflowSummary {
            id: flow.id,
            name: flow.name.clone(),
            state: flow.state.as_str(),
            steps_done: flow.steps_done(),
            steps_total: flow.steps.len(),
            created_at_ms: unix_ms(flow.created_at),
            ended_at_ms: flow.ended_at.map(unix_ms),
            failed_step: flow.failed_step.clone(),
            error: flow.error.clone(),
        }
    }
}

/// A workflow's page: its row, and its steps in the order they were
/// declared, each with the steps it waits for (the page draws the graph
/// from those).
#[derive(Debug, Serialize)]
pub(crate) struct WorkflowDetail {
    #[serde(flatten)]
    summary: WorkflowSummary,
    steps: Vec<StepView>,
}

impl WorkflowDetail {
    pub(crate) fn of(flow: &WorkflowStatus) -> Self {
        WorkflowDetail {
            summary: WorkflowSummary::of(flow),
            steps: flow.steps.iter().map(StepView::of).collect(),
        }
    }
}

/// One step of a workflow: its run is an ordinary run, with its own page.
#[derive(Debug, Serialize)]
struct StepView {
    name: String,
    worker: String,
    run_id: RunId,
    parents: Vec<String>,
    /// `waiting` (for a parent), or its run's state: `queued`, `running`
    /// or how it ended.
    state: &'static str,
}

impl StepView {
    fn of(step: &StepStatus) -> Self {
        StepView {
            name: step.name.clone(),
            worker: step.worker.clone(),
            run_id: step.run_id,
            parents: step.parents.clone(),
            state: step.state.as_str(),
        }
    }
}
