//! Durable backends: where runs go when they must outlive a process and be
//! shared by many. worker-core defines the contract and knows no database;
//! `worker-postgres` implements it.
//!
//! With a backend ([`Workers::backend`](crate::Workers::backend)), `call`
//! and `run` of a worker that isn't `local` hand the run to the backend,
//! which stores it and gives back a handle ([`RemoteRun`]) that reads its
//! messages and outcome from wherever it executes. The backend executes the
//! runs it claims through the [`Node`] it is given at start: one attempt at
//! a time, in this process, with the run's own id and attempt number, as an
//! ordinary local run (timeouts, cancellation, the concurrency limit and
//! the message bound all apply); retries and crash recovery are the
//! backend's.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::error::Result;
use crate::handle::WorkerHandle;
use crate::observe::Outcome;
use crate::options::WorkerOptions;
pub use crate::remote::{BoxFuture, RemoteRun};
use crate::run_id::RunId;
use crate::run_state::RunState;
use crate::stats::WorkerStats;

/// Where durable runs live. Implemented by `worker_postgres::Postgres`.
///
/// Every method but [`start`](Backend::start) is called only after `start`
/// returned `Ok`.
pub trait Backend: Send + Sync + 'static {
    /// Connects, prepares its storage, and begins executing runs of
    /// `node`'s workers (unless it only calls). Called once, by
    /// [`Workers::start`](crate::Workers::start).
    fn start(&self, node: Node) -> BoxFuture<'_, Result<()>>;

    /// Stores a run and returns once it is committed.
    fn call(
        &self,
        worker: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>>;

    /// A handle on a stored run, from its first message.
    fn attach(&self, run_id: RunId) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>>;

    /// Cancels a run wherever it is, and returns once it has ended.
    fn cancel(&self, run_id: RunId) -> BoxFuture<'_, Result<()>>;

    /// The ids of runs in flight anywhere, of one worker or all.
    fn running(&self, worker: Option<&str>) -> BoxFuture<'_, Result<Vec<RunId>>>;

    /// A worker's statistics, summed over every node.
    fn stats(&self, worker: &str) -> BoxFuture<'_, Result<Option<WorkerStats>>>;

    /// A scheduled worker's tick due `at`: starts its run, once in the
    /// whole cluster however many nodes tick.
    fn tick(&self, worker: &str, at: SystemTime) -> BoxFuture<'_, Result<()>>;

    /// This process's part stops: no more claims; runs in flight get
    /// `grace`, and those that don't end by then go back to the queue.
    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, Result<()>>;

    /// For dashboards: ended runs, newest first, as `query` filters them.
    /// `Ok(None)` (the default) if the backend keeps no history.
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<Option<Vec<StoredRun>>>> {
        let _ = query;
        Box::pin(async { Ok(None) })
    }

    /// For dashboards: one stored run, in flight or ended; `Ok(None)` if
    /// unknown (or no history is kept).
    fn stored_run(&self, run_id: RunId) -> BoxFuture<'_, Result<Option<StoredRun>>> {
        let _ = run_id;
        Box::pin(async { Ok(None) })
    }

    /// For dashboards: the processes sharing the backend; `Ok(None)` if it
    /// doesn't know them.
    fn nodes(&self) -> BoxFuture<'_, Result<Option<Vec<NodeInfo>>>> {
        Box::pin(async { Ok(None) })
    }

    /// For dashboards: the latest stalled attempts, newest first, at most
    /// `limit`; `Ok(None)` if the backend keeps none.
    fn recent_stalls(&self, limit: usize) -> BoxFuture<'_, Result<Option<Vec<Stall>>>> {
        let _ = limit;
        Box::pin(async { Ok(None) })
    }

    /// For dashboards: ended runs of the last `window` per `bucket`, by
    /// outcome, with each bucket's p95 duration; `Ok(None)` if no history
    /// is kept.
    fn timeline(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> BoxFuture<'_, Result<Option<Vec<TimelineBucket>>>> {
        let _ = (window, bucket);
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

/// Which ended runs [`Backend::history`] gives.
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
    /// [`Backend::stored_run`] gives them; empty in
    /// [`Backend::history`]'s listings, which don't read them.
    pub attempts: Vec<StoredAttempt>,
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
    /// When it started.
    pub started_at: SystemTime,
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

/// A run a backend claimed for this process: what [`Node::execute`] needs.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// Its id, kept across attempts and nodes.
    pub run_id: RunId,
    /// The worker.
    pub worker: String,
    /// The payload it was called with.
    pub payload: Option<Value>,
    /// Which attempt this is: 1 for the first; one more after each retry or
    /// crash.
    pub attempt: u32,
    /// Its timeout, if the caller set one (else the worker's).
    pub timeout: Option<Duration>,
}

/// This process, as a backend sees it: the workers it can execute and the
/// way to execute one attempt of a run.
#[derive(Clone)]
pub struct Node {
    pub(crate) executor: std::sync::Arc<dyn Executor>,
}

/// What a [`Node`] asks of its manager (implemented by `WorkerManager`, one
/// layer up, so that this module needn't know it).
pub(crate) trait Executor: Send + Sync + 'static {
    fn durable_workers(&self) -> Vec<String>;
    fn options(&self, worker: &str) -> Option<WorkerOptions>;
    fn grace_period(&self) -> Duration;
    fn execute_claimed(&self, run: ClaimedRun) -> Result<WorkerHandle>;
    fn cancel_local(&self, run_id: RunId) -> BoxFuture<'static, Result<()>>;
    fn is_shutting_down(&self) -> bool;
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// The workers registered here that go through the backend (all but
    /// `local` ones), sorted.
    pub fn workers(&self) -> Vec<String> {
        self.executor.durable_workers()
    }

    /// A registered worker's options.
    pub fn options(&self, worker: &str) -> Option<WorkerOptions> {
        self.executor.options(worker)
    }

    /// How long a cancelled run may go on cleaning up.
    pub fn grace_period(&self) -> Duration {
        self.executor.grace_period()
    }

    /// Executes one attempt of `run` here, as a local run with its id and
    /// attempt number, and returns its handle: read its messages with
    /// `recv`, then its outcome with `await_result`/`await_output`. A
    /// failed attempt is not retried here: the backend decides
    /// ([`WorkerOptions::retry_delay`]).
    pub fn execute(&self, run: ClaimedRun) -> Result<WorkerHandle> {
        self.executor.execute_claimed(run)
    }

    /// Stops the attempt of `run_id` executing here (its
    /// `ctx.cancelled()` fires; the grace period applies) and waits until it
    /// has ended. Its handle's outcome is then a cancellation.
    pub fn cancel_local(&self, run_id: RunId) -> BoxFuture<'static, Result<()>> {
        self.executor.cancel_local(run_id)
    }

    /// Whether this process is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.executor.is_shutting_down()
    }
}
