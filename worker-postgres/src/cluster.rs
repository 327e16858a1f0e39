//! The backend once started: the pool, the statements, the listener, the
//! call batcher and the executor (which only maintains, in a process that
//! only calls); and the [`Backend`] the manager asks, with the
//! dashboard's [`History`] (in `dashboard`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sqlx::Connection;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use worker_core::backend::{
    Backend, BoxFuture, History, Node, Plan, RemoteRun, RemoteWorkflow, Resolved, ScheduledRun,
    WorkflowId,
};
use worker_core::{Error, Result, RunId, WorkerStats};

use crate::bus::{self, Bus, Note};
use crate::calls::{self, Call};
use crate::config::Config;
use crate::db::Db;
use crate::executor::Executor;
use crate::flow_handle::PgWorkflow;
use crate::handle::{self, PgRun};
use crate::jobs;
use crate::leases;
use crate::limits;
use crate::reach::{self, Reach};
use crate::schema;
use crate::sql::Sql;
use crate::workflows;

/// A started backend.
pub(crate) struct Cluster {
    /// The database as this process reaches it, shared with the handles.
    db: Arc<Db>,
    calls: mpsc::Sender<Call>,
    executor: Arc<Executor>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for Cluster {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("schema", &self.sql.schema)
            .finish_non_exhaustive()
    }
}

impl Backend for Cluster {
    fn call(
        &self,
        worker: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>> {
        let worker = worker.to_owned();
        Box::pin(async move {
            // A limited run carries its limit key: stored as a job.
            if let Some(options) = self.executor.options(&worker).filter(|o| o.is_limited()) {
                let mut call = worker_core::Call::new();
                if let Some(timeout) = timeout {
                    call = call.timeout(timeout);
                }
                if let Some(payload) = payload {
                    call = call.payload(payload);
                }
                let call = call.resolve_with(&worker, &options)?;
                let id = self.store_jobs(&worker, vec![call]).await?[0];
                return Ok(Box::new(PgRun::new(self.db.clone(), id, worker)) as Box<dyn RemoteRun>);
            }
            self.store(&worker, timeout, payload).await
        })
    }

    fn call_with(&self, worker: &str, call: Resolved) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>> {
        let worker = worker.to_owned();
        Box::pin(async move {
            let ids = self.store_jobs(&worker, vec![call]).await?;
            let id = ids[0];
            Ok(Box::new(PgRun::new(self.db.clone(), id, worker)) as Box<dyn RemoteRun>)
        })
    }

    fn call_many(&self, worker: &str, calls: Vec<Resolved>) -> BoxFuture<'_, Result<Vec<RunId>>> {
        let worker = worker.to_owned();
        Box::pin(async move {
            let ids = self.store_jobs(&worker, calls).await?;
            Ok(ids.into_iter().map(RunId::from).collect())
        })
    }

    fn scheduled(&self, worker: Option<&str>) -> BoxFuture<'_, Result<Vec<ScheduledRun>>> {
        let worker = worker.map(str::to_owned);
        Box::pin(async move {
            type Row = (Uuid, String, f64, Option<String>, i32);
            let rows: Vec<Row> = sqlx::query_as(self.sql.scheduled.clone())
                .persistent(false)
                .bind(worker)
                .fetch_all(&mut *self.reach.connection("list the scheduled runs").await?)
                .await
                .map_err(|err| self.reach.error("list the scheduled runs", err))?;
            Ok(rows
                .into_iter()
                .map(|(id, worker, due_ms, key, priority)| ScheduledRun {
                    run_id: RunId::from(id),
                    worker,
                    due_at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(due_ms.max(0.0) / 1e3),
                    key,
                    priority,
                })
                .collect())
        })
    }

    fn set_paused(&self, worker: &str, paused: bool) -> BoxFuture<'_, Result<()>> {
        let worker = worker.to_owned();
        Box::pin(async move {
            let what = if paused { "pause" } else { "resume" };
            let what = format!("{what} worker '{worker}'");
            let mut conn = self.reach.connection(&what).await?;
            let statement = if paused {
                &self.sql.pause
            } else {
                &self.sql.resume
            };
            sqlx::query(statement.clone())
                .bind(&worker)
                .execute(&mut *conn)
                .await
                .map_err(|err| self.reach.error(&what, err))?;
            if !paused {
                // Its runs were passed over while it was paused: every
                // node claims from the front again.
                bus::notify(&mut conn, &self.sql, Note::Queued, &[])
                    .await
                    .map_err(|err| self.reach.error(&what, err))?;
            }
            Ok(())
        })
    }

    fn is_paused(&self, worker: &str) -> BoxFuture<'_, Result<bool>> {
        let worker = worker.to_owned();
        Box::pin(async move {
            let what = format!("read whether worker '{worker}' is paused");
            sqlx::query_scalar(self.sql.is_paused.clone())
                .bind(&worker)
                .fetch_one(&mut *self.reach.connection(&what).await?)
                .await
                .map_err(|err| self.reach.error(&what, err))
        })
    }

    fn attach(&self, run_id: RunId) -> BoxFuture<'_, Result<Box<dyn RemoteRun>>> {
        Box::pin(self.attach_run(run_id))
    }

    fn cancel(&self, run_id: RunId) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.cancel_run(run_id))
    }

    fn running(&self, worker: Option<&str>) -> BoxFuture<'_, Result<Vec<RunId>>> {
        let worker = worker.map(str::to_owned);
        Box::pin(async move { self.running_ids(worker.as_deref()).await })
    }

    fn stats(&self, worker: &str) -> BoxFuture<'_, Result<Option<WorkerStats>>> {
        let worker = worker.to_owned();
        Box::pin(async move { self.read_stats(&worker).await })
    }

    fn tick(&self, worker: &str, at: SystemTime) -> BoxFuture<'_, Result<()>> {
        let worker = worker.to_owned();
        Box::pin(async move { self.take_tick(&worker, at).await })
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.stop(grace))
    }

    fn history(&self) -> Option<&dyn History> {
        Some(&*self.db)
    }

    fn start_workflow(&self, plan: Plan) -> BoxFuture<'_, Result<Box<dyn RemoteWorkflow>>> {
        Box::pin(async move {
            let mut plan = plan;
            for step in &mut plan.steps {
                if step.call.limit_key.is_none() {
                    step.call.limit_key = self.limited_as_a_whole(&step.worker);
                }
            }
            let what = format!("store workflow '{}'", plan.name);
            let mut conn = self.reach.connection(&what).await?;
            let mut tx = conn
                .begin()
                .await
                .map_err(|err| self.reach.error(&what, err))?;
            let run_ids = workflows::store(&mut tx, &self.sql, &plan).await?;
            tx.commit()
                .await
                .map_err(|err| self.reach.error(&what, err))?;
            Ok(
                Box::new(PgWorkflow::follow(self.db.clone(), Arc::new(plan), run_ids))
                    as Box<dyn RemoteWorkflow>,
            )
        })
    }

    fn attach_workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<Box<dyn RemoteWorkflow>>> {
        Box::pin(async move {
            let flow = PgWorkflow::attach(self.db.clone(), id).await?;
            Ok(Box::new(flow) as Box<dyn RemoteWorkflow>)
        })
    }
}

/// The error for a statement of `what` that failed outside a started
/// backend's client operations (connecting, migrating, `enqueue`).
pub(crate) fn unavailable(config: &Config, what: &str, err: sqlx::Error) -> Error {
    reach::error(&redact(&config.url), what, err)
}

impl Cluster {
    /// Connects, migrates, and starts listening, storing and (if
    /// `execute`) executing.
    pub(crate) async fn start(config: Arc<Config>, node: Node) -> Result<Arc<Cluster>> {
        let sql = Arc::new(Sql::new(&config.schema)?);
        let pool = match &config.pool {
            Some(pool) => pool.clone(),
            None => {
                let size = config
                    .pool_size
                    .unwrap_or_else(|| config.default_pool_size());
                connect(&config, size).await?
            }
        };
        schema::migrate(&pool, &sql, i32::MAX).await?;
        let bus = Arc::new(Bus::default());
        let listener = tokio::spawn(bus::listen(pool.clone(), sql.channel.clone(), bus.clone()));
        let reach = Reach::new(pool.clone(), redact(&config.url), config.acquire_timeout);
        let calls = calls::start(reach.clone(), sql.clone());
        let renewal = if config.execute {
            let conn = leases::connect(&pool, &sql)
                .await
                .map_err(|err| unavailable(&config, "open the lease renewal connection", err))?;
            Some(conn)
        } else {
            None
        };
        let executor = Executor::start(
            config.clone(),
            node,
            pool.clone(),
            sql.clone(),
            bus.clone(),
            renewal,
        )?;
        Ok(Arc::new(Cluster {
            db: Arc::new(Db {
                reach,
                pool,
                sql,
                bus,
                config,
            }),
            calls,
            executor,
            listener,
        }))
    }

    async fn store(
        &self,
        worker: &str,
        timeout: Option<Duration>,
        payload: Option<Value>,
    ) -> Result<Box<dyn RemoteRun>> {
        // Time-ordered (UUIDv7: milliseconds, then 74 random bits): new
        // runs land at the right edge of the primary keys of `runs` and
        // `ended_runs`, not on a random page of each, which at thousands a
        // second is most of the pages read, dirtied and logged whole after
        // each checkpoint.
        let id = Uuid::now_v7();
        let (stored, answer) = oneshot::channel();
        let call = Call {
            id,
            worker: worker.to_owned(),
            payload,
            timeout_ms: timeout.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            asked: std::time::Instant::now(),
            stored,
        };
        self.calls.send(call).await.map_err(|_| Error::Shutdown)?;
        answer.await.map_err(|_| Error::Shutdown)??;
        Ok(Box::new(PgRun::new(self.db.clone(), id, worker.to_owned())))
    }

    /// The worker's options, as this process declares them.
    pub(crate) fn options(&self, worker: &str) -> Option<worker_core::WorkerOptions> {
        self.executor.options(worker)
    }

    /// The limit key of a limited worker's run that has none of its own
    /// (a worker limited as a whole, or a tick's run without a payload):
    /// `''`, so that the limited claim takes it; `None` for a worker
    /// without limits.
    fn limited_as_a_whole(&self, worker: &str) -> Option<String> {
        self.executor
            .options(worker)
            .filter(worker_core::WorkerOptions::is_limited)
            .map(|_| String::new())
    }

    /// Stores jobs in a transaction of their own: all or nothing.
    async fn store_jobs(&self, worker: &str, mut calls: Vec<Resolved>) -> Result<Vec<Uuid>> {
        if let Some(whole) = self.limited_as_a_whole(worker) {
            for call in calls.iter_mut().filter(|call| call.limit_key.is_none()) {
                call.limit_key = Some(whole.clone());
            }
        }
        let what = format!("store runs of worker '{worker}'");
        let mut conn = self.reach.connection(&what).await?;
        let mut tx = conn
            .begin()
            .await
            .map_err(|err| self.reach.error(&what, err))?;
        let ids = jobs::store(&mut tx, &self.sql, worker, calls).await?;
        tx.commit()
            .await
            .map_err(|err| self.reach.error(&what, err))?;
        Ok(ids)
    }

    async fn attach_run(&self, run_id: RunId) -> Result<Box<dyn RemoteRun>> {
        let id = run_id.as_uuid();
        let state: Option<(String, String)> = sqlx::query_as(self.sql.run_state.clone())
            .persistent(false)
            .bind(id)
            .fetch_optional(&mut *self.reach.connection("look up a run").await?)
            .await
            .map_err(|err| self.reach.error(&format!("look up run '{run_id}'"), err))?;
        let Some((worker, _)) = state else {
            return Err(Error::msg(format!(
                "Run '{run_id}' is unknown: it was never stored, or it ended more than the retention period ({}) ago",
                worker_core::format_duration(self.config.retention)
            )));
        };
        Ok(Box::new(PgRun::new(self.db.clone(), id, worker)))
    }

    /// Asks a run to stop, wherever it is, and waits until it has ended
    /// (see `handle::cancel`).
    async fn cancel_run(&self, run_id: RunId) -> Result<()> {
        handle::cancel(&self.db, run_id).await
    }

    async fn running_ids(&self, worker: Option<&str>) -> Result<Vec<RunId>> {
        let query = match worker {
            Some(worker) => sqlx::query_scalar(self.sql.running_of.clone())
                .persistent(false)
                .bind(worker.to_owned()),
            None => sqlx::query_scalar(self.sql.running_all.clone()).persistent(false),
        };
        let ids: Vec<Uuid> = query
            .fetch_all(&mut *self.reach.connection("list the runs in flight").await?)
            .await
            .map_err(|err| self.reach.error("list the runs in flight", err))?;
        Ok(ids.into_iter().map(RunId::from).collect())
    }

    async fn read_stats(&self, worker: &str) -> Result<Option<WorkerStats>> {
        type Row = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<f64>,
            Option<f64>,
            i64,
            i64,
            i64,
            bool,
        );
        let mut conn = self.reach.connection("read a worker's statistics").await?;
        let row: Row = sqlx::query_as(self.sql.stats.clone())
            .persistent(false)
            .bind(worker)
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| {
                self.reach
                    .error(&format!("read the statistics of worker '{worker}'"), err)
            })?;
        let percentiles: Option<Vec<f64>> = sqlx::query_scalar(self.sql.percentiles.clone())
            .persistent(false)
            .bind(worker)
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| {
                self.reach
                    .error(&format!("read the statistics of worker '{worker}'"), err)
            })?;
        let limits = match self.executor.options(worker) {
            Some(options) => limits::use_of(&mut conn, &self.sql, worker, &options)
                .await
                .map_err(|err| {
                    self.reach
                        .error(&format!("read the limits in use of worker '{worker}'"), err)
                })?,
            None => None,
        };
        let count = |n: Option<i64>| n.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        let percentile = |i: usize| percentiles.as_ref().and_then(|p| p.get(i).copied());
        Ok(Some(WorkerStats {
            runs: count(row.0),
            errors: count(row.1),
            cancelled: count(row.2),
            timeouts: count(row.3),
            panics: count(row.4),
            retries: count(row.5),
            skipped: count(row.6),
            total_runtime_ms: row.7.map_or(0, |ms| ms.round() as u64),
            last_run_ms: row.8.map(|ms| ms.round() as u64),
            running: u64::try_from(row.9).unwrap_or(0),
            queued: u64::try_from(row.10).unwrap_or(0),
            scheduled: u64::try_from(row.11).unwrap_or(0),
            paused: row.12,
            p50_ms: percentile(0),
            p95_ms: percentile(1),
            p99_ms: percentile(2),
            limits,
            ..WorkerStats::default()
        }))
    }

    /// A scheduled tick: the first node to take it starts its run.
    async fn take_tick(&self, worker: &str, at: SystemTime) -> Result<()> {
        let at_ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|err| self.reach.error("start a scheduled run", err))?;
        let started: Option<Uuid> = sqlx::query_scalar(self.sql.tick.clone())
            .bind(worker)
            .bind(at_ms)
            .bind(Uuid::now_v7())
            .bind(self.limited_as_a_whole(worker))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|err| self.reach.error("start a scheduled run", err))?;
        if started.is_some() {
            bus::notify(&mut tx, &self.sql, Note::Queued, &[])
                .await
                .map_err(|err| self.reach.error("start a scheduled run", err))?;
        }
        tx.commit()
            .await
            .map_err(|err| self.reach.error("start a scheduled run", err))
    }

    async fn stop(&self, grace: Duration) -> Result<()> {
        self.executor.shutdown(grace).await;
        self.listener.abort();
        Ok(())
    }

    /// Test hook: see `Postgres::clear_lane_for_tests`.
    pub(crate) async fn clear_lane(&self, lane: usize) -> Result<String> {
        self.executor
            .clear_lane(lane)
            .await
            .map(|cleared| format!("{cleared:?}"))
    }

    /// Test hook: see `Postgres::pause_lease_renewal_for_tests`.
    pub(crate) fn pause_renewals(&self, pause: Duration) {
        self.executor.pause_renewals(pause);
    }

    /// How many runs this process's handles watch.
    pub(crate) fn watched(&self) -> usize {
        self.bus.watched()
    }
}

/// A pool of at most `size` connections on the configured URL.
pub(crate) async fn connect(config: &Config, size: u32) -> Result<PgPool> {
    let not_postgres = |why: String| {
        Error::validation(format!(
            "Postgres::new: the URL is not a PostgreSQL connection string ({why}); use postgres://user[:password]@host[:port]/database"
        ))
    };
    if !(config.url.starts_with("postgres://") || config.url.starts_with("postgresql://")) {
        return Err(not_postgres(format!(
            "{} does not start with postgres://",
            redact(&config.url)
        )));
    }
    let options: sqlx::postgres::PgConnectOptions = config
        .url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(|err| not_postgres(format!("{err}")))?
        .options([(
            "idle_in_transaction_session_timeout",
            format!("{}ms", config.idle_in_transaction_timeout().as_millis()),
        )]);
    let connected = PgPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        // The node's own loops wait this long for a connection and retry;
        // client operations wait `acquire_timeout` (see `reach`).
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options.clone())
        .await;
    match connected {
        Ok(pool) => Ok(pool),
        // The pool retried until its timeout and kept only that; one
        // direct attempt says why (refused, unknown host, bad password).
        Err(sqlx::Error::PoolTimedOut) => {
            let reason = match sqlx::PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    sqlx::Error::PoolTimedOut
                }
                Err(err) => err,
            };
            Err(unavailable(config, "connect", reason))
        }
        Err(err) => Err(unavailable(config, "connect", err)),
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.parse::<url_parts::Url>() {
        Ok(parts) => parts.to_string(),
        Err(()) => "the database".to_owned(),
    }
}

/// Just enough URL parsing to hide a password.
mod url_parts {
    pub(crate) struct Url(String);

    impl std::str::FromStr for Url {
        type Err = ();
        fn from_str(url: &str) -> Result<Self, ()> {
            let (scheme, rest) = url.split_once("://").ok_or(())?;
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let shown = match authority.rsplit_once('@') {
                Some((user, host)) => {
                    let user = user.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}@{host}/{path}")
                }
                None => format!("{scheme}://{authority}/{path}"),
            };
            Ok(Url(shown))
        }
    }

    impl std::fmt::Display for Url {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
}
