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
//! backend's. So are the cluster-wide limits (`global_concurrency`,
//! `rate`, `key_concurrency`, `key_rate`): the backend applies them when
//! it claims, and the node holds a claimed run to its local `concurrency`
//! only, so that no start is counted twice.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use std::sync::Arc;

pub use crate::call::{Resolved, Start};
use crate::error::{Error, Result};
use crate::handle::WorkerHandle;
pub use crate::history::{
    History, HistoryQuery, NodeInfo, ScheduledRun, Stall, StoredAttempt, StoredRun, TimelineBucket,
};
use crate::options::WorkerOptions;
pub use crate::remote::{BoxFuture, RemoteRun, RemoteWorkflow};
use crate::run_id::RunId;
use crate::stats::WorkerStats;
pub use crate::workflow::{Plan, PlannedStep, WorkflowId};
pub use crate::workflow_log::{WorkflowEnd, WorkflowLog};

/// A backend before it starts: its settings. What
/// [`Workers::backend`](crate::Workers::backend) takes;
/// `worker_postgres::Postgres` is one.
pub trait BackendBuilder: Send + Sync + 'static {
    /// Connects, prepares its storage, begins executing runs of `node`'s
    /// workers (unless it only calls), and gives back the started
    /// [`Backend`]. Called once, by [`Workers::start`](crate::Workers::start).
    fn start(self: Box<Self>, node: Node) -> BoxFuture<'static, Result<Arc<dyn Backend>>>;
}

/// A started backend: where durable runs live, for one process.
pub trait Backend: Send + Sync + 'static {
    /// Stores a run and returns once it is committed.
    fn call(
        &self,
        worker: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>>;

    /// Stores a run with per-call options (a start time, a unique key, a
    /// priority: see [`Resolved`]) and returns once it is committed; a
    /// duplicate key is answered as `call.on_duplicate` says, enforced by
    /// the storage, not by a read before the write.
    fn call_with(&self, worker: &str, call: Resolved) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>>;

    /// Stores many runs of one worker in one commit, all or nothing, and
    /// gives their ids in order.
    fn call_many(&self, worker: &str, calls: Vec<Resolved>) -> BoxFuture<'_, Result<Vec<RunId>>>;

    /// The runs waiting for their start time, soonest first, of one
    /// worker or all.
    fn scheduled(&self, worker: Option<&str>) -> BoxFuture<'_, Result<Vec<ScheduledRun>>>;

    /// Pauses or resumes a worker in the whole cluster.
    fn set_paused(&self, worker: &str, paused: bool) -> BoxFuture<'_, Result<()>>;

    /// Whether a worker is paused in the cluster.
    fn is_paused(&self, worker: &str) -> BoxFuture<'_, Result<bool>>;

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

    /// Stores a workflow's whole graph in one commit, every step a durable
    /// run, and returns once it is committed; its steps then start as
    /// their parents succeed, on any node, whether or not the caller is
    /// still there. The default refuses: a backend without workflows.
    fn start_workflow(&self, plan: Plan) -> BoxFuture<'_, Result<Box<dyn RemoteWorkflow>>> {
        Box::pin(async move {
            Err(Error::validation(format!(
                "workflow '{}' has durable steps, and this backend does not run workflows; mark its workers `local` to run it in this process",
                plan.name
            )))
        })
    }

    /// A handle on a stored workflow, replaying from its first event.
    fn attach_workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<Box<dyn RemoteWorkflow>>> {
        Box::pin(async move {
            Err(Error::validation(format!(
                "can't attach to workflow {id}: this backend does not run workflows"
            )))
        })
    }

    /// What a dashboard reads: stored runs, nodes, stalls and the
    /// timeline, over every node. `None` (the default) if the backend
    /// keeps no history.
    fn history(&self) -> Option<&dyn History> {
        None
    }
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
    /// Its priority: orders it among runs waiting here for a concurrency
    /// slot.
    pub priority: i32,
    /// For a workflow's step: which, and its parents' outputs.
    pub step: Option<ClaimedStep>,
}

/// The step of a stored workflow that a claimed run is: what
/// `ctx.workflow_id()`, `ctx.step()` and `ctx.parent_output()` read.
#[derive(Debug, Clone)]
pub struct ClaimedStep {
    /// The workflow's id.
    pub workflow_id: WorkflowId,
    /// The step's name.
    pub name: String,
    /// Its parents' outputs, as the backend stored them when it released
    /// the step: `{"parent": {"worker": "…", "output": …}}`.
    pub inputs: Value,
}

/// This process, as a backend sees it: the workers it can execute and the
/// way to execute one attempt of a run.
#[derive(Clone)]
pub struct Node {
    pub(crate) executor: Arc<dyn Executor>,
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
    /// ([`WorkerOptions::retry_delay`]). It waits here for a slot of the
    /// worker's local `concurrency` (and while it is paused in this
    /// process), not for its cluster-wide limits: the claim applied those.
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
