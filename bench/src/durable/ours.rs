//! Our side: worker-core's `WorkerManager` with the worker-postgres
//! backend, used as its README shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use worker_core::backend::HistoryQuery;
use worker_core::{Call, WorkerManager, WorkerOptions, Workflow};
use worker_postgres::Postgres;

use super::common::{
    BoxFut, CONCURRENCY, Drained, Finished, LONG_JOB, Pace, Queue, Result, await_drain,
    check_stored, record_start, share,
};
use super::sustained::{self, Probe, Session};

/// The tables' schema (in the database `bench_ours`).
const SCHEMA: &str = "bench_ours";

pub struct Ours;

/// The backend for `setting`: "default" keeps every default but the
/// concurrency of the cases (32); "lease-1s" is the shortest lease we'd
/// call safe (renewed every 333 ms, so two renewals may be late).
fn backend(url: &str, setting: &str) -> Result<Postgres> {
    let backend = Postgres::new(url).schema(SCHEMA).concurrency(CONCURRENCY);
    match setting {
        "default" => Ok(backend),
        "lease-1s" => Ok(backend.lease(Duration::from_secs(1))),
        other => Err(format!("ours: unknown setting {other:?}").into()),
    }
}

/// A manager that only calls: its backend never claims runs.
async fn caller(url: &str) -> Result<WorkerManager> {
    let manager = WorkerManager::new();
    manager.register("noop", |_ctx| async { Ok(()) }).await?;
    let backend = Postgres::new(url).schema(SCHEMA).execute(false);
    manager.set_backend(backend).await?;
    Ok(manager)
}

async fn drain(url: &str, setting: &str, jobs: usize, cap: Duration) -> Result<Drained> {
    // Queue them first, in one transaction with the documented
    // `Postgres::enqueue`, after `migrate` made the tables.
    let store = Postgres::new(url).schema(SCHEMA);
    store.migrate().await?;
    let pool = worker_postgres::sqlx::PgPool::connect(url).await?;
    let mut tx = pool.begin().await?;
    for _ in 0..jobs {
        store.enqueue(&mut tx, "noop", None).await?;
    }
    tx.commit().await?;
    pool.close().await;

    drain_queued(url, setting, "noop", WorkerOptions::new(), jobs, cap).await
}

/// Starts a node with `worker` (no-op runs, `options`) and waits until it
/// drained the `jobs` runs queued before.
async fn drain_queued(
    url: &str,
    setting: &str,
    worker: &str,
    options: WorkerOptions,
    jobs: usize,
    cap: Duration,
) -> Result<Drained> {
    let finished = Finished::default();
    let manager = WorkerManager::new();
    let counter = finished.clone();
    manager
        .register_with(worker, options, move |_ctx| {
            let counter = counter.clone();
            async move {
                counter.add();
                Ok(())
            }
        })
        .await?;
    let started = Instant::now();
    // Connects, finds the tables in place and starts claiming.
    manager.set_backend(backend(url, setting)?).await?;
    // Done = the outcome is committed: the cluster-wide count says so.
    let drained = await_drain(started, &finished, jobs, cap, || async {
        Ok(manager.stats(worker).await.map_or(0, |s| s.runs as usize))
    })
    .await?;
    manager.shutdown().await?;
    Ok(drained)
}

/// (h) `steps` no-op steps of one worker, stored first by a manager that
/// executes nothing, then drained by one node as (a) drains: as
/// independent runs (`call_many`) or as diamonds of 4 (`start_workflow`,
/// one commit each).
pub async fn drain_steps(url: &str, shape: &str, steps: usize, cap: Duration) -> Result<Drained> {
    let queue = WorkerManager::new();
    queue.register("step", |_ctx| async { Ok(()) }).await?;
    queue
        .set_backend(Postgres::new(url).schema(SCHEMA).execute(false))
        .await?;
    match shape {
        "runs" => {
            queue
                .call_many("step", (0..steps).map(|_| Call::new()))
                .await?;
        }
        "diamonds" => {
            for _ in 0..steps / 4 {
                let flow = Workflow::new("diamond")
                    .step("a", "step", Call::new())
                    .step("b", "step", Call::new())
                    .after(["a"])
                    .step("c", "step", Call::new())
                    .after(["a"])
                    .step("d", "step", Call::new())
                    .after(["b", "c"]);
                // Stored once this returns; the handle isn't needed.
                drop(queue.start_workflow(flow).await?);
            }
        }
        other => return Err(format!("ours: no shape {other:?}").into()),
    }
    queue.shutdown().await?;
    drain_queued(url, "default", "step", WorkerOptions::new(), steps, cap).await
}

/// The options of the drained worker in (f) and (g), by leg.
fn limited_options(setting: &str) -> Result<WorkerOptions> {
    let options = WorkerOptions::new();
    Ok(match setting {
        "no-limits" => options,
        "global-32" => options.global_concurrency(32),
        "rate-above" => options.rate(RATE_ABOVE),
        "keys-20" => options.limit_by("key").key_concurrency(1),
        other => return Err(format!("ours: no limited leg {other:?}").into()),
    })
}

/// (f) A rate above what one node drains (about 25,000 a second), so that
/// what it costs is its bookkeeping, not its limit.
pub const RATE_ABOVE: &str = "50000/1s";

/// A drain of `jobs` queued runs of one worker with the leg's limits, as
/// (a) drains, on a node of concurrency 32: (f) the cost of a limit that
/// never binds, (g) 20 keys one at a time each. The runs are queued with
/// `call_many` (so that they carry their limit key), by a manager with
/// the same worker. Also returns the most runs of one key the database
/// recorded at once (claim to ending), for (g)'s exactness.
pub async fn drain_limited(
    url: &str,
    setting: &str,
    jobs: usize,
    cap: Duration,
) -> Result<(Drained, usize)> {
    let options = limited_options(setting)?;
    if setting == "rate-above" {
        // A start before: the rate's tokens are made once, by a node's
        // first start, and kept.
        let warm = WorkerManager::new();
        warm.register_with("limited", options.clone(), |_ctx| async { Ok(()) })
            .await?;
        warm.set_backend(backend(url, "default")?).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        warm.shutdown().await?;
    }
    let queue = WorkerManager::new();
    queue
        .register_with("limited", options.clone(), |_ctx| async { Ok(()) })
        .await?;
    queue
        .set_backend(Postgres::new(url).schema(SCHEMA).execute(false))
        .await?;
    let calls = (0..jobs).map(|n| Call::new().payload(json!({ "key": n % 20 })));
    queue.call_many("limited", calls).await?;
    queue.shutdown().await?;

    let drained = drain_queued(url, "default", "limited", options, jobs, cap).await?;
    let most = most_of_one_key_at_once(url).await?;
    Ok((drained, most))
}

/// Of the ended runs, the most of one `key` holding a slot at one instant
/// (from the claim to the slot's release, or else the ending), as the
/// database recorded them.
async fn most_of_one_key_at_once(url: &str) -> Result<usize> {
    let pool = worker_postgres::sqlx::PgPool::connect(url).await?;
    let edges: Vec<(String, i64, i32)> = worker_postgres::sqlx::query_as(
        "SELECT payload->>'key', floor(extract(epoch FROM claimed_at) * 1000000)::int8, 1
         FROM bench_ours.ended_runs
         UNION ALL
         SELECT payload->>'key',
                floor(extract(epoch FROM coalesce(released_at, ended_at)) * 1000000)::int8, -1
         FROM bench_ours.ended_runs
         ORDER BY 1, 2, 3",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    let (mut key, mut now, mut most) = (String::new(), 0i32, 0i32);
    for (edge_key, _, step) in edges {
        if edge_key != key {
            (key, now) = (edge_key, 0);
        }
        now += step;
        most = most.max(now);
    }
    Ok(usize::try_from(most).unwrap_or(0))
}

async fn latency(url: &str, setting: &str, pace: Pace) -> Result<Vec<Duration>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let manager = WorkerManager::new();
    manager
        .register("noop", move |_ctx| {
            let _ = tx.send(Instant::now());
            async { Ok(()) }
        })
        .await?;
    manager.set_backend(backend(url, setting)?).await?;
    let mut samples = Vec::with_capacity(pace.jobs);
    let began = Instant::now();
    for _ in 0..pace.jobs {
        if began.elapsed() >= pace.budget {
            break;
        }
        tokio::time::sleep(pace.gap).await;
        let enqueued = Instant::now();
        manager.call("noop", None, None).await?;
        let started = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or("ours: the worker is gone")?;
        samples.push(started.saturating_duration_since(enqueued));
    }
    manager.shutdown().await?;
    Ok(samples)
}

async fn enqueue(url: &str, jobs: usize, tasks: usize) -> Result<Duration> {
    let manager = caller(url).await?;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let manager = manager.clone();
        let n = share(jobs, tasks, task);
        set.spawn(async move {
            for _ in 0..n {
                // Returns once the run is committed.
                manager.call("noop", None, None).await?;
            }
            Ok::<_, worker_core::Error>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let elapsed = started.elapsed();
    check_stored(url, "SELECT count(*) FROM bench_ours.runs", jobs).await?;
    manager.shutdown().await?;
    Ok(elapsed)
}

/// (e) "call-many": `WorkerManager::call_many` on a calls-only manager
/// (one `unnest` insert in a transaction of its own); "enqueue-many":
/// `Postgres::enqueue_many` in the caller's transaction, committed by the
/// caller (the same insert).
async fn bulk(url: &str, setting: &str, jobs: usize) -> Result<Duration> {
    let calls = || (0..jobs).map(|n| Call::new().payload(json!({ "n": n })));
    let elapsed = match setting {
        "call-many" => {
            let manager = caller(url).await?;
            let started = Instant::now();
            let ids = manager.call_many("noop", calls()).await?;
            let elapsed = started.elapsed();
            manager.shutdown().await?;
            if ids.len() != jobs {
                return Err(format!("call_many gave {} ids for {jobs} calls", ids.len()).into());
            }
            elapsed
        }
        "enqueue-many" => {
            let store = Postgres::new(url).schema(SCHEMA);
            store.migrate().await?;
            let pool = worker_postgres::sqlx::PgPool::connect(url).await?;
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            let ids = store.enqueue_many(&mut tx, "noop", calls()).await?;
            tx.commit().await?;
            let elapsed = started.elapsed();
            pool.close().await;
            if ids.len() != jobs {
                return Err(format!("enqueue_many gave {} ids for {jobs} calls", ids.len()).into());
            }
            elapsed
        }
        other => return Err(format!("ours: no bulk path {other:?}").into()),
    };
    check_stored(url, "SELECT count(*) FROM bench_ours.runs", jobs).await?;
    Ok(elapsed)
}

async fn prepare(url: &str) -> Result<()> {
    caller(url).await?.shutdown().await?;
    Ok(())
}

async fn enqueue_long(url: &str) -> Result<()> {
    let manager = WorkerManager::new();
    manager.register("long", |_ctx| async { Ok(()) }).await?;
    let backend = Postgres::new(url).schema(SCHEMA).execute(false);
    manager.set_backend(backend).await?;
    manager.call("long", None, None).await?;
    manager.shutdown().await?;
    Ok(())
}

async fn node(url: &str, setting: &str, name: &str) -> Result<()> {
    let pool = worker_postgres::sqlx::PgPool::connect(url).await?;
    let manager = WorkerManager::new();
    let node = name.to_owned();
    manager
        .register("long", move |ctx| {
            let pool = pool.clone();
            let node = node.clone();
            async move {
                let recorded =
                    record_start(&pool, "ours", ctx.run_id(), i64::from(ctx.attempt()), &node)
                        .await;
                if let Err(err) = recorded {
                    eprintln!("ours node: can't record the start: {err}");
                }
                tokio::time::sleep(LONG_JOB).await;
                Ok(())
            }
        })
        .await?;
    manager.set_backend(backend(url, setting)?).await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

impl Queue for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }
    fn database(&self) -> &'static str {
        "bench_ours"
    }
    fn describe(&self, setting: &str) -> String {
        match setting {
            "default" => "defaults (lease 30 s), concurrency 32".to_owned(),
            "lease-1s" => "lease 1 s (renewed every 333 ms)".to_owned(),
            "call-many" => "manager.call_many on an execute(false) manager".to_owned(),
            "enqueue-many" => {
                "Postgres::enqueue_many in the caller's transaction, then commit".to_owned()
            }
            "no-limits" => "no limits, concurrency 32".to_owned(),
            "global-32" => "global_concurrency = 32, concurrency 32".to_owned(),
            "rate-above" => format!(
                "rate = \"{RATE_ABOVE}\" (above the drain rate; its tokens made by an earlier start), concurrency 32"
            ),
            "keys-20" => {
                "limit_by = \"key\" over 20 keys, key_concurrency = 1, concurrency 32".to_owned()
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

/// The sustained-load node: the bench's job on one manager, with every
/// default but the concurrency and the retention.
struct Sustained {
    manager: WorkerManager,
}

async fn start_sustained(
    url: &str,
    probe: Arc<Probe>,
    retention: Duration,
) -> Result<Box<dyn Session>> {
    let manager = WorkerManager::new();
    manager
        .register("job", move |ctx| {
            let probe = probe.clone();
            async move {
                probe.started(ctx.payload().and_then(|p| p["at"].as_u64()));
                ctx.sleep(sustained::WORK).await;
                probe.finished();
                Ok(())
            }
        })
        .await?;
    let backend = Postgres::new(url)
        .schema(SCHEMA)
        .concurrency(sustained::CONCURRENCY)
        .retention(retention);
    manager.set_backend(backend).await?;
    Ok(Box::new(Sustained { manager }))
}

impl Session for Sustained {
    fn enqueue<'a>(&'a self, payloads: Vec<Value>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            // Concurrent calls share one insert and one commit.
            let calls = payloads
                .into_iter()
                .map(|payload| self.manager.call("job", None, Some(payload)));
            for stored in futures::future::join_all(calls).await {
                stored?;
            }
            Ok(())
        })
    }

    fn read_dashboard<'a>(&'a self) -> BoxFut<'a, bool> {
        Box::pin(async move {
            let Some(history) = self.manager.history() else {
                return Ok(false);
            };
            let recent = history
                .recent(HistoryQuery {
                    worker: None,
                    outcome: None,
                    failed_first: true,
                    limit: 50,
                })
                .await?;
            if let Some(run) = recent.first() {
                history.run(run.run_id).await?;
            }
            self.manager.stats("job").await;
            history.nodes().await?;
            history
                .timeline(Duration::from_secs(3600), Duration::from_secs(60))
                .await?;
            Ok(true)
        })
    }

    fn stop(self: Box<Self>) -> BoxFut<'static, ()> {
        Box::pin(async move {
            self.manager.shutdown().await?;
            Ok(())
        })
    }
}

impl sustained::Load for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }
    fn database(&self) -> &'static str {
        "bench_ours"
    }
    fn schema(&self) -> &'static str {
        SCHEMA
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
