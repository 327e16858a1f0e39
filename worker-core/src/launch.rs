//! How a worker's code is started: a [`Launcher`] wraps the handler behind
//! one registered name and knows its future's type, so a run spawned from
//! it keeps that future inside its task instead of boxing it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::context::WorkerContext;
use crate::drive::{RunTask, end_panicked, start};
use crate::error::Result;
use crate::run::Run;

/// A boxed future that ends in a `Result<()>`: what `run()` awaits, and
/// what an `install()` shim returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

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
    /// Wraps a handler: called once per run with the run's context.
    pub fn new<F, Fut>(handler: F) -> Launcher
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Launcher(Arc::new(Typed(handler)))
    }

    /// Starts the run in a task of its own on `runtime`; the task's output
    /// is the run's outcome.
    pub(crate) fn spawn(&self, run: Arc<Run>, runtime: &Handle) -> JoinHandle<Result<()>> {
        self.0.spawn(run, runtime)
    }

    /// The run to be awaited right here, by its caller.
    pub(crate) fn inline(&self, run: Arc<Run>) -> BoxFuture {
        self.0.inline(run)
    }
}

trait Launch: Send + Sync {
    fn spawn(&self, run: Arc<Run>, runtime: &Handle) -> JoinHandle<Result<()>>;
    fn inline(&self, run: Arc<Run>) -> BoxFuture;
}

struct Typed<F>(F);

impl<F, Fut> Launch for Typed<F>
where
    F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    fn spawn(&self, run: Arc<Run>, runtime: &Handle) -> JoinHandle<Result<()>> {
        match start(|| (self.0)(WorkerContext::new(run.clone()))) {
            Ok(work) => runtime.spawn(RunTask::new(run, work)),
            // Rare: the handler panicked before it returned its future.
            Err(panic) => runtime.spawn(std::future::ready(end_panicked(&run, &*panic))),
        }
    }

    fn inline(&self, run: Arc<Run>) -> BoxFuture {
        match start(|| (self.0)(WorkerContext::new(run.clone()))) {
            Ok(work) => Box::pin(RunTask::new(run, work)),
            Err(panic) => Box::pin(std::future::ready(end_panicked(&run, &*panic))),
        }
    }
}
