//! What the four libraries' modules share: the `Queue` trait each one
//! implements, fresh databases, the `bench_starts` table of case (c), child
//! processes, and the statistics.

use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// The database names are the bench's own constants, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::sync::Notify;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

/// Every case runs its jobs with this many at once in one process.
pub const CONCURRENCY: usize = 32;

/// How long the job of case (c) sleeps: far longer than any wait, so that
/// it is still running when its process is killed.
pub const LONG_JOB: Duration = Duration::from_secs(3600);

/// One library under test. Each method runs on a fresh, empty database
/// (`url`) with one of the library's settings (named strings, see each
/// module's `describe`), and sets up whatever tables the library needs
/// itself, through its own API.
pub trait Queue: Sync {
    /// Its name in the table and on the command line (`--node NAME ..`).
    fn name(&self) -> &'static str;
    /// The database it gets to itself, dropped and created again before
    /// every measurement.
    fn database(&self) -> &'static str;
    /// What a setting means, for the table.
    fn describe(&self, setting: &str) -> String;

    /// (a) `jobs` no-op jobs are queued first; then one instance with
    /// concurrency 32 starts and drains them. Returns how many the database
    /// has recorded as done and when, counted from starting the instance:
    /// all of them, or those done by `cap` if that was under a tenth (see
    /// [`await_drain`]).
    fn drain<'a>(
        &'a self,
        url: &'a str,
        setting: &'a str,
        jobs: usize,
        cap: Duration,
    ) -> BoxFut<'a, Drained>;

    /// (b) An idle instance; jobs one at a time (see [`Pace`]): enqueue,
    /// wait until its handler started, next. Returns start − enqueue per
    /// job, both taken with `Instant` in this process ("enqueue" = just
    /// before the enqueue call, so it includes the commit).
    fn latency<'a>(
        &'a self,
        url: &'a str,
        setting: &'a str,
        pace: Pace,
    ) -> BoxFut<'a, Vec<Duration>>;

    /// (d) `jobs` enqueues from `tasks` concurrent tasks, each returning
    /// once its job is committed; no instance drains meanwhile. Returns the
    /// time for all of them.
    fn enqueue<'a>(&'a self, url: &'a str, jobs: usize, tasks: usize) -> BoxFut<'a, Duration>;

    /// (e) `jobs` runs stored with one bulk call of the library (`setting`
    /// names which, where it has more than one), payloads `{"n": i}`;
    /// no instance runs them. Returns the time from building the call's
    /// input until the call returned with the runs committed (the
    /// library's pool or manager is set up before).
    fn bulk<'a>(&'a self, url: &'a str, setting: &'a str, jobs: usize) -> BoxFut<'a, Duration>;

    /// (c) Creates the library's tables before any node starts, so that
    /// the nodes and the enqueuer find them in place.
    fn prepare<'a>(&'a self, url: &'a str) -> BoxFut<'a, ()>;
    /// (c) Enqueues the one long job (see [`LONG_JOB`]).
    fn enqueue_long<'a>(&'a self, url: &'a str) -> BoxFut<'a, ()>;
    /// (c) The child process: an instance with `setting` that runs the long
    /// job (writing its start into `bench_starts`, then sleeping). Prints
    /// `ready` once it is running, then runs until it is killed.
    fn node<'a>(&'a self, url: &'a str, setting: &'a str, name: &'a str) -> BoxFut<'a, ()>;
}

/// How case (b) sends its jobs.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How many, one at a time.
    pub jobs: usize,
    /// Idle time before each enqueue.
    pub gap: Duration,
    /// No job is enqueued after this much time: a library whose jobs wait
    /// tens of seconds now and then would otherwise stretch the run.
    pub budget: Duration,
}

/// What a drain got done.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    /// Jobs recorded as done in the database.
    pub done: usize,
    /// From starting the instance until the database said so.
    pub elapsed: Duration,
    /// Whether that was all of them (else the cap ended the wait).
    pub complete: bool,
}

impl Drained {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }
}

/// Waits for the handlers to finish `jobs`, then for the database to have
/// them all as done (`done_in_db`, at most 60 s more). A drain that has
/// done less than a tenth of its jobs by `cap` would take minutes: it is
/// cut short there, counted as far as the database has it.
pub async fn await_drain<F, Fut>(
    started: Instant,
    finished: &Finished,
    jobs: usize,
    cap: Duration,
    mut done_in_db: F,
) -> Result<Drained>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize>>,
{
    if !finished.wait_for(jobs, cap).await {
        let done = done_in_db().await?;
        let elapsed = started.elapsed();
        if done * 10 < jobs {
            return Ok(Drained {
                done,
                elapsed,
                complete: false,
            });
        }
        if !finished.wait_for(jobs, Duration::from_secs(600)).await {
            return Err("the handlers did not run every job within 10 minutes".into());
        }
    }
    let all = poll_until(Duration::from_secs(60), || {
        let count = done_in_db();
        async move { Ok(count.await? >= jobs) }
    })
    .await?;
    let elapsed = started.elapsed();
    if !all {
        return Err(
            "the handlers ran every job, but the database did not record them all as done within 60 s"
                .into(),
        );
    }
    Ok(Drained {
        done: jobs,
        elapsed,
        complete: true,
    })
}

/// `url` with its database replaced by `database` (any `?query` kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Drops `database` (ending its connections) and creates it empty, so
/// that every measurement starts on fresh tables. Returns its URL.
pub async fn fresh_database(admin_url: &str, database: &str) -> Result<String> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(with_database(admin_url, database))
}

/// Drops `database` at the end of a run.
pub async fn drop_database(admin_url: &str, database: &str) -> Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// Checks, after a timed enqueue, that the database holds every job
/// (`count_sql` counts them): a fast enqueue that lost jobs would be no
/// result.
pub async fn check_stored(url: &str, count_sql: &'static str, jobs: usize) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let (stored,): (i64,) = sqlx::query_as(count_sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    if stored as usize != jobs {
        return Err(format!("{jobs} jobs enqueued, but the database holds {stored}").into());
    }
    Ok(())
}

/// Case (c)'s record of job starts, written by the job itself so that the
/// parent sees a start in another process on the database's clock.
pub async fn create_starts_table(url: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_starts (
             lib        text NOT NULL,
             job        text NOT NULL,
             attempt    int  NOT NULL,
             node       text NOT NULL,
             started_at timestamptz NOT NULL DEFAULT clock_timestamp()
         )",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// What a long job does first: records that it started, and where.
pub async fn record_start<'c, E>(
    db: E,
    lib: &str,
    job: &str,
    attempt: i64,
    node: &str,
) -> Result<()>
where
    E: sqlx::PgExecutor<'c>,
{
    sqlx::query("INSERT INTO bench_starts (lib, job, attempt, node) VALUES ($1, $2, $3, $4)")
        .bind(lib)
        .bind(job)
        .bind(attempt as i32)
        .bind(node)
        .execute(db)
        .await?;
    Ok(())
}

/// One row of `bench_starts`, with its time as seconds since the epoch
/// (the database's clock).
#[derive(Debug, Clone)]
pub struct Start {
    pub job: String,
    pub attempt: i32,
    pub node: String,
    pub at: f64,
}

/// The first start after `after` (epoch seconds), if any yet.
pub async fn start_after(db: &PgPool, after: f64) -> Result<Option<Start>> {
    let row: Option<(String, i32, String, f64)> = sqlx::query_as(
        "SELECT job, attempt, node, extract(epoch FROM started_at)::float8
           FROM bench_starts
          WHERE extract(epoch FROM started_at)::float8 > $1
          ORDER BY started_at LIMIT 1",
    )
    .bind(after)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(job, attempt, node, at)| Start {
        job,
        attempt,
        node,
        at,
    }))
}

/// Waits (at most `cap`) for the first start after `after`.
pub async fn wait_for_start(db: &PgPool, after: f64, cap: Duration) -> Result<Option<Start>> {
    let deadline = Instant::now() + cap;
    loop {
        if let Some(start) = start_after(db, after).await? {
            return Ok(Some(start));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // The start's time comes from the database, so this polling adds
        // nothing to what is measured.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The database's clock now, as epoch seconds.
pub async fn db_now(db: &PgPool) -> Result<f64> {
    let (now,): (f64,) = sqlx::query_as("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(db)
        .await?;
    Ok(now)
}

/// Polls `check` every few milliseconds until it is true or `cap` passed;
/// returns whether it became true.
pub async fn poll_until<F, Fut>(cap: Duration, mut check: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + cap;
    loop {
        if check().await? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Counts the jobs the handlers finished in this process, so that the
/// wait for "all done" polls the database only once the handlers are
/// through (polling it all along would load the server being measured).
#[derive(Debug, Clone, Default)]
pub struct Finished {
    inner: Arc<(AtomicUsize, Notify)>,
}

impl Finished {
    pub fn add(&self) {
        self.inner.0.fetch_add(1, Ordering::AcqRel);
        self.inner.1.notify_waiters();
    }

    /// Waits until `n` handlers finished (true), or `cap` passed (false).
    pub async fn wait_for(&self, n: usize, cap: Duration) -> bool {
        let deadline = Instant::now() + cap;
        loop {
            let notified = self.inner.1.notified();
            if self.inner.0.load(Ordering::Acquire) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Woken by `add`, or every 50 ms in case a wake-up was missed.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

/// A child `durable --node LIB SETTING NAME` process.
pub struct Node {
    child: Child,
}

impl Node {
    /// Starts a node and waits (at most `cap`) until it prints `ready`.
    pub async fn start(
        url: &str,
        lib: &str,
        setting: &str,
        name: &str,
        cap: Duration,
    ) -> Result<Node> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--node", lib, setting, name, "--postgres", url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Read its lines on a thread: the first `ready` is what we wait for.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "ready"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let node = Node { child };
        match tokio::time::timeout(cap, rx).await {
            Ok(Ok(())) => Ok(node),
            _ => Err(
                format!("node {name} ({lib} {setting}) did not get ready within {cap:?}").into(),
            ),
        }
    }

    /// kill -9: std's `Child::kill` sends SIGKILL on Unix.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
    }
}

impl Drop for Node {
    /// Killed (if still alive) and reaped.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Median and range of a few rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// The `p`th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Splits `jobs` over `tasks` as evenly as possible.
pub fn share(jobs: usize, tasks: usize, task: usize) -> usize {
    jobs / tasks + usize::from(task < jobs % tasks)
}
