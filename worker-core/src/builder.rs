//! `Workers`, the startup builder: configure the global manager, load the
//! discovered worker files, run the application's own registrations.

use std::future::Future;
use std::time::Duration;

use crate::backend::BackendBuilder;
use crate::launch::BoxFuture;
use crate::registration::InstallRegistration;
use crate::{AppConfig, Environment, Error, Result, WorkerManager};

type Setup = Box<dyn FnOnce(WorkerManager) -> BoxFuture + Send>;

/// Starts the worker system.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use std::time::Duration;
/// use worker_core::prelude::*;
///
/// let manager = Workers::new()
///     .config(AppConfig::from_value(json!({"api": {"base_url": "http://localhost:8080"}})))
///     .grace_period(Duration::from_millis(500))
///     .auto_load() // the install() fns found by #[auto_discover]
///     .workers_from(|_manager| async move {
///         WORKER::register("long-task", |ctx| async move {
///             ctx.sleep(Duration::from_secs(60)).await; // returns early on shutdown
///             Ok(())
///         }).await?;
///         Ok(())
///     })
///     .start()
///     .await?;
///
/// let handle = WORKER::call("long-task", None, None).await?;
/// manager.shutdown().await?; // in a server: manager.shutdown_on_signal().await?
/// assert!(handle.await_result().await.unwrap_err().is_cancelled());
/// # Ok(()) }
/// ```
#[must_use = "nothing starts until `.start().await`"]
#[derive(Default)]
pub struct Workers {
    config: Option<AppConfig>,
    environment: Option<Environment>,
    grace_period: Option<Duration>,
    message_buffer: Option<usize>,
    auto_load: bool,
    setups: Vec<Setup>,
    backend: Option<Box<dyn BackendBuilder>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("config", &self.config)
            .field("environment", &self.environment)
            .field("grace_period", &self.grace_period)
            .field("message_buffer", &self.message_buffer)
            .field("auto_load", &self.auto_load)
            .field("workers_from", &self.setups.len())
            .field("backend", &self.backend.is_some())
            .finish()
    }
}

impl Workers {
    /// A builder that changes nothing until [`start`](Self::start).
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration every run sees through `ctx.config()`.
    pub fn config(mut self, config: AppConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Overrides the environment read from `RUSTF_ENV`/`NODE_ENV`.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// How long a cancelled run may go on before it is dropped.
    pub fn grace_period(mut self, grace_period: Duration) -> Self {
        self.grace_period = Some(grace_period);
        self
    }

    /// How many unread messages one run may hold for its handle.
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = Some(messages);
        self
    }

    /// Runs the `install()` fn of every worker file declared by
    /// `#[auto_discover]`, each once.
    pub fn auto_load(mut self) -> Self {
        self.auto_load = true;
        self
    }

    /// Runs `setup` with the manager during [`start`](Self::start): a
    /// closure registering workers, or `auto_workers!()`. May be given
    /// more than once; they run in order.
    pub fn workers_from<F, Fut>(mut self, setup: F) -> Self
    where
        F: FnOnce(WorkerManager) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.setups
            .push(Box::new(move |manager| Box::pin(setup(manager))));
        self
    }

    /// Runs the workers durably, on many machines: `call` and `run` store
    /// each run in `backend` (a `worker_postgres::Postgres`, say), any
    /// process with the same workers may execute it, and a crash loses
    /// nothing. `start` connects and prepares the backend, and fails if it
    /// can't. Workers declared `local` still run in-process.
    ///
    /// ```no_run
    /// # async fn doc(backend: impl worker_core::backend::BackendBuilder) -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = Workers::new().backend(backend).start().await?;
    /// WORKER::call("generate-report", None, None).await?; // durable; any node may run it
    /// # Ok(()) }
    /// ```
    pub fn backend(mut self, backend: impl BackendBuilder) -> Self {
        self.backend = Some(Box::new(backend));
        self
    }

    /// Configures the global manager, then loads workers: the `#[worker]`
    /// fns (already there), starts the backend if there is one, then the
    /// auto-discovered files and the `workers_from` setups. Every step runs
    /// even if one fails; the error lists every failed worker file. A
    /// backend that can't start is an error at once. Returns the global
    /// manager.
    pub async fn start(self) -> Result<WorkerManager> {
        let manager = WorkerManager::global().clone();
        if let Some(config) = self.config {
            manager.set_config(config);
        }
        if let Some(environment) = self.environment {
            manager.set_environment(environment);
        }
        if let Some(grace_period) = self.grace_period {
            manager.set_grace_period(grace_period);
        }
        if let Some(messages) = self.message_buffer {
            manager.set_message_buffer(messages);
        }
        let mut errors = Vec::new();
        if let Err(error) = manager.register_declared() {
            errors.push(error);
        }
        // Before the setups, so that workers they register with a schedule
        // tick through the backend too.
        if let Some(backend) = self.backend {
            manager.start_backend(backend).await?;
        }
        if self.auto_load {
            let discovered = inventory::iter::<InstallRegistration>.into_iter();
            if let Err(error) = manager.install_files(discovered).await {
                errors.push(error);
            }
        }
        for setup in self.setups {
            if let Err(error) = setup(manager.clone()).await {
                errors.push(error);
            }
        }
        // Scheduled #[worker] fns and auto-loaded ones tick on the runtime
        // that starts the workers.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            manager.start_timers(&runtime);
        }
        match merge(errors) {
            None => Ok(manager),
            Some(error) => Err(error),
        }
    }
}

/// One error for `start`: failed files from every step in one list, or the
/// first other error.
fn merge(errors: Vec<Error>) -> Option<Error> {
    let mut failures = Vec::new();
    let mut other = None;
    for error in errors {
        match error {
            Error::Install(mut more) => failures.append(&mut more),
            error => {
                other.get_or_insert(error);
            }
        }
    }
    other.or_else(|| (!failures.is_empty()).then_some(Error::Install(failures)))
}
