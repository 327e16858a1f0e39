//! awa 0.6.9: `migrations::run`, then a `Client` built with
//! `Client::builder(pool)`, a `QueueConfig` per queue and typed handlers
//! (`register`), jobs enqueued with `insert_with`, as its README and its
//! Rust getting-started guide show.
//!
//! awa 0.6 is built on sqlx 0.8, so this module talks to it through a
//! sqlx 0.8 pool (`sqlx_awa`); the rest of the bench is on the workspace's
//! sqlx 0.9.

use std::time::{Duration, Instant};

use awa::{
    Client, ClientBuilder, InsertOpts, JobArgs, JobContext, JobError, JobResult, PartitionedQueue,
    QueueConfig, QueueStorage, QueueStorageConfig,
};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx_awa::PgPool;

use super::common::{
    BoxFut, CONCURRENCY, Drained, Finished, LONG_JOB, Pace, Queue, Result, await_drain,
    check_stored, record_start, share,
};
use super::sustained::{self, Probe, Session};

pub struct Awa;

/// The queue every job goes to (with "partitioned-4", the logical queue of
/// four physical ones).
const QUEUE: &str = "bench";

/// How many physical queues "partitioned-4" spreads the jobs over: the
/// number awa's README and configuration guide use in their example.
const PARTITIONS: usize = 4;

/// How long a client's `shutdown` may wait for its jobs.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// The no-op job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoopJob {
    n: u32,
}

impl JobArgs for NoopJob {
    fn kind() -> &'static str {
        "noop"
    }
}

/// Case (c)'s job: records its start, then sleeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LongJob {
    n: u32,
}

impl JobArgs for LongJob {
    fn kind() -> &'static str {
        "long"
    }
}

/// The settings (all with 32 jobs at once; awa's default `max_workers`
/// is 50):
/// - "default": one queue with `QueueConfig::default()` but for
///   `max_workers` (claim batches of 512, 200 ms poll + LISTEN/NOTIFY,
///   heartbeat 30 s, a job rescued once its heartbeat is 90 s stale, the
///   rescue scan every 30 s, maintenance-leader election retried every
///   10 s).
/// - "partitioned-4": `PartitionedQueue::new("bench", 4)` with
///   `max_workers` 8 on each physical queue (4 × 8 = 32), jobs routed
///   round-robin (`route_opts_by_index`). awa's configuration guide
///   ("Choosing a throughput lever") names partitioned queues as the first
///   lever for a hot workload ("For a hot workload that can be
///   partitioned, start with `PartitionedQueue`"); it says to divide
///   `max_workers` over the partitions for a logical total. Its other
///   levers are already at their throughput end by default (claim batch
///   512, completion batches of 512 flushed every 1 ms) or advised against
///   for one queue (`claimers` > 1: "not the first lever").
/// - "recovery-1s": heartbeat every 333 ms, rescued when 1 s stale (awa
///   warns below 3 × the heartbeat), the rescue scan every 250 ms and the
///   leader election retried every 250 ms (a dead leader's successor
///   takes over the rescues): the same shape as our shortest lease. A
///   rescued job is retried after awa's backoff (2^attempt s + up to 25 %
///   jitter: 2-2.5 s after the first attempt), which no setting shortens.
fn builder(pool: &PgPool, setting: &str) -> Result<ClientBuilder> {
    let config = QueueConfig {
        max_workers: CONCURRENCY as u32,
        ..QueueConfig::default()
    };
    let builder = Client::builder(pool.clone());
    match setting {
        "default" => Ok(builder.queue(QUEUE, config)),
        "partitioned-4" => Ok(builder.partitioned_queue(
            &partitioned()?,
            QueueConfig {
                max_workers: (CONCURRENCY / PARTITIONS) as u32,
                ..QueueConfig::default()
            },
        )),
        "recovery-1s" => Ok(builder
            .queue(QUEUE, config)
            .heartbeat_interval(Duration::from_millis(333))
            .heartbeat_staleness(Duration::from_secs(1))
            .heartbeat_rescue_interval(Duration::from_millis(250))
            .leader_election_interval(Duration::from_millis(250))),
        other => Err(format!("awa: unknown setting {other:?}").into()),
    }
}

fn partitioned() -> Result<PartitionedQueue> {
    Ok(PartitionedQueue::new(QUEUE, PARTITIONS)?)
}

/// Where the `n`th job of `setting` goes.
fn opts(setting: &str, n: usize) -> Result<InsertOpts> {
    let opts = InsertOpts {
        queue: QUEUE.to_owned(),
        ..InsertOpts::default()
    };
    Ok(match setting {
        "partitioned-4" => partitioned()?.route_opts_by_index(opts, n),
        _ => opts,
    })
}

/// A default pool (as awa's README connects it) on a migrated database
/// whose storage engine is settled. On a fresh database awa's first
/// runtime to start moves it from its 0.5 "canonical" tables to the 0.6
/// queue storage, but only while no job was ever enqueued (its migration
/// guide: "insert one canonical job before starting any worker" and the
/// database stays canonical). So a client starts and stops once here,
/// before anything is enqueued: its fresh-install path, as the guide's
/// "migrate, then start workers". Then checks that the database did move
/// (a live awa runtime on it, say one left behind by an earlier
/// measurement, would keep it canonical).
async fn connect(url: &str) -> Result<PgPool> {
    let pool = PgPool::connect(url).await?;
    awa::migrations::run(&pool).await?;
    let client = Client::builder(pool.clone())
        .queue(QUEUE, QueueConfig::default())
        .register::<NoopJob, _, _>(|_job: NoopJob, _ctx: &JobContext| async {
            Ok::<_, JobError>(JobResult::Completed)
        })
        .build()?;
    let started = client.start().await;
    client.shutdown(SHUTDOWN).await;
    started?;
    let status = awa::storage::status(&pool).await?;
    if status.active_engine != "queue_storage" {
        pool.close().await;
        return Err(format!(
            "awa: the database stayed on its {:?} engine ({}), not queue storage",
            status.active_engine, status.state
        )
        .into());
    }
    Ok(pool)
}

/// Jobs recorded as done: awa's own exact terminal count, the sum that
/// `QueueStorage::queue_counts` takes on a fresh database (its terminal
/// counters trusted), over every queue: the segments already pruned
/// (`queue_lanes`/`queue_terminal_rollups`), the folded and pending
/// `done_entries` counters, and the compact receipt completions
/// (`receipt_completion_batches`) less their tombstones. `queue_counts`
/// itself also counts the available and running jobs by scanning the
/// queue, which takes seconds on 10k jobs, and so does the
/// `terminal_jobs` view: polling either would time the count.
async fn done(pool: &PgPool) -> Result<usize> {
    let (n,): (i64,) = sqlx_awa::query_as(
        "SELECT (
             COALESCE((SELECT sum(GREATEST(COALESCE(lanes.pruned_completed_count, 0),
                                           COALESCE(rollups.pruned_completed_count, 0))
                                  + COALESCE(rollups.pruned_failed_count, 0))
                         FROM awa.queue_lanes AS lanes
                         FULL OUTER JOIN awa.queue_terminal_rollups AS rollups
                           USING (queue, priority)), 0)
             + COALESCE((SELECT sum(live_terminal_count) FROM awa.queue_terminal_live_counts), 0)
             + COALESCE((SELECT sum(terminal_delta) FROM awa.queue_terminal_count_deltas), 0)
             + COALESCE((SELECT sum(completed_count) FROM awa.receipt_completion_batches), 0)
             - COALESCE((SELECT count(*) FROM awa.receipt_completion_tombstones), 0)
         )::bigint",
    )
    .fetch_one(pool)
    .await?;
    Ok(n as usize)
}

async fn drain(url: &str, setting: &str, jobs: usize, cap: Duration) -> Result<Drained> {
    let pool = connect(url).await?;
    // Queued first in one COPY, awa's bulk insert.
    let mut params = Vec::with_capacity(jobs);
    for n in 0..jobs {
        params.push(awa::insert::params_with(
            &NoopJob { n: n as u32 },
            opts(setting, n)?,
        )?);
    }
    awa::insert_many_copy_from_pool(&pool, &params).await?;

    let finished = Finished::default();
    let counter = finished.clone();
    let client = builder(&pool, setting)?
        .register::<NoopJob, _, _>(move |_job: NoopJob, _ctx: &JobContext| {
            let counter = counter.clone();
            async move {
                counter.add();
                Ok::<_, JobError>(JobResult::Completed)
            }
        })
        .build()?;
    let started = Instant::now();
    let drained = match client.start().await {
        Ok(()) => await_drain(started, &finished, jobs, cap, || done(&pool)).await,
        Err(err) => Err(err.into()),
    };
    stop(&client, &pool).await;
    drained
}

/// Shuts `client` down and closes its pool, whatever happened: a client
/// left running would reconnect to the next measurement's database of
/// the same name, claim its jobs and keep it on awa's canonical engine.
async fn stop(client: &Client, pool: &PgPool) {
    client.shutdown(SHUTDOWN).await;
    pool.close().await;
}

async fn latency(url: &str, setting: &str, pace: Pace) -> Result<Vec<Duration>> {
    let pool = connect(url).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let client = builder(&pool, setting)?
        .register::<NoopJob, _, _>(move |_job: NoopJob, _ctx: &JobContext| {
            let _ = tx.send(Instant::now());
            async { Ok::<_, JobError>(JobResult::Completed) }
        })
        .build()?;
    let measured = async {
        client.start().await?;
        // Let it start listening and go idle first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut samples = Vec::with_capacity(pace.jobs);
        let began = Instant::now();
        for n in 0..pace.jobs {
            if began.elapsed() >= pace.budget {
                break;
            }
            tokio::time::sleep(pace.gap).await;
            let enqueued = Instant::now();
            awa::insert_with(&pool, &NoopJob { n: n as u32 }, opts(setting, n)?).await?;
            let started = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .map_err(|_| "awa: a job did not start within 60 s")?
                .ok_or("awa: the worker is gone")?;
            samples.push(started.saturating_duration_since(enqueued));
        }
        Ok::<_, super::common::Error>(samples)
    }
    .await;
    stop(&client, &pool).await;
    measured
}

async fn enqueue(url: &str, jobs: usize, tasks: usize) -> Result<Duration> {
    let pool = connect(url).await?;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let pool = pool.clone();
        let n = share(jobs, tasks, task);
        set.spawn(async move {
            for n in 0..n as u32 {
                // One INSERT, committed on return.
                awa::insert_with(&pool, &NoopJob { n }, opts("default", 0)?).await?;
            }
            Ok::<_, super::common::Error>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let elapsed = started.elapsed();
    check_stored(url, "SELECT count(*) FROM awa.jobs", jobs).await?;
    pool.close().await;
    Ok(elapsed)
}

/// (e) awa's two COPY paths, on a database already on queue storage (see
/// [`connect`]):
/// - "copy": `insert_many_copy_from_pool`, the crate's top-level bulk
///   insert: COPY (CSV) into a temp staging table, then one
///   `INSERT .. SELECT` through `awa.insert_job_compat` per staged row, in
///   one transaction.
/// - "queue-storage-copy": `QueueStorage::enqueue_params_copy`, which its
///   docs recommend "for high-volume queue-storage producers": ids taken
///   from its sequence, then COPY straight into `ready_entries`, in one
///   transaction.
///
/// (`insert_many`, one multi-row INSERT with 12 binds a job, can't take
/// more than 5,461 jobs: PostgreSQL's 65,535 bind limit.)
async fn bulk(url: &str, setting: &str, jobs: usize) -> Result<Duration> {
    let pool = connect(url).await?;
    let store = QueueStorage::new(QueueStorageConfig::default())?;
    let params = || -> Result<Vec<awa::InsertParams>> {
        (0..jobs)
            .map(|n| {
                let job = NoopJob { n: n as u32 };
                Ok(awa::insert::params_with(&job, opts("default", 0)?)?)
            })
            .collect()
    };
    let measured = async {
        let started = Instant::now();
        match setting {
            "copy" => {
                awa::insert_many_copy_from_pool(&pool, &params()?).await?;
            }
            "queue-storage-copy" => {
                let stored = store.enqueue_params_copy(&pool, &params()?).await?;
                if stored != jobs {
                    return Err(format!("awa stored {stored} of {jobs} jobs").into());
                }
            }
            other => return Err(format!("awa: no bulk path {other:?}").into()),
        }
        Ok::<_, super::common::Error>(started.elapsed())
    }
    .await;
    let checked = match &measured {
        Ok(_) => check_stored(url, "SELECT count(*) FROM awa.jobs", jobs).await,
        Err(_) => Ok(()),
    };
    pool.close().await;
    checked?;
    measured
}

async fn prepare(url: &str) -> Result<()> {
    connect(url).await?.close().await;
    Ok(())
}

async fn enqueue_long(url: &str) -> Result<()> {
    let pool = PgPool::connect(url).await?;
    awa::insert_with(&pool, &LongJob { n: 0 }, opts("default", 0)?).await?;
    pool.close().await;
    Ok(())
}

async fn node(url: &str, setting: &str, name: &str) -> Result<()> {
    let pool = PgPool::connect(url).await?;
    // `bench_starts` is written with the bench's own sqlx.
    let starts = sqlx::PgPool::connect(url).await?;
    let name = name.to_owned();
    let client = builder(&pool, setting)?
        .register::<LongJob, _, _>(move |_job: LongJob, ctx: &JobContext| {
            let starts = starts.clone();
            let name = name.clone();
            let (id, attempt) = (ctx.job.id, ctx.job.attempt);
            async move {
                let recorded =
                    record_start(&starts, "awa", &id.to_string(), i64::from(attempt), &name).await;
                if let Err(err) = recorded {
                    eprintln!("awa node: can't record the start: {err}");
                }
                tokio::time::sleep(LONG_JOB).await;
                Ok::<_, JobError>(JobResult::Completed)
            }
        })
        .build()?;
    client.start().await?;
    println!("ready");
    // Runs until killed.
    std::future::pending::<()>().await;
    Ok(())
}

impl Queue for Awa {
    fn name(&self) -> &'static str {
        "awa"
    }
    fn database(&self) -> &'static str {
        "bench_awa"
    }
    fn describe(&self, setting: &str) -> String {
        match setting {
            "default" => "defaults (claim batch 512, 200 ms poll + NOTIFY), max_workers 32".to_owned(),
            "partitioned-4" => {
                "PartitionedQueue of 4 × max_workers 8, round-robin (its first throughput lever)"
                    .to_owned()
            }
            "recovery-1s" => {
                "heartbeat 333 ms, staleness 1 s, rescue scan 250 ms, leader election 250 ms (+ its retry backoff, 2-2.5 s)"
                    .to_owned()
            }
            "copy" => "awa::insert_many_copy_from_pool, default pool".to_owned(),
            "queue-storage-copy" => {
                "QueueStorage::enqueue_params_copy (default QueueStorageConfig, the client's)"
                    .to_owned()
            }
            other => other.to_owned(),
        }
    }
    fn drain<'a>(
        &'a self,
        url: &'a str,
        setting: &'a str,
        jobs: usize,
        cap: Duration,
    ) -> BoxFut<'a, Drained> {
        Box::pin(drain(url, setting, jobs, cap))
    }
    fn latency<'a>(
        &'a self,
        url: &'a str,
        setting: &'a str,
        pace: Pace,
    ) -> BoxFut<'a, Vec<Duration>> {
        Box::pin(latency(url, setting, pace))
    }
    fn enqueue<'a>(&'a self, url: &'a str, jobs: usize, tasks: usize) -> BoxFut<'a, Duration> {
        Box::pin(enqueue(url, jobs, tasks))
    }
    fn bulk<'a>(&'a self, url: &'a str, setting: &'a str, jobs: usize) -> BoxFut<'a, Duration> {
        Box::pin(bulk(url, setting, jobs))
    }
    fn prepare<'a>(&'a self, url: &'a str) -> BoxFut<'a, ()> {
        Box::pin(prepare(url))
    }
    fn enqueue_long<'a>(&'a self, url: &'a str) -> BoxFut<'a, ()> {
        Box::pin(enqueue_long(url))
    }
    fn node<'a>(&'a self, url: &'a str, setting: &'a str, name: &'a str) -> BoxFut<'a, ()> {
        Box::pin(node(url, setting, name))
    }
}

/// The sustained-load job: the bench's payload (enqueue time and padding).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SustainedJob {
    at: u64,
    pad: String,
}

impl JobArgs for SustainedJob {
    fn kind() -> &'static str {
        "sustained"
    }
}

/// The sustained-load node: one queue with awa's defaults but
/// `max_workers` (the bench's concurrency) and the completed-job
/// retention.
struct Sustained {
    client: Client,
    pool: PgPool,
    /// The producer's own pool, as a web app that enqueues would have.
    producer: PgPool,
}

async fn start_sustained(
    url: &str,
    probe: Arc<Probe>,
    retention: Duration,
) -> Result<Box<dyn Session>> {
    let pool = connect(url).await?;
    let client = Client::builder(pool.clone())
        .queue(
            QUEUE,
            QueueConfig {
                max_workers: sustained::CONCURRENCY as u32,
                ..QueueConfig::default()
            },
        )
        .completed_retention(retention)
        .register::<SustainedJob, _, _>(move |job: SustainedJob, _ctx: &JobContext| {
            let probe = probe.clone();
            async move {
                probe.started(Some(job.at));
                tokio::time::sleep(sustained::WORK).await;
                probe.finished();
                Ok::<_, JobError>(JobResult::Completed)
            }
        })
        .build()?;
    client.start().await?;
    let producer = PgPool::connect(url).await?;
    Ok(Box::new(Sustained {
        client,
        pool,
        producer,
    }))
}

impl Session for Sustained {
    fn enqueue<'a>(&'a self, payloads: Vec<Value>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let mut params = Vec::with_capacity(payloads.len());
            for payload in payloads {
                let job: SustainedJob = serde_json::from_value(payload)?;
                params.push(awa::insert::params_with(&job, opts("default", 0)?)?);
            }
            // COPY, awa's fastest bulk insert (its multi-row
            // `insert_many` kept only ~1.3k jobs/s queued here).
            awa::insert_many_copy_from_pool(&self.producer, &params).await?;
            Ok(())
        })
    }

    fn read_dashboard<'a>(&'a self) -> BoxFut<'a, bool> {
        // awa's UI is a separate program; the bench has no reads for it.
        Box::pin(async { Ok(false) })
    }

    fn stop(self: Box<Self>) -> BoxFut<'static, ()> {
        Box::pin(async move {
            stop(&self.client, &self.pool).await;
            self.producer.close().await;
            Ok(())
        })
    }
}

impl sustained::Load for Awa {
    fn name(&self) -> &'static str {
        "awa"
    }
    fn database(&self) -> &'static str {
        "bench_awa"
    }
    fn schema(&self) -> &'static str {
        "awa"
    }
    fn start<'a>(
        &'a self,
        url: &'a str,
        probe: Arc<Probe>,
        retention: Duration,
    ) -> BoxFut<'a, Box<dyn Session>> {
        Box::pin(start_sustained(url, probe, retention))
    }
}
