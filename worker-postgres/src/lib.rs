//! Durable runs on PostgreSQL for worker-core: the same `#[worker]` code on
//! many machines, and nothing lost when a process dies.
//!
//! ```no_run
//! # async fn doc() -> worker_core::Result<()> {
//! use worker_core::prelude::*;
//! use worker_postgres::Postgres;
//!
//! let manager = Workers::new()
//!     .backend(Postgres::new("postgres://app@db/app")) // connects and migrates in start()
//!     .start()
//!     .await?;
//! let mut handle = WORKER::call("generate-report", None, Some(json!({"user_id": 7}))).await?;
//! while let Some(progress) = handle.recv().await { /* from whichever node runs it */ }
//! handle.await_result().await?;
//! # Ok(()) }
//! ```
//!
//! - `call` and `run` store the run and return once it is committed; any
//!   process with the worker and `execute(true)` claims it.
//! - Runs are executed **at least once**: a node that dies (kill -9, a lost
//!   machine, a partition past its lease) leaves its runs to be claimed
//!   again once their lease lapses, with `ctx.attempt()` one higher. Make
//!   workers idempotent with `ctx.run_id()` (the same on every attempt) and
//!   `ctx.attempt()`.
//! - **Fencing**: every write about a run carries the lease token of the
//!   node that claimed it, so a node that lost its lease can't record an
//!   outcome: exactly one outcome per run, ever. Leases use the database's
//!   clock.
//! - A crash is not the worker's failure: re-runs after a crash don't use
//!   the worker's `retries`; they have their own budget, [`max_stalls`]
//!   (default 2), after which the next stall fails the run with
//!   `is_stalled()`.
//! - Retries wait in the database (a later `run_at`), `concurrency` limits
//!   each process, and a schedule's tick runs once in the whole cluster.
//!
//! The tables live in their own schema (`worker` by default): see
//! [`schema`](Postgres::schema) and the README.
//!
//! [`max_stalls`]: Postgres::max_stalls

#![warn(missing_docs)]

mod ahead;
mod bus;
mod calls;
mod cluster;
mod config;
mod cursor;
mod dashboard;
mod db;
mod events;
mod executor;
mod flow_handle;
mod flow_history;
mod handle;
mod history;
mod jobs;
mod lanes;
mod layout;
mod leases;
mod limits;
mod pace;
mod reach;
mod rollup;
mod rows;
mod schema;
mod sql;
mod stop;
mod upkeep;
mod workflows;
mod writer;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;
use worker_core::backend::{Backend, BackendBuilder, BoxFuture, Node};
use worker_core::{Error, Result};

use crate::cluster::Cluster;
use crate::config::Config;

/// The sqlx this crate uses, so that an application names the same version
/// for [`Postgres::enqueue`]'s connection.
pub use sqlx;

/// The default schema of the tables.
pub const DEFAULT_SCHEMA: &str = "worker";
/// The default lease: a run's node must renew it within this (it renews
/// every third of it, on a connection of its own), or another node may
/// take the run.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How many runs one process executes at once by default.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// How long an ended run stays attachable by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How many times a run is started again after a crash by default.
pub const DEFAULT_MAX_STALLS: u32 = 2;

/// The PostgreSQL backend: give it to
/// [`Workers::backend`](worker_core::Workers::backend).
///
/// Cheap to clone; clones share the started backend, so one kept aside can
/// [`enqueue`](Postgres::enqueue) after `start`.
///
/// ```
/// use std::time::Duration;
/// use worker_postgres::Postgres;
///
/// let backend = Postgres::new("postgres://app@localhost/app")
///     .schema("jobs")                    // its tables live here; default "worker"
///     .lease(Duration::from_secs(10))    // default 30 s; renewed every third of it
///     .concurrency(16)                   // runs this process executes at once; default 64
///     .retention(Duration::from_secs(3600))
///     .max_stalls(2);
/// assert_eq!(backend.get_lease(), Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct Postgres {
    config: Arc<Config>,
    /// The statements of `config.schema`, built on first use.
    sql: Arc<OnceLock<Arc<sql::Sql>>>,
    started: Arc<OnceLock<Arc<Cluster>>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &cluster::redact(&self.config.url))
            .field("schema", &self.config.schema)
            .field("lease", &self.config.lease)
            .field("execute", &self.config.execute)
            .field("concurrency", &self.config.concurrency)
            .field("retention", &self.config.retention)
            .field("max_stalls", &self.config.max_stalls)
            .field("acquire_timeout", &self.config.acquire_timeout)
            .field("started", &self.started.get().is_some())
            .finish()
    }
}

impl Postgres {
    /// A backend on the database at `url`
    /// (`postgres://user[:password]@host[:port]/database`). Nothing
    /// connects until `Workers::start`.
    pub fn new(url: impl Into<String>) -> Postgres {
        Postgres {
            config: Arc::new(Config {
                url: url.into(),
                schema: DEFAULT_SCHEMA.to_owned(),
                lease: DEFAULT_LEASE,
                execute: true,
                concurrency: DEFAULT_CONCURRENCY,
                retention: DEFAULT_RETENTION,
                max_stalls: DEFAULT_MAX_STALLS,
                pool_size: None,
                pool: None,
                acquire_timeout: reach::DEFAULT_ACQUIRE_TIMEOUT,
            }),
            sql: Arc::default(),
            started: Arc::default(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self.sql = Arc::default();
        self
    }

    /// The statements of this schema, built once.
    fn sql(&self) -> Result<Arc<sql::Sql>> {
        if let Some(sql) = self.sql.get() {
            return Ok(sql.clone());
        }
        let sql = Arc::new(sql::Sql::new(&self.config.schema)?);
        Ok(self.sql.get_or_init(|| sql).clone())
    }

    /// Creates the schema and its tables, or brings them up to this
    /// version; idempotent, and safe from many processes at once (under an
    /// advisory lock: the others wait, then find nothing to do).
    ///
    /// `Workers::start` does it too, so only a process that stores runs
    /// with [`enqueue`](Postgres::enqueue) before (or without) starting a
    /// backend needs it: a web app, a migration job, a test.
    ///
    /// ```no_run
    /// # async fn doc(pool: worker_postgres::sqlx::PgPool) -> worker_core::Result<()> {
    /// use worker_postgres::Postgres;
    ///
    /// let backend = Postgres::new("postgres://app@db/app");
    /// backend.migrate().await?;
    /// let mut conn = pool.acquire().await.unwrap();
    /// backend.enqueue(&mut conn, "send-email", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_up_to(i32::MAX).await
    }

    /// Test hook, not part of the API: applies the migrations up to
    /// `version` only, leaving the schema as an older version of this
    /// crate made it. Used by the tests of upgrades.
    #[doc(hidden)]
    pub async fn migrate_up_to_for_tests(&self, version: i32) -> Result<()> {
        self.migrate_up_to(version).await
    }

    async fn migrate_up_to(&self, version: i32) -> Result<()> {
        let sql = self.sql()?;
        match (self.started.get(), &self.config.pool) {
            (Some(cluster), _) => schema::migrate(&cluster.pool, &sql, version).await,
            (None, Some(pool)) => schema::migrate(pool, &sql, version).await,
            (None, None) => {
                let pool = cluster::connect(&self.config, 1).await?;
                let migrated = schema::migrate(&pool, &sql, version).await;
                pool.close().await;
                migrated
            }
        }
    }

    /// Its tables live in this schema (created if missing); default
    /// `"worker"`. Lower-case letters, digits and `_`.
    pub fn schema(self, schema: &str) -> Self {
        self.with(|c| c.schema = schema.to_owned())
    }

    /// How long a node holds a run without renewing; default 30 s. A dead
    /// node's runs start again elsewhere about this long after it died
    /// (plus up to 250 ms, the reaper's period; longer while a transaction
    /// left open holds vacuum back and a reaper pass gets slow, since a
    /// pass then waits twenty times what the last one took). At least
    /// 300 ms.
    ///
    /// The node renews every third of it, on a connection of its own, and
    /// starts a run it claimed ahead only while at least a third of its
    /// lease is left: a node must be stalled for a third of the lease
    /// (a long GC-like pause, a starved machine, a partition) before any
    /// run can start twice. 500 ms is the shortest lease tested.
    pub fn lease(self, lease: Duration) -> Self {
        self.with(|c| c.lease = lease.max(Duration::from_millis(300)))
    }

    /// `false`: this process only calls, attaches and cancels; it never
    /// executes runs. Default `true`.
    pub fn execute(self, execute: bool) -> Self {
        self.with(|c| c.execute = execute)
    }

    /// The most runs this process executes at once (default 64, at least 1).
    pub fn concurrency(self, runs: usize) -> Self {
        self.with(|c| c.concurrency = runs.max(1))
    }

    /// How many pooled connections this process opens at most (at least
    /// 2). Default: a quarter of [`concurrency`](Postgres::concurrency),
    /// between 4 and 32, so 16 at the default concurrency of 64.
    ///
    /// Calls, claims, the outbox of messages and endings, the reaper and
    /// dashboard reads share the pool; one of its connections is held for
    /// `LISTEN`. Lease renewal has one connection of its own outside the
    /// pool, so that a busy pool can't make a healthy node lose its leases.
    /// A process holds at most `pool_size + 1` connections; size
    /// PostgreSQL's `max_connections` for every process of the cluster.
    pub fn pool_size(self, connections: u32) -> Self {
        self.with(|c| c.pool_size = Some(connections.max(2)))
    }

    /// Uses the application's own pool instead of connecting to the URL
    /// given to [`new`](Postgres::new) (which is then only shown in
    /// messages). Its size and timeouts are the application's;
    /// [`pool_size`](Postgres::pool_size) no longer applies. Lease renewal
    /// still opens one connection of its own, with the pool's connect
    /// options.
    ///
    /// Give its connections an `idle_in_transaction_session_timeout`, as
    /// the backend's own pool has (twice the lease, at least 1 s): without
    /// it, a node stopped in the middle of a transaction (SIGSTOP, a
    /// frozen VM) holds that transaction's locks, such as a workflow's row
    /// or a limited worker's claim lock, until it wakes, and the other
    /// nodes wait for them.
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), Box<dyn std::error::Error>> {
    /// use worker_postgres::Postgres;
    /// use worker_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    ///
    /// let options: PgConnectOptions = "postgres://app@db/app".parse()?;
    /// let options = options.options([("idle_in_transaction_session_timeout", "60s")]);
    /// let pool = PgPoolOptions::new().max_connections(20).connect_with(options).await?;
    /// let backend = Postgres::new("postgres://app@db/app").pool(pool.clone());
    /// # Ok(()) }
    /// ```
    pub fn pool(self, pool: sqlx::PgPool) -> Self {
        self.with(|c| c.pool = Some(pool))
    }

    /// How long a call, a cancel or a read (`stats`, `running`, `attach`,
    /// the dashboard's) waits for a pooled connection before it fails with
    /// [`is_unavailable()`](worker_core::Error::is_unavailable); default
    /// 500 ms.
    ///
    /// While PostgreSQL is down or unreachable, a call therefore fails
    /// within this time, with an error that names the database and says
    /// that nothing was stored, rather than waiting for the database. A
    /// pool whose every connection is open and busy is not a database that
    /// is down: calls then wait for a connection for up to 10 s more. The
    /// node's own loops (claims, endings, the reaper) wait longer and
    /// retry, and pick up by themselves once the database is back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_postgres::Postgres;
    ///
    /// let backend = Postgres::new("postgres://app@db/app").acquire_timeout(Duration::from_millis(200));
    /// ```
    pub fn acquire_timeout(self, wait: Duration) -> Self {
        self.with(|c| c.acquire_timeout = wait.max(Duration::from_millis(10)))
    }

    /// How long an ended run (with its messages) stays attachable before it
    /// is deleted; default 24 h. Statistics are kept apart and outlive it.
    ///
    /// Ended runs are kept in eight slots, each truncated whole once its
    /// newest run is older than this, so a run is kept for at least
    /// `keep` and at most a sixth of it longer. Nodes sharing a schema
    /// should be given the same retention (each moves the slots on by its
    /// own).
    pub fn retention(self, keep: Duration) -> Self {
        self.with(|c| c.retention = keep)
    }

    /// How many times a run is started again after its node died before the
    /// next such death fails it with `is_stalled()`; default 2 (so at most 3
    /// starts).
    pub fn max_stalls(self, stalls: u32) -> Self {
        self.with(|c| c.max_stalls = stalls)
    }

    /// The lease.
    pub fn get_lease(&self) -> Duration {
        self.config.lease
    }

    /// The schema.
    pub fn get_schema(&self) -> &str {
        &self.config.schema
    }

    /// Stores a run of `worker` inside the caller's own transaction (or on
    /// any connection): if the transaction rolls back, the run never
    /// existed; once it commits, the run is queued. Returns the run's id,
    /// for [`WORKER::attach`](worker_core::WORKER::attach).
    ///
    /// Needs the tables: call [`migrate`](Postgres::migrate) first, or
    /// start a backend of this schema once (in any process).
    ///
    /// One statement stores the run and notifies the nodes, so on a
    /// connection outside a transaction both happen at once or not at all.
    /// What it costs: one round trip per run. A loop of `enqueue` in one
    /// transaction runs about 5,000 runs a second here; concurrent
    /// [`WORKER::call`](worker_core::WORKER::call)s are cheaper, as they
    /// share one insert, one notification and one commit per batch.
    ///
    /// ```no_run
    /// # async fn doc(pool: worker_postgres::sqlx::PgPool, backend: worker_postgres::Postgres) -> worker_core::Result<()> {
    /// use serde_json::json;
    ///
    /// let mut tx = pool.begin().await.unwrap();
    /// // … the application's own writes …
    /// let run_id = backend.enqueue(&mut tx, "send-email", Some(json!({"to": "a@b.c"}))).await?;
    /// tx.commit().await.unwrap(); // now it runs
    /// # Ok(()) }
    /// ```
    pub async fn enqueue(
        &self,
        conn: &mut sqlx::PgConnection,
        worker: &str,
        payload: Option<Value>,
    ) -> Result<String> {
        if worker.trim().is_empty() {
            return Err(Error::validation(
                "Postgres::enqueue: the worker name is empty; name a registered worker",
            ));
        }
        let limited = self
            .started
            .get()
            .and_then(|cluster| cluster.options(worker))
            .is_some_and(|options| options.is_limited());
        if limited {
            // Its limit key is read from the payload: the job path.
            let mut call = worker_core::Call::new();
            if let Some(payload) = payload {
                call = call.payload(payload);
            }
            return self.enqueue_with(conn, worker, call).await;
        }
        let sql = self.sql()?;
        // Time-ordered, as `call`'s (see there).
        let id = Uuid::now_v7();
        sqlx::query(sql.insert_run.clone())
            .bind(id)
            .bind(worker)
            .bind(payload)
            .bind(None::<i64>)
            .bind(&sql.channel)
            .execute(&mut *conn)
            .await
            .map_err(|err| {
                cluster::unavailable(
                    &self.config,
                    &format!("enqueue a run of worker '{worker}'"),
                    err,
                )
            })?;
        Ok(id.hyphenated().to_string())
    }

    /// Stores a run with per-call options ([`Call`](worker_core::Call):
    /// delay or time, key, priority, timeout) inside the caller's own
    /// transaction, as [`enqueue`](Self::enqueue) does; returns the id of
    /// the run the call is on (a `Duplicate::Join` gives the holder's).
    ///
    /// Once this backend is started with the worker registered, the
    /// worker's defaults apply as they do to `call_with`: its priority,
    /// its `unique` field, its limits (the `limit_by` field is read). A
    /// backend that only enqueues doesn't know them: the priority and key
    /// are the call's, and the run is not limited. Enqueue runs of a
    /// limited worker through a started backend.
    ///
    /// ```no_run
    /// # async fn doc(pool: worker_postgres::sqlx::PgPool, backend: worker_postgres::Postgres) -> worker_core::Result<()> {
    /// use std::time::Duration;
    /// use worker_core::Call;
    ///
    /// let mut tx = pool.begin().await.unwrap();
    /// let call = Call::new().delay(Duration::from_secs(86_400)).key("reminder:7");
    /// let run_id = backend.enqueue_with(&mut tx, "send-reminder", call).await?;
    /// tx.commit().await.unwrap();
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_with(
        &self,
        conn: &mut sqlx::PgConnection,
        worker: &str,
        call: worker_core::Call,
    ) -> Result<String> {
        let mut ids = self.enqueue_many(conn, worker, [call]).await?;
        Ok(ids.remove(0))
    }

    /// Stores many runs of `worker` inside the caller's transaction, in
    /// one insert, and returns their ids in order; see
    /// [`enqueue_with`](Self::enqueue_with). A `Duplicate::Reject` that
    /// finds its key taken fails the call; roll the transaction back then.
    pub async fn enqueue_many(
        &self,
        conn: &mut sqlx::PgConnection,
        worker: &str,
        calls: impl IntoIterator<Item = worker_core::Call>,
    ) -> Result<Vec<String>> {
        if worker.trim().is_empty() {
            return Err(Error::validation(
                "Postgres::enqueue_many: the worker name is empty; name a registered worker",
            ));
        }
        // A started backend knows the worker's options (its priority,
        // unique field and limits); one that only enqueues does not.
        let options = self
            .started
            .get()
            .and_then(|cluster| cluster.options(worker))
            .unwrap_or_default();
        let whole = options.is_limited().then(String::new);
        let calls = calls
            .into_iter()
            .map(|call| {
                let mut call = call.resolve_with(worker, &options)?;
                if call.limit_key.is_none() {
                    call.limit_key.clone_from(&whole);
                }
                Ok(call)
            })
            .collect::<Result<Vec<_>>>()?;
        let sql = self.sql()?;
        let ids = jobs::store(conn, &sql, worker, calls).await?;
        Ok(ids.iter().map(|id| id.hyphenated().to_string()).collect())
    }

    /// How many runs this process's handles are waiting on: each entry
    /// goes with the run's last handle (0 when no handle is alive).
    pub fn watched_runs(&self) -> usize {
        self.started.get().map_or(0, |cluster| cluster.watched())
    }

    /// Test hook, not part of the API: this process stops renewing its
    /// leases for `pause`, as a process too starved to renew would. Used
    /// by the tests of what a node does when its renewal is late.
    #[doc(hidden)]
    pub fn pause_lease_renewal_for_tests(&self, pause: Duration) -> Result<()> {
        self.cluster()?.pause_renewals(pause);
        Ok(())
    }

    /// Test hook, not part of the API: clears lane `lane` of the runs
    /// table now, as the upkeep does to the oldest lane each period (its
    /// runs move to the lane before it, then it is truncated). Says what
    /// it did: `Truncated { lane, moved }`, `AlreadyEmpty`, `Busy` (its
    /// lock was held) or `Full`.
    #[doc(hidden)]
    pub async fn clear_lane_for_tests(&self, lane: usize) -> Result<String> {
        self.cluster()?.clear_lane(lane).await
    }

    fn cluster(&self) -> Result<&Arc<Cluster>> {
        self.started.get().ok_or_else(|| {
            Error::msg("the PostgreSQL backend is not started: give it to Workers::backend and call start()")
        })
    }
}

impl BackendBuilder for Postgres {
    fn start(self: Box<Self>, node: Node) -> BoxFuture<'static, Result<Arc<dyn Backend>>> {
        Box::pin(async move {
            if self.started.get().is_some() {
                return Err(Error::msg(
                    "this PostgreSQL backend is started already: use a new Postgres for another manager",
                ));
            }
            let cluster = Cluster::start(self.config.clone(), node).await?;
            // Clones kept aside (for `enqueue`, `watched_runs`) see it too.
            let _ = self.started.set(cluster.clone());
            Ok(cluster as Arc<dyn Backend>)
        })
    }
}
