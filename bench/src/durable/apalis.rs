//! apalis-postgres 1.0: `PostgresStorage` with apalis's `WorkerBuilder`,
//! as its README and examples use them; for case (h), apalis-workflow
//! 1.0's DAGs (`GraphFlow`) on the same storage, as apalis-postgres's
//! `examples/dag.rs` runs them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PgPool, PostgresStorage};
use apalis_workflow::{GraphFlow, WorkflowSink};
use serde::{Deserialize, Serialize};

use super::common::{
    BoxFut, CONCURRENCY, Drained, Finished, LONG_JOB, Pace, Queue, Result, await_drain,
    check_stored, record_start, share,
};

pub struct Apalis;

/// The no-op job. Its queue is its type name (apalis's default).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoopJob {
    n: u32,
}

/// Case (c)'s job: records its start, then sleeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LongJob {
    n: u32,
}

/// The settings:
/// - "default": `PostgresStorage::new` as is (batch_size 10, heartbeat
///   30 s × 10 missed = 300 s before a dead worker's jobs are re-enqueued,
///   and no LISTEN/NOTIFY: an idle worker looks again on its heartbeat).
/// - "batch-100": `Config::batch_size(100)`, as apalis's own example sets
///   it for throughput; "batch-500" shows how far bigger batches go (one
///   worker then holds up to 500 claimed jobs).
/// - "pubsub": `with_pubsub()`, LISTEN/NOTIFY wake-ups (for latency).
/// - "hb-334ms": heartbeat every 334 ms and 3 missed = dead after 1 s, the
///   same shape as our shortest lease. 1 s is apalis's floor: the orphan
///   age is compared in whole seconds (`orphaned_duration().as_secs()`),
///   so anything shorter rounds down to 0 s and would re-enqueue the jobs
///   of every live worker.
fn config(setting: &str, base: &Config) -> Result<Config> {
    let base = base.clone();
    match setting {
        "default" | "pubsub" => Ok(base),
        "batch-100" => Ok(base.batch_size(100)),
        "batch-500" => Ok(base.batch_size(500)),
        "hb-334ms" => Ok(base
            .heartbeat_interval(Duration::from_millis(334))
            .missed_heartbeats(3)),
        other => Err(format!("apalis: unknown setting {other:?}").into()),
    }
}

fn storage<T>(pool: &PgPool, setting: &str) -> Result<PostgresStorage<T>> {
    let storage = PostgresStorage::<T>::new(pool);
    let config = config(setting, storage.config())?;
    Ok(storage.with_config(config))
}

async fn connect(url: &str) -> Result<PgPool> {
    // apalis's README connects a default pool and runs its migrations.
    let pool = PgPool::connect(url).await?;
    PostgresStorage::setup(&pool).await?;
    Ok(pool)
}

/// Starts one worker on `backend` running `handler` with `data`, 32 jobs
/// at a time on tokio's threads (`parallelize(tokio::spawn)`, as apalis's
/// example does), until `stop` fires. A macro because the storage with
/// and without pubsub are different types.
macro_rules! spawn_worker {
    ($name:expr, $backend:expr, $data:expr, $handler:expr, $stop:expr) => {{
        let stop: tokio::sync::oneshot::Receiver<()> = $stop;
        let worker = WorkerBuilder::new($name)
            .backend($backend)
            .data($data)
            .concurrency(CONCURRENCY)
            .parallelize(tokio::spawn)
            .build($handler);
        tokio::spawn(worker.run_until(async move {
            let _ = stop.await;
            Ok::<(), WorkerError>(())
        }))
    }};
}

async fn noop_counted(_job: NoopJob, finished: Data<Finished>) -> Result<(), BoxDynError> {
    finished.add();
    Ok(())
}

async fn noop_timed(
    _job: NoopJob,
    started: Data<tokio::sync::mpsc::UnboundedSender<Instant>>,
) -> Result<(), BoxDynError> {
    let _ = started.send(Instant::now());
    Ok(())
}

/// Jobs of the no-op queue recorded as done.
async fn done(pool: &PgPool, queue: &str) -> Result<usize> {
    // apalis marks an acknowledged job `Done` (queries/task/handle_result.sql).
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'")
            .bind(queue)
            .fetch_one(pool)
            .await?;
    Ok(n as usize)
}

async fn drain(url: &str, setting: &str, jobs: usize, cap: Duration) -> Result<Drained> {
    let pool = connect(url).await?;
    let mut store = storage::<NoopJob>(&pool, setting)?;
    let queue = store.config().queue.to_string();
    store
        .push_bulk((0..jobs as u32).map(|n| NoopJob { n }).collect())
        .await?;

    let finished = Finished::default();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let worker = spawn_worker!(
        "bench-drain",
        store,
        finished.clone(),
        noop_counted,
        stopped
    );
    let drained = await_drain(started, &finished, jobs, cap, || done(&pool, &queue)).await?;
    let _ = stop.send(());
    worker.await??;
    pool.close().await;
    Ok(drained)
}

/// (h) `steps` no-op steps stored first, then drained by one worker as
/// [`drain`] drains (defaults, concurrency 32): as independent jobs, or as
/// diamonds of 4 steps, see [`drain_diamonds`].
pub async fn drain_steps(url: &str, shape: &str, steps: usize, cap: Duration) -> Result<Drained> {
    match shape {
        "runs" => drain(url, "default", steps, cap).await,
        "diamonds" => drain_diamonds(url, steps / 4, cap).await,
        other => Err(format!("apalis: no shape {other:?}").into()),
    }
}

/// Which middle step of a diamond an output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Side {
    Left,
    Right,
}

/// What a middle step hands on to the join: the join checks that it got
/// both, in order, of its own diamond.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Middle {
    side: Side,
    diamond: u32,
}

/// What the diamonds' steps tell the bench: every step's end, and which
/// diamonds' joins ran with the right inputs.
#[derive(Debug, Clone, Default)]
struct Diamonds {
    finished: Finished,
    joins: Arc<Mutex<Joins>>,
}

/// The joins that ran, for the fan-in check after the drain.
#[derive(Debug, Default)]
struct Joins {
    /// Diamonds whose join got both middles' outputs.
    joined: HashSet<u32>,
    /// Joins run again for a diamond already joined.
    repeated: usize,
    /// Joins that got anything else.
    wrong: Vec<String>,
}

impl Joins {
    /// No join got wrong inputs or ran twice, and, once the drain is
    /// `complete`, every one of `diamonds` joined.
    fn check(&self, diamonds: usize, complete: bool) -> Result<()> {
        if let Some(first) = self.wrong.first() {
            return Err(format!(
                "apalis-workflow: {} joins got wrong inputs, the first: {first}",
                self.wrong.len()
            )
            .into());
        }
        if self.repeated > 0 || (complete && self.joined.len() != diamonds) {
            return Err(format!(
                "apalis-workflow: {} of {diamonds} diamonds joined, {} joins ran twice",
                self.joined.len(),
                self.repeated
            )
            .into());
        }
        Ok(())
    }
}

/// The root step: hands its diamond's number on to both middles.
async fn root(diamond: u32, state: Data<Diamonds>) -> Result<u32, BoxDynError> {
    state.finished.add();
    Ok(diamond)
}

/// The first middle step (the join's first input).
async fn left(diamond: u32, state: Data<Diamonds>) -> Result<Middle, BoxDynError> {
    state.finished.add();
    Ok(Middle {
        side: Side::Left,
        diamond,
    })
}

/// The second middle step (the join's second input).
async fn right(diamond: u32, state: Data<Diamonds>) -> Result<Middle, BoxDynError> {
    state.finished.add();
    Ok(Middle {
        side: Side::Right,
        diamond,
    })
}

/// The join: records whether it got both middles' outputs of one diamond.
async fn join((a, b): (Middle, Middle), state: Data<Diamonds>) -> Result<u32, BoxDynError> {
    {
        let mut joins = state.joins.lock().expect("joins");
        if (a.side, b.side) == (Side::Left, Side::Right) && a.diamond == b.diamond {
            if !joins.joined.insert(a.diamond) {
                joins.repeated += 1;
            }
        } else {
            joins.wrong.push(format!("{a:?} and {b:?}"));
        }
    }
    state.finished.add();
    Ok(a.diamond)
}

/// The diamond: root → left and right → join, the join's input the tuple
/// of both middles' outputs (in `depends_on`'s order).
fn diamond() -> Result<GraphFlow<PostgresStorage<Vec<u8>>>> {
    let flow = GraphFlow::new("diamond");
    let root = flow.add_node("root", task_fn(root));
    let left = flow.add_node("left", task_fn(left)).depends_on(&root);
    let right = flow.add_node("right", task_fn(right)).depends_on(&root);
    flow.add_node("join", task_fn(join))
        .depends_on((&left, &right));
    flow.validate()?;
    Ok(flow)
}

/// Steps of the diamonds' queue recorded as done. apalis-workflow enqueues
/// the join once per middle: the copy that isn't the designated fan-in
/// handler runs no step and ends as `WaitingForDependencies`, so it is
/// not counted.
async fn steps_done(pool: &PgPool, queue: &str) -> Result<usize> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM apalis.jobs
          WHERE job_type = $1 AND status = 'Done'
            AND last_result -> 'Ok' -> 'WaitingForDependencies' IS NULL",
    )
    .bind(queue)
    .fetch_one(pool)
    .await?;
    Ok(n as usize)
}

/// `diamonds` diamonds of apalis-workflow (see [`diamond`]) stored first,
/// one `push_start` (one commit) each, then drained by one worker with the
/// defaults. Fails if a join got anything but both middles' outputs, or
/// ran twice, or (in a complete drain) never ran.
async fn drain_diamonds(url: &str, diamonds: usize, cap: Duration) -> Result<Drained> {
    let pool = connect(url).await?;
    // A worker of a `GraphFlow` takes its tasks as they are stored: the
    // storage's type is the bytes of apalis-postgres's JSON codec.
    let config = Config::default().queue("diamonds");
    let mut store = PostgresStorage::<Vec<u8>>::new(&pool).with_config(config);
    let queue = store.config().queue.to_string();
    for diamond in 0..diamonds as u32 {
        store.push_start(diamond).await?;
    }

    let state = Diamonds::default();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let worker = spawn_worker!("bench-diamonds", store, state.clone(), diamond()?, stopped);
    let steps = diamonds * 4;
    let drained = await_drain(started, &state.finished, steps, cap, || {
        steps_done(&pool, &queue)
    })
    .await?;
    let _ = stop.send(());
    worker.await??;
    pool.close().await;
    state
        .joins
        .lock()
        .expect("joins")
        .check(diamonds, drained.complete)?;
    Ok(drained)
}

async fn latency(url: &str, setting: &str, pace: Pace) -> Result<Vec<Duration>> {
    let pool = connect(url).await?;
    let store = storage::<NoopJob>(&pool, setting)?;
    let mut pusher = store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let worker = match setting {
        "pubsub" => spawn_worker!(
            "bench-latency",
            store.with_pubsub(),
            tx,
            noop_timed,
            stopped
        ),
        _ => spawn_worker!("bench-latency", store, tx, noop_timed, stopped),
    };
    // Let the worker register and go idle first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(pace.jobs);
    let began = Instant::now();
    for n in 0..pace.jobs as u32 {
        if began.elapsed() >= pace.budget {
            break;
        }
        tokio::time::sleep(pace.gap).await;
        let enqueued = Instant::now();
        pusher.push(NoopJob { n }).await?;
        let started = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .map_err(|_| "apalis: a job did not start within 60 s")?
            .ok_or("apalis: the worker is gone")?;
        samples.push(started.saturating_duration_since(enqueued));
    }
    let _ = stop.send(());
    worker.await??;
    pool.close().await;
    Ok(samples)
}

async fn enqueue(url: &str, jobs: usize, tasks: usize) -> Result<Duration> {
    let pool = connect(url).await?;
    let store = PostgresStorage::<NoopJob>::new(&pool);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let mut store = store.clone();
        let n = share(jobs, tasks, task);
        set.spawn(async move {
            for n in 0..n as u32 {
                // One INSERT in its own transaction, committed on return.
                store.push(NoopJob { n }).await?;
            }
            Ok::<_, TaskSinkError<apalis_postgres::Error>>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let elapsed = started.elapsed();
    check_stored(url, "SELECT count(*) FROM apalis.jobs", jobs).await?;
    pool.close().await;
    Ok(elapsed)
}

/// (e) `TaskSink::push_bulk`: apalis buffers the whole batch in its sink
/// and flushes it as one `INSERT .. SELECT unnest(..)` in one transaction
/// (apalis-postgres `push_tasks`).
async fn bulk(url: &str, setting: &str, jobs: usize) -> Result<Duration> {
    if setting != "push-bulk" {
        return Err(format!("apalis: no bulk path {setting:?}").into());
    }
    let pool = connect(url).await?;
    let mut store = PostgresStorage::<NoopJob>::new(&pool);
    let started = Instant::now();
    store
        .push_bulk((0..jobs as u32).map(|n| NoopJob { n }).collect())
        .await?;
    let elapsed = started.elapsed();
    check_stored(url, "SELECT count(*) FROM apalis.jobs", jobs).await?;
    pool.close().await;
    Ok(elapsed)
}

async fn prepare(url: &str) -> Result<()> {
    connect(url).await?.close().await;
    Ok(())
}

async fn enqueue_long(url: &str) -> Result<()> {
    let pool = connect(url).await?;
    PostgresStorage::<LongJob>::new(&pool)
        .push(LongJob { n: 0 })
        .await?;
    pool.close().await;
    Ok(())
}

#[derive(Clone)]
struct NodeState {
    pool: PgPool,
    name: String,
}

async fn long(
    _job: LongJob,
    id: TaskId,
    attempt: Attempt,
    node: Data<NodeState>,
) -> Result<(), BoxDynError> {
    let recorded = record_start(
        &node.pool,
        "apalis",
        &id.to_string(),
        attempt.current() as i64,
        &node.name,
    )
    .await;
    if let Err(err) = recorded {
        eprintln!("apalis node: can't record the start: {err}");
    }
    tokio::time::sleep(LONG_JOB).await;
    Ok(())
}

async fn node(url: &str, setting: &str, name: &str) -> Result<()> {
    let pool = connect(url).await?;
    let store = storage::<LongJob>(&pool, setting)?;
    let state = NodeState {
        pool: pool.clone(),
        name: name.to_owned(),
    };
    // Worker names must differ between live workers (apalis takes an
    // advisory lock on the name when it registers).
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let worker = spawn_worker!(format!("bench-node-{name}"), store, state, long, stopped);
    println!("ready");
    worker.await??;
    Ok(())
}

impl Queue for Apalis {
    fn name(&self) -> &'static str {
        "apalis"
    }
    fn database(&self) -> &'static str {
        "bench_apalis"
    }
    fn describe(&self, setting: &str) -> String {
        match setting {
            "default" => "defaults (batch_size 10), concurrency 32".to_owned(),
            "batch-100" => "batch_size 100".to_owned(),
            "batch-500" => "batch_size 500".to_owned(),
            "pubsub" => "with_pubsub() (LISTEN/NOTIFY)".to_owned(),
            "hb-334ms" => "heartbeat 334 ms × 3 missed = 1 s".to_owned(),
            "push-bulk" => "PostgresStorage::push_bulk (TaskSink), default pool".to_owned(),
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
