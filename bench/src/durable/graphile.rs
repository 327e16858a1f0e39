//! graphile_worker 0.14: `WorkerOptions` → `init()` → `run()`, jobs as
//! `TaskHandler`s, enqueued with `WorkerUtils`, as its README shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use graphile_worker::{
    IntoTaskHandlerResult, JobSpec, LocalQueueConfig, TaskHandler, Worker, WorkerContext,
    WorkerOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::common::{
    BoxFut, CONCURRENCY, Drained, Finished, LONG_JOB, Pace, Queue, Result, await_drain,
    check_stored, record_start, share,
};

pub struct Graphile;

/// The poll interval of the tuned settings: short enough that polling is
/// never what a job waits for, long enough not to busy-loop the server.
const SHORT_POLL: Duration = Duration::from_millis(10);

/// The no-op job. It reports to whichever of the bench's extensions the
/// worker has: a `Finished` counter (case a) or a start-time channel (b).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoopJob {
    n: u32,
}

impl TaskHandler for NoopJob {
    const IDENTIFIER: &'static str = "noop";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        if let Some(started) = ctx.get_ext::<UnboundedSender<Instant>>() {
            let _ = started.send(Instant::now());
        }
        if let Some(finished) = ctx.get_ext::<Finished>() {
            finished.add();
        }
        Ok::<(), String>(())
    }
}

/// This process's node name, for `bench_starts`.
#[derive(Debug, Clone)]
struct NodeName(String);

/// Case (c)'s job: records its start, then sleeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LongJob {
    n: u32,
}

impl TaskHandler for LongJob {
    const IDENTIFIER: &'static str = "long";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let node = ctx.get_ext::<NodeName>().map_or("?", |n| n.0.as_str());
        let job = ctx.job();
        let recorded = record_start(
            ctx.pg_pool(),
            "graphile",
            &job.id().to_string(),
            i64::from(*job.attempts()),
            node,
        )
        .await;
        if let Err(err) = recorded {
            eprintln!("graphile node: can't record the start: {err}");
        }
        tokio::time::sleep(LONG_JOB).await;
        Ok::<(), String>(())
    }
}

/// The options for `setting` (all with concurrency 32; its default is
/// the number of CPUs):
/// - "default": everything else as it comes (1 s poll, LISTEN/NOTIFY on,
///   no local queue, no dead-worker recovery).
/// - "local-queue": `local_queue(LocalQueueConfig::default())` (batches
///   of 100) and a 10 ms `poll_interval`.
/// - "best": that and `complete_job_batch_delay(2 ms)` (completions
///   written in batches; its docs recommend 1-5 ms): the fastest we found.
/// - "recovery-1s": `WorkerRecoveryConfig` enabled (it is off by
///   default, so a dead worker's jobs stay locked for ever) with
///   heartbeat 334 ms, sweep threshold 1 s, sweep every 250 ms, recovery
///   delay 0: the same shape as our shortest lease. A recovered job gets
///   no notification, so the poll is short too.
fn options(url: &str, setting: &str) -> Result<WorkerOptions> {
    let options = WorkerOptions::default()
        .database_url(url)
        .concurrency(CONCURRENCY)
        // The bench's own process handles Ctrl+C.
        .listen_os_shutdown_signals(false);
    match setting {
        "default" => Ok(options),
        "local-queue" => Ok(options
            .local_queue(LocalQueueConfig::default())
            .poll_interval(SHORT_POLL)),
        "best" => Ok(options
            .local_queue(LocalQueueConfig::default())
            .poll_interval(SHORT_POLL)
            .complete_job_batch_delay(Duration::from_millis(2))),
        "recovery-1s" => Ok(options
            .heartbeat_interval(Duration::from_millis(334))
            .sweep_threshold(Duration::from_secs(1))
            .sweep_interval(Duration::from_millis(250))
            .recovery_delay(Duration::ZERO)
            .poll_interval(Duration::from_millis(100))),
        other => Err(format!("graphile: unknown setting {other:?}").into()),
    }
}

/// Runs `worker` in a task until `request_shutdown`.
fn spawn_run(worker: &Arc<Worker>) -> tokio::task::JoinHandle<Result<()>> {
    let worker = worker.clone();
    tokio::spawn(async move {
        worker.run().await?;
        Ok(())
    })
}

async fn stop(worker: Arc<Worker>, run: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    worker.request_shutdown();
    run.await??;
    worker.pg_pool().close().await;
    Ok(())
}

async fn drain(url: &str, setting: &str, jobs: usize, cap: Duration) -> Result<Drained> {
    let finished = Finished::default();
    let worker = options(url, setting)?
        .define_job::<NoopJob>()
        .add_extension(finished.clone())
        .init()
        .await?;
    let spec = JobSpec::default();
    let batch: Vec<(NoopJob, &JobSpec)> =
        (0..jobs as u32).map(|n| (NoopJob { n }, &spec)).collect();
    worker.create_utils().add_jobs(&batch).await?;

    let worker = Arc::new(worker);
    let started = Instant::now();
    let run = spawn_run(&worker);
    // graphile deletes a job once it completed: done = queued − left.
    let drained = await_drain(started, &finished, jobs, cap, || async {
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM graphile_worker._private_jobs")
            .fetch_one(worker.pg_pool())
            .await?;
        Ok(jobs.saturating_sub(left as usize))
    })
    .await?;
    stop(worker, run).await?;
    Ok(drained)
}

async fn latency(url: &str, setting: &str, pace: Pace) -> Result<Vec<Duration>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let worker = Arc::new(
        options(url, setting)?
            .define_job::<NoopJob>()
            .add_extension(tx)
            .init()
            .await?,
    );
    let utils = worker.create_utils();
    let run = spawn_run(&worker);
    // Let it start listening and go idle first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(pace.jobs);
    let began = Instant::now();
    for n in 0..pace.jobs as u32 {
        if began.elapsed() >= pace.budget {
            break;
        }
        tokio::time::sleep(pace.gap).await;
        let enqueued = Instant::now();
        utils.add_job(NoopJob { n }, JobSpec::default()).await?;
        let started = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .map_err(|_| "graphile: a job did not start within 60 s")?
            .ok_or("graphile: the worker is gone")?;
        samples.push(started.saturating_duration_since(enqueued));
    }
    stop(worker, run).await?;
    Ok(samples)
}

async fn enqueue(url: &str, jobs: usize, tasks: usize) -> Result<Duration> {
    // `init` migrates; the worker itself never runs, its utils enqueue.
    let worker = options(url, "default")?
        .define_job::<NoopJob>()
        .init()
        .await?;
    let utils = worker.create_utils();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let utils = utils.clone();
        let n = share(jobs, tasks, task);
        set.spawn(async move {
            for n in 0..n as u32 {
                // One `add_job` call, committed on return.
                utils.add_job(NoopJob { n }, JobSpec::default()).await?;
            }
            Ok::<_, graphile_worker::errors::GraphileWorkerError>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let elapsed = started.elapsed();
    check_stored(
        url,
        "SELECT count(*) FROM graphile_worker._private_jobs",
        jobs,
    )
    .await?;
    worker.pg_pool().close().await;
    Ok(elapsed)
}

/// (e) `WorkerUtils::add_jobs`: the batch as one JSON array passed to its
/// `add_jobs` SQL function (`json_populate_recordset`), one statement on
/// the pool (autocommit); from 10,000 jobs on it then runs `ANALYZE` on
/// the jobs table before returning.
async fn bulk(url: &str, setting: &str, jobs: usize) -> Result<Duration> {
    if setting != "add-jobs" {
        return Err(format!("graphile: no bulk path {setting:?}").into());
    }
    // `init` migrates; the worker itself never runs.
    let worker = options(url, "default")?
        .define_job::<NoopJob>()
        .init()
        .await?;
    let utils = worker.create_utils();
    let spec = JobSpec::default();
    let started = Instant::now();
    let batch: Vec<(NoopJob, &JobSpec)> =
        (0..jobs as u32).map(|n| (NoopJob { n }, &spec)).collect();
    utils.add_jobs(&batch).await?;
    let elapsed = started.elapsed();
    check_stored(
        url,
        "SELECT count(*) FROM graphile_worker._private_jobs",
        jobs,
    )
    .await?;
    worker.pg_pool().close().await;
    Ok(elapsed)
}

async fn prepare(url: &str) -> Result<()> {
    let worker = options(url, "default")?
        .define_job::<LongJob>()
        .init()
        .await?;
    worker.pg_pool().close().await;
    Ok(())
}

async fn enqueue_long(url: &str) -> Result<()> {
    let worker = options(url, "default")?
        .define_job::<LongJob>()
        .init()
        .await?;
    worker
        .create_utils()
        .add_job(LongJob { n: 0 }, JobSpec::default())
        .await?;
    worker.pg_pool().close().await;
    Ok(())
}

async fn node(url: &str, setting: &str, name: &str) -> Result<()> {
    let worker = Arc::new(
        options(url, setting)?
            .define_job::<LongJob>()
            .add_extension(NodeName(name.to_owned()))
            .init()
            .await?,
    );
    let run = spawn_run(&worker);
    println!("ready");
    run.await??;
    Ok(())
}

impl Queue for Graphile {
    fn name(&self) -> &'static str {
        "graphile"
    }
    fn database(&self) -> &'static str {
        "bench_graphile"
    }
    fn describe(&self, setting: &str) -> String {
        match setting {
            "default" => "defaults (1 s poll + NOTIFY), concurrency 32".to_owned(),
            "local-queue" => "local_queue (100) + poll_interval 10 ms".to_owned(),
            "best" => {
                "local_queue (100) + poll_interval 10 ms + complete_job_batch_delay 2 ms".to_owned()
            }
            "recovery-1s" => {
                "recovery on: heartbeat 334 ms, sweep_threshold 1 s, sweep 250 ms, delay 0, poll 100 ms"
                    .to_owned()
            }
            "add-jobs" => "WorkerUtils::add_jobs, default pool".to_owned(),
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
