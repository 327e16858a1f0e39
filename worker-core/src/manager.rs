//! The manager: definitions by name, runs in flight, settings, shutdown.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::backend::{Backend, BackendBuilder, ClaimedRun, Executor, History, Node, ScheduledRun};
use crate::call::{Call, Duplicate, Resolved};
use crate::config::{AppConfig, Environment, Settings};
use crate::context::WorkerContext;
use crate::definition::Definition;
use crate::drive::catch_panic;
use crate::error::{Error, InstallFailure, Result, panic_text};
use crate::gate::{Claim, Limits};
use crate::handle::WorkerHandle;
use crate::job::{Due, Job, Waits};
use crate::launch::Launcher;
use crate::limits::limit_key;
use crate::local_flow::FlowRegistry;
use crate::options::WorkerOptions;
use crate::registration::{InstallRegistration, WorkerRegistration};
use crate::run::{Run, Scope, Spec};
use crate::run_id::RunId;
use crate::running::RunningSet;
use crate::signal::Signal;
use crate::stats::WorkerStats;
use crate::step::StepOf;
use crate::sync::lock;
use crate::workflow::Plan;

/// A worker manager: registers definitions, starts runs, lists them, counts
/// them and shuts them down. A cheap `Clone` handle; clones share one manager.
///
/// [`WORKER`](crate::WORKER) is the process-global one
/// ([`WorkerManager::global`]); [`WorkerManager::new`] makes an independent,
/// empty one for tests and libraries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("noop", |_ctx| async { Ok(()) }).await?;
/// manager.run("noop", None).await?;
/// assert_eq!(manager.definitions().await?, ["noop"]);
/// assert_eq!(manager.stats("noop").await.unwrap().runs, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WorkerManager {
    shared: Arc<Shared>,
}

struct Shared {
    definitions: RwLock<HashMap<Box<str>, Entry>>,
    running: Arc<RunningSet<Run>>,
    /// Jobs (runs with a key or a start time) that have not started.
    pending: Arc<RunningSet<Run>>,
    settings: RwLock<Arc<Settings>>,
    /// Bumped after every change to `definitions` or `settings`: a thread's
    /// [`View`] of an older generation is rebuilt before it is used.
    generation: AtomicU64,
    shutting_down: AtomicBool,
    /// The timers of scheduled workers, by name; stopped by `shutdown`.
    timers: Mutex<HashMap<Box<str>, tokio::task::AbortHandle>>,
    /// Absolute paths of worker files whose `install()` has run.
    installed: Mutex<HashSet<&'static str>>,
    /// Where durable runs go, once `attach_backend` has started it.
    backend: OnceLock<Arc<dyn Backend>>,
    /// Workflows run by this process (each ended one moves itself to the
    /// registry's recent ones, through a weak reference).
    workflows: Arc<Mutex<FlowRegistry>>,
}

/// One registered worker: what its runs read, and the code that runs it.
struct Entry {
    definition: Arc<Definition>,
    launcher: Launcher,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerManager").finish_non_exhaustive()
    }
}

impl fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerManager")
            .field("running", &self.shared.running.len())
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

impl Default for WorkerManager {
    fn default() -> Self {
        Self::new()
    }
}

static GLOBAL: OnceLock<WorkerManager> = OnceLock::new();

impl WorkerManager {
    /// An independent manager with no definitions. Call
    /// [`register_declared`](Self::register_declared) to load the
    /// `#[worker]` fns into it.
    ///
    /// Each thread that starts runs keeps a small copy of the definitions
    /// and settings of the manager it used last, so that runs on different
    /// cores share no counters. So a dropped manager is freed once every
    /// thread that used it has used another one, or has ended.
    pub fn new() -> Self {
        WorkerManager {
            shared: Arc::new(Shared {
                definitions: RwLock::default(),
                running: Arc::new(RunningSet::new()),
                pending: Arc::new(RunningSet::new()),
                settings: RwLock::new(Arc::new(Settings::default())),
                generation: AtomicU64::new(0),
                shutting_down: AtomicBool::new(false),
                timers: Mutex::default(),
                installed: Mutex::default(),
                backend: OnceLock::new(),
                workflows: Arc::default(),
            }),
        }
    }

    /// The process-global manager behind [`WORKER`](crate::WORKER). Every
    /// `#[worker]` fn linked into the program is registered in it before it
    /// is first returned, so a declared worker is never "not registered".
    /// It holds no task or timer of its own: any tokio runtime can use it,
    /// one after another or at once.
    pub fn global() -> &'static WorkerManager {
        GLOBAL.get_or_init(|| {
            let manager = WorkerManager::new();
            if let Err(error) = manager.register_declared() {
                // `Workers::start` reports this again as its error.
                log::error!(target: "worker", "{error}");
            }
            manager
        })
    }

    /// Registers a worker under `name`. Names are non-empty, without
    /// whitespace or control characters; a name can be registered once.
    pub async fn register<F, Fut>(&self, name: impl Into<String>, handler: F) -> Result<()>
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.register_with(name, WorkerOptions::new(), handler)
            .await
    }

    /// Registers a worker with its run policy: timeout, retries with
    /// backoff, concurrency and queue limits (see [`WorkerOptions`]). The
    /// handler may return any `Result<T>` with `T: Serialize`; the output
    /// is serialized once and read back with
    /// [`WorkerHandle::await_output`].
    ///
    /// Options that don't fit together are an error that
    /// [`is_validation`](Error::is_validation) and names the worker;
    /// nothing is registered then.
    pub async fn register_with<F, Fut, O>(
        &self,
        name: impl Into<String>,
        options: WorkerOptions,
        handler: F,
    ) -> Result<()>
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
        O: serde::Serialize + Send + 'static,
    {
        let definition = Definition::new(name.into(), options, None)?;
        self.insert(definition.clone(), Launcher::new(handler))?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.start_timer(definition, &runtime);
        }
        Ok(())
    }

    /// Starts the timer of every scheduled worker that has none yet, on
    /// `runtime` (what `Workers::start` does for the `#[worker]` fns).
    pub(crate) fn start_timers(&self, runtime: &tokio::runtime::Handle) {
        let scheduled: Vec<Arc<Definition>> = self
            .shared
            .definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|entry| entry.definition.schedule.is_some())
            .map(|entry| entry.definition.clone())
            .collect();
        for definition in scheduled {
            self.start_timer(definition, runtime);
        }
    }

    fn start_timer(&self, definition: Arc<Definition>, runtime: &tokio::runtime::Handle) {
        if self.is_shutting_down() {
            return;
        }
        let mut timers = lock(&self.shared.timers);
        if timers.contains_key(&definition.name) {
            return;
        }
        let name = definition.name.clone();
        let manager = self.clone();
        // With a backend, each tick is the backend's, which runs it once in
        // the whole cluster.
        let backend = (!definition.options.is_local())
            .then(|| self.shared.backend.get().cloned())
            .flatten();
        let aligned = backend.is_some();
        let start_run = move |at: std::time::SystemTime| {
            let (manager, name, backend) = (manager.clone(), name.clone(), backend.clone());
            async move {
                match backend {
                    Some(backend) => backend.tick(&name, at).await,
                    None => manager.run(&name, None).await,
                }
            }
        };
        if let Some(timer) =
            crate::scheduler::start(definition.clone(), runtime, aligned, start_run)
        {
            timers.insert(definition.name.clone(), timer);
        }
    }

    /// Like [`register`](Self::register), with a default timeout for runs
    /// that don't set their own.
    pub async fn register_with_timeout<F, Fut>(
        &self,
        name: impl Into<String>,
        timeout: Option<Duration>,
        handler: F,
    ) -> Result<()>
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let options = match timeout {
            Some(timeout) => WorkerOptions::new().timeout(timeout),
            None => WorkerOptions::new(),
        };
        self.register_with(name, options, handler).await
    }

    fn insert(&self, definition: Arc<Definition>, launcher: Launcher) -> Result<()> {
        let mut definitions = self
            .shared
            .definitions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = definitions.get(&definition.name) {
            return Err(Error::AlreadyRegistered {
                name: definition.name.to_string(),
                existing: existing.definition.origin.clone(),
            });
        }
        let entry = Entry {
            definition,
            launcher,
        };
        definitions.insert(entry.definition.name.clone(), entry);
        self.shared.generation.fetch_add(1, SeqCst);
        Ok(())
    }

    /// Registers every `#[worker]` fn linked into the program (the global
    /// manager does this by itself). Calling it again is harmless. Two
    /// declarations of one name in different places register neither and
    /// return an error naming both; one file compiled into two modules
    /// counts once. Returns how many definitions it added.
    pub fn register_declared(&self) -> Result<usize> {
        let mut declared: Vec<&'static WorkerRegistration> =
            inventory::iter::<WorkerRegistration>.into_iter().collect();
        declared.sort_by_key(|r| (r.name, r.line, r.file));
        let mut added = 0;
        let mut first_error = None;
        for same_name in declared.chunk_by(|a, b| a.name == b.name) {
            let first = same_name[0];
            if let Some(other) = same_name.iter().find(|r| !same_place(first, r)) {
                let error = Error::DuplicateDeclaration {
                    name: first.name.to_owned(),
                    first: origin(first),
                    second: origin(other),
                };
                log::error!(target: "worker", "{error}");
                first_error.get_or_insert(error);
                continue;
            }
            let definition = Definition::new(
                first.name.to_owned(),
                (first.options)(),
                Some(origin(first)),
            )?;
            match self.insert(definition, (first.launcher)()) {
                Ok(()) => added += 1,
                Err(Error::AlreadyRegistered {
                    existing: Some(at), ..
                }) if at == origin(first) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(added), Err)
    }

    /// Runs each discovered file's `install()` once per manager, in file
    /// order; a failure doesn't stop the others and all are reported together.
    pub(crate) async fn install_files(
        &self,
        files: impl Iterator<Item = &'static InstallRegistration>,
    ) -> Result<()> {
        let mut files: Vec<_> = files.collect();
        files.sort_by_key(|f| f.file);
        let mut failures = Vec::new();
        for file in files {
            if !lock(&self.shared.installed).insert(file.path) {
                continue;
            }
            let error = match catch_panic((file.install)()).await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panic) => Error::msg(format!("install() panicked: {}", panic_text(&*panic))),
            };
            failures.push(InstallFailure {
                file: file.file.to_owned(),
                error,
            });
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Install(failures))
        }
    }

    /// Starts a run and returns its handle at once; the run goes on in its
    /// own tokio task. `timeout` overrides the worker's default timeout.
    /// The run is listed in [`running`](Self::running) before this returns.
    pub async fn call(
        &self,
        worker_name: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> Result<WorkerHandle> {
        let runtime = runtime_for(worker_name)?;
        let target = self.target(worker_name);
        // Keyed by its payload: the job path, in both modes.
        if target.is_unique() {
            drop(target);
            let mut call = Call::new();
            call.payload = payload;
            call.timeout = timeout;
            return self.call_with(worker_name, call).await;
        }
        if let Some(backend) = self.backend_for(worker_name)? {
            return backend
                .call(worker_name, timeout, payload)
                .await
                .map(WorkerHandle::remote);
        }
        let (view, index, run, slot) = self.admit(target, timeout, payload, true, None, None)?;
        let task = view.launchers[index as usize].spawn(run.clone(), slot, &runtime);
        Ok(WorkerHandle::new(run, task))
    }

    /// A worker as this thread's view finds it, looked up once per call.
    fn target<'a>(&self, worker_name: &'a str) -> Target<'a> {
        let view = self.view();
        let index = view.by_name.get(worker_name).copied();
        Target {
            view,
            index,
            name: worker_name,
        }
    }

    /// Starts a run with per-call options (see [`Call`]): a payload of any
    /// `Serialize` type, a timeout, a start time (`delay`/`at`), a unique
    /// key with what to do on a duplicate, a priority. Returns its handle,
    /// as [`call`](Self::call) does; a `Duplicate::Join` gives a handle on
    /// the run that has the key.
    ///
    /// In this process, a run waiting for its time is listed by
    /// [`scheduled`](Self::scheduled), not [`running`](Self::running);
    /// [`cancel`](Self::cancel) ends it at once; it is lost if the process
    /// exits (`shutdown` cancels and counts it). Priority orders the runs
    /// waiting for a concurrency slot, for room under the worker's limits
    /// (`global_concurrency`, `rate`, `key_concurrency`, `key_rate`) or for
    /// `resume`: a worker with none of these starts every due run at once,
    /// so priority changes nothing there. A backend stores all of it and
    /// orders its claims by priority across workers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register("sync", |_ctx| async { Ok(()) }).await?;
    /// let first = manager.call_with("sync", Call::new().key("account:7")
    ///     .delay(std::time::Duration::from_millis(20))).await?;
    /// let joined = manager.call_with("sync", Call::new().key("account:7")).await?;
    /// assert_eq!(joined.id(), first.id()); // one run, two handles
    /// let rejected = manager.call_with("sync", Call::new().key("account:7")
    ///     .on_duplicate(Duplicate::Reject)).await.unwrap_err();
    /// assert!(rejected.is_duplicate());
    /// first.await_result().await?;
    /// joined.await_result().await?;
    /// assert_eq!(manager.stats("sync").await.unwrap().runs, 1);
    /// # Ok(()) }
    /// ```
    pub async fn call_with(&self, worker_name: &str, call: Call) -> Result<WorkerHandle> {
        let runtime = runtime_for(worker_name)?;
        let call = self.resolve(worker_name, call)?;
        if let Some(backend) = self.backend_for(worker_name)? {
            return backend
                .call_with(worker_name, call)
                .await
                .map(WorkerHandle::remote);
        }
        if call.key.is_none() && call.start.is_none() {
            let (view, index, run, slot) = self.admit(
                self.target(worker_name),
                call.timeout,
                call.payload,
                true,
                None,
                Some(call.priority),
            )?;
            let task = view.launchers[index as usize].spawn(run.clone(), slot, &runtime);
            return Ok(WorkerHandle::new(run, task));
        }
        let (view, index) = self.view_of(worker_name)?;
        let definition = view.scope.definitions[index as usize].clone();
        let mut keys = lock(&definition.keys);
        self.enqueue_job(&view, index, &mut keys, call, &runtime)
    }

    /// Stores many runs of one worker at once and returns their ids, in
    /// the order of `calls` (a `Duplicate::Join` gives the existing run's
    /// id). All or nothing: an invalid call, or a `Duplicate::Reject` that
    /// finds its key taken (also by an earlier call of the batch), fails
    /// the batch before any run is stored. In durable mode the batch is
    /// one statement and one commit.
    ///
    /// In this process the batch's runs are not refused by `queue_limit`:
    /// they wait at the worker's gate like retries.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register("send-email", |_ctx| async { Ok(()) }).await?;
    /// let calls = (0..3).map(|n| Call::new().payload(json!({"n": n})));
    /// let ids = manager.call_many("send-email", calls).await?;
    /// assert_eq!(ids.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn call_many(
        &self,
        worker_name: &str,
        calls: impl IntoIterator<Item = Call>,
    ) -> Result<Vec<String>> {
        let runtime = runtime_for(worker_name)?;
        let calls = calls
            .into_iter()
            .map(|call| self.resolve(worker_name, call))
            .collect::<Result<Vec<Resolved>>>()?;
        if let Some(backend) = self.backend_for(worker_name)? {
            let ids = backend.call_many(worker_name, calls).await?;
            return Ok(ids.iter().map(RunId::to_string).collect());
        }
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let (view, index) = self.view_of(worker_name)?;
        let definition = view.scope.definitions[index as usize].clone();
        let mut keys = lock(&definition.keys);
        let mut batch_keys = HashSet::new();
        for call in &calls {
            let Some(key) = &call.key else { continue };
            let taken = keys.get(key.as_str()).map(RunId::to_string);
            let earlier = !batch_keys.insert(key.as_str());
            if call.on_duplicate == Duplicate::Reject && (taken.is_some() || earlier) {
                return Err(Error::Duplicate {
                    worker: worker_name.to_owned(),
                    key: key.clone(),
                    run_id: taken.unwrap_or_else(|| "of an earlier call in this batch".to_owned()),
                });
            }
        }
        calls
            .into_iter()
            .map(|call| {
                let handle = self.enqueue_job(&view, index, &mut keys, call, &runtime)?;
                Ok(handle.id().to_owned())
            })
            .collect()
    }

    /// The ids of runs waiting for their start time, soonest first: of one
    /// worker, or of all (`None`). In durable mode, over the cluster.
    pub async fn scheduled(&self, worker_name: Option<&str>) -> Result<Vec<String>> {
        let runs = self.scheduled_runs(worker_name).await?;
        Ok(runs.iter().map(|run| run.run_id.to_string()).collect())
    }

    /// The runs waiting for their start time, soonest first, with their
    /// time, key and priority (what a dashboard shows): of one worker or of
    /// all. In durable mode, over the cluster (at most 10,000).
    pub async fn scheduled_runs(&self, worker_name: Option<&str>) -> Result<Vec<ScheduledRun>> {
        let mut runs = Vec::new();
        let mut local_only = false;
        if let Some(name) = worker_name {
            let definition = self
                .definition(name)
                .ok_or_else(|| Error::NotRegistered(name.to_owned()))?;
            local_only = definition.options.is_local();
        }
        if let (Some(backend), false) = (self.shared.backend.get(), local_only) {
            runs.extend(backend.scheduled(worker_name).await?);
            if worker_name.is_some() {
                return Ok(runs);
            }
        }
        let durable = self.shared.backend.get().is_some();
        let mut waiting: Vec<ScheduledRun> = self
            .shared
            .pending
            .snapshot()
            .iter()
            .filter(|run| worker_name.is_none_or(|name| run.worker_name() == name))
            .filter(|run| !durable || run.definition().options.is_local())
            .filter_map(|run| {
                let job = run.job()?;
                Some(ScheduledRun {
                    run_id: run.id,
                    worker: run.worker_name().to_owned(),
                    due_at: job.waits_until()?,
                    key: job.key.as_deref().map(str::to_owned),
                    priority: job.priority(),
                })
            })
            .collect();
        waiting.sort_by_key(|run| run.due_at);
        runs.extend(waiting);
        Ok(runs)
    }

    /// Pauses a worker: its queued runs wait (also scheduled runs that come
    /// due), calls are still accepted and wait too, runs already executing
    /// go on; its schedule (`every`, `cron`) skips its ticks, counted in
    /// `skipped`. In durable mode the pause is stored and holds on every
    /// node within a second. [`resume`](Self::resume) starts the waiting
    /// runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register("send-email", |_ctx| async { Ok(()) }).await?;
    /// manager.pause("send-email").await?;
    /// let handle = manager.call("send-email", None, None).await?;
    /// assert!(manager.is_paused("send-email").await?);
    /// assert_eq!(manager.stats("send-email").await.unwrap().queued, 1);
    /// manager.resume("send-email").await?;
    /// handle.await_result().await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(&self, worker_name: &str) -> Result<()> {
        self.set_paused(worker_name, true).await
    }

    /// Resumes a paused worker: its waiting runs start, by priority.
    pub async fn resume(&self, worker_name: &str) -> Result<()> {
        self.set_paused(worker_name, false).await
    }

    /// Whether a worker is paused (in durable mode, in the cluster).
    pub async fn is_paused(&self, worker_name: &str) -> Result<bool> {
        let definition = self
            .definition(worker_name)
            .ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        match self.shared.backend.get() {
            Some(backend) if !definition.options.is_local() => backend.is_paused(worker_name).await,
            _ => Ok(definition.gate.is_paused()),
        }
    }

    async fn set_paused(&self, worker_name: &str, paused: bool) -> Result<()> {
        let definition = self
            .definition(worker_name)
            .ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        match self.shared.backend.get() {
            Some(backend) if !definition.options.is_local() => {
                backend.set_paused(worker_name, paused).await
            }
            _ => {
                definition.gate.set_paused(paused);
                Ok(())
            }
        }
    }

    /// A call with the worker's defaults applied; an unknown worker or an
    /// invalid call is refused before anything is stored.
    pub(crate) fn resolve(&self, worker_name: &str, call: Call) -> Result<Resolved> {
        let definition = self
            .definition(worker_name)
            .ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        call.resolve(worker_name, &definition.options)
    }

    /// This thread's view and the worker's index in it.
    fn view_of(&self, worker_name: &str) -> Result<(Arc<View>, u32)> {
        let Target { view, index, .. } = self.target(worker_name);
        let index = index.ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        Ok((view, index))
    }

    /// Stores a job (a run with a key or a start time) in this process, or
    /// answers its duplicate; `keys` is its worker's, locked, so that the
    /// check and the store are one step.
    fn enqueue_job(
        &self,
        view: &View,
        index: u32,
        keys: &mut HashMap<Box<str>, RunId>,
        call: Resolved,
        runtime: &tokio::runtime::Handle,
    ) -> Result<WorkerHandle> {
        let definition = &view.scope.definitions[index as usize];
        let due = call.start.map(Due::of);
        if let Some(key) = &call.key {
            if let Some(&existing) = keys.get(key.as_str()) {
                return self.duplicate(&definition.name, key, existing, call.on_duplicate, || {
                    Waits {
                        payload: call.payload.clone(),
                        priority: call.priority,
                        limit_key: call.limit_key.clone(),
                        due,
                    }
                });
            }
        }
        let waits = Waits {
            payload: call.payload,
            priority: call.priority,
            limit_key: call.limit_key,
            due,
        };
        let job = Job::new(call.key.clone(), waits);
        let timeout = call.timeout.or(definition.default_timeout());
        let (run, handle) = self.start_job(view, index, job, timeout, true, runtime)?;
        if let Some(key) = call.key {
            keys.insert(key.into_boxed_str(), run.id);
        }
        Ok(handle)
    }

    /// A workflow's step in this process: a job held until its parents
    /// have succeeded (`Job::release`), whose run the workflow releases or
    /// cancels; it reports to the workflow, so no handle reads it.
    pub(crate) fn enqueue_step(
        &self,
        worker_name: &str,
        call: Resolved,
        step: StepOf,
    ) -> Result<Arc<Run>> {
        let runtime = runtime_for(worker_name)?;
        let (view, index) = self.view_of(worker_name)?;
        let definition = &view.scope.definitions[index as usize];
        let timeout = call.timeout.or(definition.default_timeout());
        let waits = Waits {
            payload: call.payload,
            priority: call.priority,
            limit_key: call.limit_key,
            due: None,
        };
        // Its workflow takes its messages and outcome, not a handle.
        let job = Job::step(waits, step);
        let (run, _detached) = self.start_job(&view, index, job, timeout, false, &runtime)?;
        Ok(run)
    }

    /// Lists a job as pending and spawns its wait to start.
    fn start_job(
        &self,
        view: &View,
        index: u32,
        job: Box<Job>,
        timeout: Option<Duration>,
        has_reader: bool,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Arc<Run>, WorkerHandle)> {
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let spec = Spec {
            timeout,
            payload: None,
            has_reader,
            durable: None,
            priority: job.priority(),
            job: Some(job),
        };
        let run = Run::new(view.scope.clone(), index, spec);
        run.list_pending();
        // Shutdown sets its flag, then cancels what it finds listed: a job
        // listed after that point must see the flag here and step back.
        if self.is_shutting_down() {
            self.shared.pending.remove(run.id.as_u128());
            run.abandon();
            return Err(Error::Shutdown);
        }
        let launcher = view.launchers[index as usize].clone();
        let task = runtime.spawn(crate::pending::start_when_ready(run.clone(), launcher));
        Ok((run.clone(), WorkerHandle::new(run, task)))
    }

    /// The started backend, if any.
    pub(crate) fn backend(&self) -> Option<&Arc<dyn Backend>> {
        self.shared.backend.get()
    }

    /// Where a workflow of this process moves itself when it ends.
    pub(crate) fn workflow_registry(&self) -> std::sync::Weak<Mutex<FlowRegistry>> {
        Arc::downgrade(&self.shared.workflows)
    }

    /// The workflows this process runs and keeps.
    pub(crate) fn workflows_kept(&self) -> std::sync::MutexGuard<'_, FlowRegistry> {
        lock(&self.shared.workflows)
    }

    /// The backend a workflow's steps go through, if any: `None` runs it
    /// in this process. Steps of both kinds in one workflow are refused.
    pub(crate) fn workflow_backend(&self, plan: &Plan) -> Result<Option<&Arc<dyn Backend>>> {
        let (mut local, mut durable) = (None, None);
        for step in &plan.steps {
            let kind = match self.backend_for(&step.worker)? {
                Some(_) => &mut durable,
                None => &mut local,
            };
            kind.get_or_insert(&step.name);
        }
        match (local, durable) {
            (Some(local), Some(durable)) => Err(Error::validation(format!(
                "workflow '{}': step '{local}' runs a `local` worker and step '{durable}' a durable one; a workflow runs in one place, so make its workers all `local` or all durable",
                plan.name
            ))),
            (None, Some(_)) => Ok(self.shared.backend.get()),
            _ => Ok(None),
        }
    }

    /// A call whose key `existing` has: joined, replaced or refused.
    fn duplicate(
        &self,
        worker_name: &str,
        key: &str,
        existing: RunId,
        on_duplicate: Duplicate,
        replacement: impl FnOnce() -> Waits,
    ) -> Result<WorkerHandle> {
        let id = existing.as_u128();
        // A keyed run is in one of the two sets until it ends, and it
        // frees its key before it leaves them.
        let run = self
            .shared
            .pending
            .get(id)
            .or_else(|| self.shared.running.get(id));
        let (Some(run), Some(job)) = (run.clone(), run.as_ref().and_then(|run| run.job())) else {
            return Err(Error::msg(format!(
                "worker '{worker_name}': the run {existing} holding key '{key}' was not found"
            )));
        };
        match on_duplicate {
            Duplicate::Reject => {
                return Err(Error::Duplicate {
                    worker: worker_name.to_owned(),
                    key: key.to_owned(),
                    run_id: existing.to_string(),
                });
            }
            Duplicate::Replace => {
                // Unless it has started: the call then joins it.
                job.replace(replacement());
            }
            Duplicate::Join => {}
        }
        let follow = job.follow();
        Ok(WorkerHandle::joined(run, follow))
    }

    /// The backend `worker_name`'s runs go through: `None` without a
    /// backend or for a `local` worker. Refuses what `call` would refuse
    /// before anything is stored: a shut-down manager, an unknown worker.
    fn backend_for(&self, worker_name: &str) -> Result<Option<&Arc<dyn Backend>>> {
        let Some(backend) = self.shared.backend.get() else {
            return Ok(None);
        };
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let definition = self
            .definition(worker_name)
            .ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        Ok((!definition.options.is_local()).then_some(backend))
    }

    /// Starts `backend` for this manager: from now on `call`, `run`,
    /// `cancel`, `running`, `stats` and scheduled ticks of workers that
    /// aren't `local` go through it. Once per manager;
    /// [`Workers::backend`](crate::Workers::backend) takes the same
    /// argument for the global one.
    ///
    /// ```no_run
    /// # async fn doc(backend: impl worker_core::backend::BackendBuilder) -> worker_core::Result<()> {
    /// let manager = worker_core::WorkerManager::new();
    /// manager.set_backend(backend).await?; // worker_postgres::Postgres::new(url), say
    /// # Ok(()) }
    /// ```
    pub async fn set_backend(&self, backend: impl BackendBuilder) -> Result<()> {
        self.start_backend(Box::new(backend)).await
    }

    pub(crate) async fn start_backend(&self, backend: Box<dyn BackendBuilder>) -> Result<()> {
        if self.shared.backend.get().is_some() {
            return Err(Error::msg(
                "this worker manager already has a backend: Workers::backend can be used once per manager",
            ));
        }
        let node = Node {
            executor: Arc::new(self.clone()),
        };
        let backend = backend.start(node).await?;
        self.shared
            .backend
            .set(backend)
            .map_err(|_| Error::msg("this worker manager already has a backend"))
    }

    /// What the backend keeps for dashboards (its stored runs, nodes,
    /// stalls and timeline, over every node); `None` without a backend or
    /// with one that keeps no history. worker-web reads it.
    pub fn history(&self) -> Option<&dyn History> {
        self.shared.backend.get()?.history()
    }

    /// Whether runs go through a backend.
    pub fn is_durable(&self) -> bool {
        self.shared.backend.get().is_some()
    }

    /// A handle on a run stored in the backend, by id, from wherever this
    /// process is: its messages from the first, then its outcome. Needs a
    /// backend ([`Workers::backend`](crate::Workers::backend)); an unknown
    /// id is [`Error::RunNotFound`].
    pub async fn attach(&self, run_id: &str) -> Result<WorkerHandle> {
        let backend = self.shared.backend.get().ok_or_else(|| {
            Error::msg(format!(
                "can't attach to run '{run_id}': attach needs a durable backend (Workers::backend); in-process runs are followed through the handle call() returned"
            ))
        })?;
        let id = run_id
            .parse()
            .map_err(|_| Error::RunNotFound(run_id.to_owned()))?;
        backend.attach(id).await.map(WorkerHandle::remote)
    }

    /// Executes one attempt of a run a backend claimed: a local run with
    /// the run's own id and attempt number, not retried here.
    fn execute_claimed(&self, claimed: ClaimedRun) -> Result<WorkerHandle> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::msg("a backend executed a run outside a tokio runtime"))?;
        let durable = Durable {
            id: claimed.run_id,
            attempt: u16::try_from(claimed.attempt).unwrap_or(u16::MAX),
        };
        // A workflow's step carries its step (and its payload) in a job.
        let (payload, job) = match claimed.step {
            None => (claimed.payload, None),
            Some(step) => {
                let step_of =
                    StepOf::stored(&step.workflow_id.to_string(), &step.name, step.inputs);
                let job = Job::claimed_step(claimed.payload, claimed.priority, step_of);
                (None, Some(job))
            }
        };
        let (view, index, run, slot) = self.admit_unchecked(
            self.target(&claimed.worker),
            claimed.timeout,
            payload,
            true,
            Some(durable),
            Some(claimed.priority),
            job,
        )?;
        let task = view.launchers[index as usize].spawn(run.clone(), slot, &runtime);
        Ok(WorkerHandle::new(run, task))
    }

    /// The workers whose runs go through a backend, sorted.
    fn durable_workers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|entry| !entry.definition.options.is_local())
            .map(|entry| entry.definition.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// How long a cancelled run may go on.
    pub fn grace_period(&self) -> Duration {
        self.shared
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .grace_period
    }

    /// Runs a worker with its default timeout and waits for its result.
    ///
    /// The caller is waiting anyway, so the run executes right here in the
    /// caller's task rather than in a task of its own (no spawn, no
    /// cross-thread wake-up). It is still listed, counted, cancellable and
    /// timed like any other run; if the caller stops waiting, the run ends
    /// as cancelled.
    pub async fn run(&self, worker_name: &str, payload: Option<Value>) -> Result<()> {
        let target = self.target(worker_name);
        if target.is_unique() {
            drop(target);
            let mut call = Call::new();
            call.payload = payload;
            return self
                .call_with(worker_name, call)
                .await?
                .await_result()
                .await;
        }
        if let Some(backend) = self.backend_for(worker_name)? {
            let remote = backend.call(worker_name, None, payload).await?;
            return WorkerHandle::remote(remote).await_result().await;
        }
        let (view, index, run, slot) = self.admit(target, None, payload, false, None, None)?;
        let run = view.launchers[index as usize].inline(run, slot);
        drop(view);
        run.await.map(drop)
    }

    fn admit(
        &self,
        target: Target<'_>,
        timeout: Option<Duration>,
        payload: Option<Value>,
        has_reader: bool,
        durable: Option<Durable>,
        priority: Option<i32>,
    ) -> Result<(Arc<View>, u32, Arc<Run>, Claim)> {
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        self.admit_unchecked(
            target, timeout, payload, has_reader, durable, priority, None,
        )
    }

    /// [`admit`](Self::admit) without the shutdown check up front: a
    /// backend's runs are still executed while it shuts down (it stops
    /// claiming first, and releases what doesn't finish).
    #[expect(
        clippy::too_many_arguments,
        reason = "one private fn behind admit and execute_claimed"
    )]
    fn admit_unchecked(
        &self,
        target: Target<'_>,
        timeout: Option<Duration>,
        payload: Option<Value>,
        has_reader: bool,
        durable: Option<Durable>,
        priority: Option<i32>,
        job: Option<Box<Job>>,
    ) -> Result<(Arc<View>, u32, Arc<Run>, Claim)> {
        let Target {
            view,
            index,
            name: worker_name,
        } = target;
        let Some(index) = index else {
            return Err(Error::NotRegistered(worker_name.to_owned()));
        };
        let definition = &view.scope.definitions[index as usize];
        let priority = priority.unwrap_or(definition.options.get_priority());
        // A backend's run was held to the cluster-wide limits when it was
        // claimed; a run of this process is held to them here, as a run
        // of its payload's `limit_by` value (a payload without it is
        // refused, before anything runs).
        let limit_key = match (durable, definition.options.get_limit_by()) {
            (None, Some(field)) => Some(limit_key(worker_name, field, payload.as_ref())?),
            _ => None,
        };
        let limits = match durable {
            Some(_) => Limits::Claimed,
            None => Limits::Apply(limit_key.as_deref()),
        };
        // Refused before anything is listed or counted.
        let slot = definition.gate.admit(worker_name, priority, limits)?;
        let timeout = timeout.or(definition.default_timeout());
        let spec = Spec {
            timeout,
            payload,
            has_reader,
            durable: durable.map(|d| (d.id, d.attempt)),
            priority,
            job,
        };
        let run = Run::new(view.scope.clone(), index, spec);
        run.list();
        // Shutdown sets its flag, then cancels what it finds listed: a run
        // listed after that point must see the flag here and step back.
        if durable.is_none() && self.is_shutting_down() {
            run.abandon();
            return Err(Error::Shutdown);
        }
        run.admitted();
        Ok((view, index, run, slot))
    }

    fn definition(&self, name: &str) -> Option<Arc<Definition>> {
        self.shared
            .definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|entry| entry.definition.clone())
    }

    /// Cancels a run by id and waits until it has ended: the worker's
    /// [`cancelled()`](crate::WorkerContext::cancelled) fires, and if it has
    /// not returned within the grace period it is dropped. Its handle's
    /// `await_result` then gives an error with
    /// [`is_cancelled`](crate::Error::is_cancelled). An unknown or finished
    /// run is [`Error::RunNotFound`].
    pub async fn cancel(&self, run_id: &str) -> Result<()> {
        let Ok(id) = run_id.parse::<RunId>() else {
            return Err(Error::RunNotFound(run_id.to_owned()));
        };
        let local = self
            .shared
            .running
            .get(id.as_u128())
            .or_else(|| self.shared.pending.get(id.as_u128()));
        match (self.shared.backend.get(), local) {
            // A durable run is cancelled through the backend, also here
            // where it executes, so that its one outcome is recorded there.
            (Some(backend), local) if local.as_ref().is_none_or(|run| run.is_durable()) => {
                backend.cancel(id).await
            }
            (_, Some(run)) => run.cancel_and_wait().await,
            (_, None) => Err(Error::RunNotFound(run_id.to_owned())),
        }
    }

    /// Registered worker names, sorted.
    pub async fn definitions(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .shared
            .definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|name| name.to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Ids of the runs in flight, oldest first.
    pub async fn running(&self) -> Result<Vec<String>> {
        match self.shared.backend.get() {
            // Every node's durable runs, then this process's local ones.
            Some(backend) => {
                let mut ids: Vec<String> = backend
                    .running(None)
                    .await?
                    .iter()
                    .map(RunId::to_string)
                    .collect();
                ids.extend(self.running_runs(|run| run.definition().options.is_local()));
                Ok(ids)
            }
            None => Ok(self.running_runs(|_| true)),
        }
    }

    /// Ids of one worker's runs in flight, oldest first. An unknown worker
    /// name is [`Error::NotRegistered`].
    pub async fn running_for(&self, worker_name: &str) -> Result<Vec<String>> {
        let definition = self
            .definition(worker_name)
            .ok_or_else(|| Error::NotRegistered(worker_name.to_owned()))?;
        if let Some(backend) = self.shared.backend.get() {
            if !definition.options.is_local() {
                let ids = backend.running(Some(worker_name)).await?;
                return Ok(ids.iter().map(RunId::to_string).collect());
            }
        }
        Ok(self.running_runs(|run| run.worker_name() == worker_name))
    }

    fn running_runs(&self, keep: impl Fn(&Run) -> bool) -> Vec<String> {
        self.shared
            .running
            .snapshot()
            .iter()
            .filter(|run| keep(run))
            .map(|run| run.id_str().to_owned())
            .collect()
    }

    /// A worker's statistics; `None` only if no such worker is registered.
    ///
    /// With a backend, a worker's statistics are the sum over every node
    /// (this process's alone if the backend can't be read).
    pub async fn stats(&self, worker_name: &str) -> Option<WorkerStats> {
        let definition = self.definition(worker_name)?;
        if let Some(backend) = self.shared.backend.get() {
            if !definition.options.is_local() {
                match backend.stats(worker_name).await {
                    Ok(stats) => return stats,
                    Err(error) => log::warn!(
                        target: "worker",
                        "[Worker:{worker_name}] cluster statistics unavailable, this process's instead: {error}"
                    ),
                }
            }
        }
        let mut stats = definition.stats.snapshot();
        // Runs waiting at the gate are queued, not running, whichever way
        // they came (in durable mode too, the two don't overlap).
        let (queued, admitted) = definition.gate.waiting();
        stats.queued = queued as u64;
        stats.running = stats.running.saturating_sub(admitted as u64);
        stats.scheduled = self
            .shared
            .pending
            .snapshot()
            .iter()
            .filter(|run| run.worker_name() == worker_name)
            .filter(|run| run.job().and_then(|job| job.waits_until()).is_some())
            .count() as u64;
        stats.paused = definition.gate.is_paused();
        stats.limits = definition.gate.limit_use();
        Some(stats)
    }

    /// The default timeout of a registered worker (from
    /// `#[worker(timeout = "…")]` or `register_with_timeout`).
    pub fn default_timeout(&self, worker_name: &str) -> Option<Duration> {
        self.definition(worker_name)
            .and_then(|d| d.default_timeout())
    }

    /// A registered worker's options (from `#[worker(..)]` or
    /// [`register_with`](Self::register_with)).
    pub fn options(&self, worker_name: &str) -> Option<WorkerOptions> {
        self.definition(worker_name).map(|d| d.options.clone())
    }

    /// When a scheduled worker's timer fires next (wall-clock time); `None`
    /// for an unscheduled or unknown worker, or before
    /// [`Workers::start`](crate::Workers::start) started the timers.
    pub fn next_tick(&self, worker_name: &str) -> Option<std::time::SystemTime> {
        self.definition(worker_name).and_then(|d| d.next_tick())
    }

    /// Stops the manager: from this moment new calls are refused with
    /// [`Error::Shutdown`], runs in flight are cancelled (each gets the
    /// grace period), and it returns once all of them have ended. Calling it
    /// again is harmless.
    ///
    /// With a backend, shutdown is this process's own: it stops claiming
    /// runs; its runs get the grace period, and those that don't end by
    /// then go back to the queue for another node, without counting an
    /// error or using up a retry.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.shutting_down.store(true, SeqCst);
        for (_, timer) in lock(&self.shared.timers).drain() {
            timer.abort();
        }
        if let Some(backend) = self.shared.backend.get() {
            if let Err(error) = backend.shutdown(self.grace_period()).await {
                log::error!(target: "worker", "the backend did not shut down cleanly: {error}");
            }
        }
        let mut runs = self.shared.pending.snapshot();
        runs.extend(self.shared.running.snapshot());
        for run in &runs {
            run.signals.fire(Signal::Cancel);
        }
        for run in runs {
            run.signals.wait(Signal::Ended).await;
        }
        Ok(())
    }

    /// Waits for Ctrl+C (or SIGTERM on Unix), then [`shutdown`](Self::shutdown).
    pub async fn shutdown_on_signal(&self) -> Result<()> {
        shutdown_signal().await?;
        log::info!(target: "worker", "signal received: shutting down workers");
        self.shutdown().await
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(SeqCst)
    }

    /// How many runs are in flight: `0` means no run of this manager holds
    /// a task, a timer or a buffer.
    pub fn in_flight(&self) -> usize {
        self.shared.running.len()
    }

    fn update(&self, change: impl FnOnce(&mut Settings)) {
        let mut settings = self
            .shared
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut next = Settings::clone(&settings);
        change(&mut next);
        *settings = Arc::new(next);
        self.shared.generation.fetch_add(1, SeqCst);
    }

    /// Replaces the configuration runs see from now on.
    pub fn set_config(&self, config: AppConfig) {
        self.update(|s| s.config = Arc::new(config));
    }

    /// Overrides the environment read from `RUSTF_ENV`/`NODE_ENV`.
    pub fn set_environment(&self, environment: Environment) {
        self.update(|s| s.environment = environment);
    }

    /// How long a cancelled run may go on before it is dropped (default
    /// [`DEFAULT_GRACE_PERIOD`](crate::DEFAULT_GRACE_PERIOD)).
    pub fn set_grace_period(&self, grace_period: Duration) {
        self.update(|s| s.grace_period = grace_period);
    }

    /// How many unread messages one run may hold for its handle (default
    /// [`DEFAULT_MESSAGE_BUFFER`](crate::DEFAULT_MESSAGE_BUFFER), at least 1).
    pub fn set_message_buffer(&self, messages: usize) {
        self.update(|s| s.message_buffer = messages.max(1));
    }

    /// Adds an [`Observer`](crate::observe::Observer): from now on it sees
    /// every run this manager admits start, emit, retry and end. A
    /// dashboard (`worker-web`) installs one this way.
    pub fn observe(&self, observer: Arc<dyn crate::observe::Observer>) {
        self.update(|s| s.observers = s.observers.with(observer));
    }

    /// The configuration runs see.
    pub fn config(&self) -> Arc<AppConfig> {
        self.shared
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }
}

/// A run a backend executes here: its id and attempt come from the backend.
#[derive(Clone, Copy)]
struct Durable {
    id: RunId,
    attempt: u16,
}

impl Executor for WorkerManager {
    fn durable_workers(&self) -> Vec<String> {
        WorkerManager::durable_workers(self)
    }
    fn options(&self, worker: &str) -> Option<WorkerOptions> {
        WorkerManager::options(self, worker)
    }
    fn grace_period(&self) -> Duration {
        WorkerManager::grace_period(self)
    }
    fn execute_claimed(&self, run: ClaimedRun) -> Result<WorkerHandle> {
        WorkerManager::execute_claimed(self, run)
    }
    fn cancel_local(&self, run_id: RunId) -> crate::backend::BoxFuture<'static, Result<()>> {
        let run = self.shared.running.get(run_id.as_u128());
        Box::pin(async move {
            match run {
                Some(run) => run.cancel_and_wait().await,
                None => Err(Error::RunNotFound(run_id.to_string())),
            }
        })
    }
    fn is_shutting_down(&self) -> bool {
        WorkerManager::is_shutting_down(self)
    }
}

/// One thread's copy of the registry: the [`Scope`] its runs read (one
/// `Arc` per run, to the scope of the thread that started it, so the hot
/// path writes to no cache line another core's runs write to), the
/// launchers by the same index, and the index by name.
struct View {
    manager: Arc<Shared>,
    generation: u64,
    scope: Arc<Scope>,
    launchers: Vec<Launcher>,
    by_name: HashMap<Box<str>, u32, BuildHasherDefault<NameHasher>>,
}

/// A worker looked up in a thread's view: the view, the worker's index
/// if it is registered, and the name asked for (for the error if not).
struct Target<'a> {
    view: Arc<View>,
    index: Option<u32>,
    name: &'a str,
}

impl Target<'_> {
    /// Whether every call of the worker is keyed by a payload field.
    fn is_unique(&self) -> bool {
        self.index.is_some_and(|index| {
            self.view.scope.definitions[index as usize]
                .options
                .get_unique()
                .is_some()
        })
    }
}

/// The Fx hash (rustc's): names are the application's own, not an
/// attacker's, and SipHash was a tenth of a `call`.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            self.add(word);
        }
        for &byte in chunks.remainder() {
            self.add(u64::from(byte));
        }
    }
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }
}

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The view of the manager this thread used last. It keeps that manager
    /// alive until the thread uses another one or ends.
    static VIEW: RefCell<Option<Arc<View>>> = const { RefCell::new(None) };
}

impl WorkerManager {
    /// This thread's view of the manager, rebuilt if the manager changed.
    fn view(&self) -> Arc<View> {
        // Read before building: a change after this read bumps the
        // generation again, so the view is rebuilt on the next call.
        let generation = self.shared.generation.load(SeqCst);
        let cached = VIEW.try_with(|cell| {
            let mut cell = cell.borrow_mut();
            match &*cell {
                Some(view)
                    if view.generation == generation
                        && Arc::ptr_eq(&view.manager, &self.shared) =>
                {
                    view.clone()
                }
                _ => {
                    let view = self.build_view(generation);
                    *cell = Some(view.clone());
                    view
                }
            }
        });
        // While the thread is being torn down there is no cache to use.
        cached.unwrap_or_else(|_| self.build_view(generation))
    }

    fn build_view(&self, generation: u64) -> Arc<View> {
        let (definitions, launchers): (Vec<Arc<Definition>>, Vec<Launcher>) = self
            .shared
            .definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|entry| (entry.definition.clone(), entry.launcher.clone()))
            .unzip();
        let by_name = definitions
            .iter()
            .enumerate()
            .map(|(index, d)| (d.name.clone(), index as u32))
            .collect();
        let settings = self
            .shared
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Arc::new(View {
            manager: self.shared.clone(),
            generation,
            scope: Arc::new(Scope {
                definitions,
                settings,
                running: self.shared.running.clone(),
                pending: self.shared.pending.clone(),
            }),
            launchers,
            by_name,
        })
    }
}

fn origin(registration: &WorkerRegistration) -> String {
    format!("{}:{}", registration.file, registration.line)
}

/// One declaration reached through two module paths: `file!()` is the same
/// file, possibly spelled once relative and once absolute.
fn same_place(a: &WorkerRegistration, b: &WorkerRegistration) -> bool {
    let ends_with = |long: &str, short: &str| {
        long.strip_suffix(short)
            .is_some_and(|head| head.ends_with('/') || head.ends_with('\\'))
    };
    a.line == b.line && (a.file == b.file || ends_with(a.file, b.file) || ends_with(b.file, a.file))
}

/// The runtime a call starts its run on: the caller's.
fn runtime_for(worker_name: &str) -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        Error::msg(format!(
            "can't start worker '{worker_name}': call() must run inside a tokio runtime"
        ))
    })
}

/// Resolves when the process is asked to stop: Ctrl+C, or SIGTERM on Unix
/// (what `docker stop`, systemd and Kubernetes send). An error means the
/// signal handlers could not be installed.
///
/// [`WorkerManager::shutdown_on_signal`] is this plus `shutdown()`; use this
/// one to stop a server and the workers together:
///
/// ```no_run
/// # async fn serve(stop: impl std::future::Future<Output = ()>) {}
/// # #[tokio::main] async fn main() -> worker_core::Result<()> {
/// let manager = worker_core::Workers::new().start().await?;
/// serve(async { let _ = worker_core::shutdown_signal().await; }).await; // e.g. axum's with_graceful_shutdown
/// manager.shutdown().await
/// # }
/// ```
pub async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
