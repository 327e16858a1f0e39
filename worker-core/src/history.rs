//! What a dashboard reads about runs: the [`History`] trait, and the
//! shapes it answers in. A durable backend implements it over the database
//! every node shares ([`Backend::history`](crate::backend::Backend::history));
//! worker-web's in-memory journal implements it over what this process
//! saw. A dashboard reads one `History` and can't tell which.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::error::Result;
use crate::remote::BoxFuture;
use crate::run_id::RunId;
use crate::run_state::{Outcome, RunState};
use crate::workflow::WorkflowId;
use crate::workflow_status::WorkflowStatus;

/// Stored runs, the nodes that run them, their stalls and the timeline of
/// endings, for dashboards.
pub trait History: Send + Sync {
    /// Ended runs, newest first, as `query` filters them.
    fn recent(&self, query: HistoryQuery) -> BoxFuture<'_, Result<Vec<StoredRun>>>;

    /// One run, in flight or ended, with its attempts; `Ok(None)` if this
    /// history doesn't know it (never existed, or past retention).
    fn run(&self, run_id: RunId) -> BoxFuture<'_, Result<Option<StoredRun>>>;

    /// The processes that execute runs, with the runs each has in flight.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>>>;

    /// The latest stalled attempts, newest first, at most `limit` (none
    /// where a run can't stall, as in one process).
    fn stalls(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Stall>>>;

    /// Runs ended over the last `window`, counted per `bucket` by outcome,
    /// oldest first; buckets with none may be left out.
    fn timeline(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> BoxFuture<'_, Result<Vec<TimelineBucket>>>;

    /// Workflows, running ones first, then the latest ended, at most
    /// `limit`. None by default: a history that keeps no workflows.
    fn workflows(&self, limit: usize) -> BoxFuture<'_, Result<Vec<WorkflowStatus>>> {
        let _ = limit;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// One workflow with its steps; `Ok(None)` if this history doesn't
    /// know it.
    fn workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<Option<WorkflowStatus>>> {
        let _ = id;
        Box::pin(async { Ok(None) })
    }
}

/// An attempt whose node stopped renewing its lease (it crashed, was
/// paused or cut off, or was too starved to renew), for dashboards.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// The run.
    pub run_id: RunId,
    /// Its worker.
    pub worker: String,
    /// The attempt that stalled.
    pub attempt: u32,
    /// The node that held it.
    pub node: Option<String>,
    /// When the stall was found (the lease reaped).
    pub at: SystemTime,
    /// What happened, as the run page shows it.
    pub detail: Option<String>,
}

/// Which ended runs [`History::recent`] gives.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this worker's.
    pub worker: Option<String>,
    /// Only those that ended this way.
    pub outcome: Option<Outcome>,
    /// Failures (errors, timeouts, panics, stalls) first.
    pub failed_first: bool,
    /// At most this many.
    pub limit: usize,
}

/// A run waiting for its start time (`Call::delay`/`at`): what
/// [`WorkerManager::scheduled_runs`](crate::WorkerManager::scheduled_runs)
/// lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRun {
    /// Its id.
    pub run_id: RunId,
    /// The worker.
    pub worker: String,
    /// When it may start.
    pub due_at: SystemTime,
    /// Its unique key, if any.
    pub key: Option<String>,
    /// Its priority.
    pub priority: i32,
}

/// A run as a backend stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// Its id.
    pub run_id: RunId,
    /// The worker.
    pub worker: String,
    /// Queued, running, or how it ended.
    pub state: RunState,
    /// The attempt executing or last executed (1 for the first).
    pub attempt: u32,
    /// The error's text, as its handle would show it.
    pub error: Option<String>,
    /// The payload.
    pub payload: Option<Value>,
    /// The output, once it succeeded.
    pub output: Option<Value>,
    /// When it was stored.
    pub created_at: SystemTime,
    /// When its first attempt started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub ended_at: Option<SystemTime>,
    /// How long its last attempt took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The node that ran (or runs) it.
    pub node: Option<String>,
    /// Every attempt that executed and ended, oldest first, as
    /// [`History::run`] gives them; empty in [`History::recent`]'s
    /// listings, which don't read them. An attempt in flight is not among
    /// them: `state` says it is running.
    pub attempts: Vec<StoredAttempt>,
    /// How many messages it sent, if this history counts them.
    pub messages: Option<u64>,
    /// How many of its first messages this history no longer keeps (a
    /// bounded in-memory history drops the oldest).
    pub messages_dropped: u64,
    /// The last numeric `progress` field among its messages, if this
    /// history follows them.
    pub progress: Option<serde_json::Number>,
    /// Its unique key, if it has one.
    pub key: Option<String>,
    /// Its priority among runs waiting to start.
    pub priority: i32,
    /// When it may start (or might have: its latest start time); `None`
    /// where that isn't kept.
    pub due_at: Option<SystemTime>,
}

impl StoredRun {
    /// How it ended; `None` while queued or running.
    pub fn outcome(&self) -> Option<Outcome> {
        self.state.outcome()
    }
}

/// One attempt of a stored run that executed and ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttempt {
    /// Its number: 1 for the first. A number repeats when a node shutting
    /// down handed the attempt back unfinished.
    pub attempt: u32,
    /// The node that executed it.
    pub node: Option<String>,
    /// When it started, if known (an in-memory history knows only the
    /// first attempt's start).
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub ended_at: SystemTime,
    /// How it ended: `Failed`, `TimedOut` or `Panicked` for an attempt
    /// that was retried, `Stalled` for one whose node stopped renewing its
    /// lease; `None` for one handed back unfinished by a node shutting
    /// down.
    pub outcome: Option<Outcome>,
    /// Its error, as a handle would show it (for a stall: which node
    /// stopped renewing, and how late).
    pub error: Option<String>,
    /// How long it ran, in milliseconds (unknown for a stall).
    pub duration_ms: Option<f64>,
    /// How long the run waited before the next attempt, if known.
    pub retry_in: Option<Duration>,
}

/// A process sharing a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Its name: `host:pid:tag`.
    pub node: String,
    /// When it started.
    pub started_at: SystemTime,
    /// Its last heartbeat.
    pub last_heartbeat: SystemTime,
    /// Whether it executes runs (or only calls).
    pub executes: bool,
    /// The runs it executes now.
    pub running: Vec<RunId>,
}

/// Ended runs in one span of time.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineBucket {
    /// Where the span starts.
    pub start: SystemTime,
    /// How many ended, by outcome (outcomes with none left out).
    pub counts: Vec<(Outcome, u64)>,
    /// The 95th percentile of their durations, in milliseconds.
    pub p95_ms: Option<f64>,
}
