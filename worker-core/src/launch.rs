//! How a worker's code is started: a [`Launcher`] wraps the handler behind
//! one registered name and knows its future's type, so a run spawned from
//! it keeps that future inside its task instead of boxing it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::context::WorkerContext;
use crate::drive::{RunTask, start};
use crate::error::Result;
use crate::gate::Claim;
use crate::run::Run;

/// A boxed future that ends in a `Result<()>`: what an `install()` shim
/// returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

/// A run awaited by its caller: its outcome, the output as JSON.
pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Result<Value>> + Send + 'static>>;

/// The code behind one worker name, type-erased once at registration.
///
/// Made by `register` from a closure, or by `#[worker]` from its shim; not
/// something applications build themselves.
#[derive(Clone)]
pub struct Launcher(Arc<dyn Launch>);

impl fmt::Debug for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launcher").finish_non_exhaustive()
    }
}

impl Launcher {
    /// Wraps a handler: called once per attempt with the run's context. Its
    /// output is serialized to JSON once, when the run succeeds.
    pub fn new<F, Fut, O>(handler: F) -> Launcher
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
        O: Serialize + Send + 'static,
    {
        Launcher(Arc::new(Typed(Arc::new(handler))))
    }

    /// Starts the run in a task of its own on `runtime`; the task's output
    /// is the run's outcome.
    pub(crate) fn spawn(
        &self,
        run: Arc<Run>,
        slot: Claim,
        runtime: &Handle,
    ) -> JoinHandle<Result<Value>> {
        self.0.spawn(run, slot, runtime)
    }

    /// The run to be awaited right here, by its caller.
    pub(crate) fn inline(&self, run: Arc<Run>, slot: Claim) -> RunFuture {
        self.0.inline(run, slot)
    }
}

trait Launch: Send + Sync {
    fn spawn(&self, run: Arc<Run>, slot: Claim, runtime: &Handle) -> JoinHandle<Result<Value>>;
    fn inline(&self, run: Arc<Run>, slot: Claim) -> RunFuture;
}

struct Typed<F>(Arc<F>);

impl<F, Fut, O> Typed<F>
where
    F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O>> + Send + 'static,
    O: Serialize + Send + 'static,
{
    /// The run's task, its first attempt's future made here; or, if the
    /// handler panicked making it, the run's outcome.
    fn task(
        &self,
        run: Arc<Run>,
        slot: Claim,
    ) -> std::result::Result<RunTask<F, Fut>, Result<Value>> {
        // Only a worker with retries makes more than one future; a
        // backend's run is one attempt (the backend retries).
        let retries = !run.is_durable() && run.definition().options.get_retries() > 0;
        let handler = retries.then(|| self.0.clone());
        match start(|| (self.0)(WorkerContext::new(run.clone()))) {
            Ok(work) => Ok(RunTask::new(run, slot, handler, work)),
            Err(panic) => {
                let (outcome, ending) = run.panicked(&*panic);
                run.finish(&outcome, ending);
                Err(outcome)
            }
        }
    }
}

impl<F, Fut, O> Launch for Typed<F>
where
    F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O>> + Send + 'static,
    O: Serialize + Send + 'static,
{
    fn spawn(&self, run: Arc<Run>, slot: Claim, runtime: &Handle) -> JoinHandle<Result<Value>> {
        match self.task(run, slot) {
            Ok(task) => runtime.spawn(task),
            // Rare: the handler panicked before it returned its future.
            Err(outcome) => runtime.spawn(std::future::ready(outcome)),
        }
    }

    fn inline(&self, run: Arc<Run>, slot: Claim) -> RunFuture {
        match self.task(run, slot) {
            Ok(task) => Box::pin(task),
            Err(outcome) => Box::pin(std::future::ready(outcome)),
        }
    }
}
