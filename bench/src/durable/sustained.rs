//! The sustained-load bench (issue 22): a producer keeps a backlog queued,
//! one node runs the jobs, for minutes, and the report shows whether the
//! rate, the claim latency and the tables stay flat.
//!
//! The workload, the same for every library: four producers top the
//! backlog up to `BACKLOG` queued jobs in batches of up to `BATCH`, each with a
//! 256-byte payload carrying its enqueue time; one node runs them at
//! concurrency `CONCURRENCY`, each job sleeping 1 ms. Every second the
//! bench counts the jobs finished (the handler returned), and each job's
//! start minus its enqueue time is its claim latency. Every minute it reads
//! `pg_stat_user_tables` for the library's schema: live and dead tuples and
//! the total size (table, indexes, TOAST) of every table.
//!
//! Two phases can be switched on in the same run:
//! - `--idle-tx AT+FOR`: at AT seconds a separate session begins a
//!   transaction, takes a transaction id and stays idle for FOR seconds,
//!   pinning the vacuum horizon (the classic PostgreSQL queue killer);
//! - `--readers AT+FOR`: four tasks read the dashboard's queries, each a
//!   round a second as four open pages would (ours: history with failures
//!   first, a run page, statistics, nodes, the last hour's timeline).
//!
//! Nothing asserts on timings: the output is a report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use super::common::{BoxFut, Result, drop_database, fresh_database};

/// Queued jobs the producer keeps.
pub const BACKLOG: u64 = 4000;
/// Most jobs per enqueue batch.
pub const BATCH: u64 = 128;
/// Jobs at once in the node.
pub const CONCURRENCY: usize = 64;
/// Each job's work.
pub const WORK: Duration = Duration::from_millis(1);

/// A library under sustained load.
pub trait Load: Sync {
    fn name(&self) -> &'static str;
    /// The database it gets to itself, made fresh for the run.
    fn database(&self) -> &'static str;
    /// The schema its tables live in.
    fn schema(&self) -> &'static str;
    /// Starts one node that runs the bench's job, reporting to `probe`,
    /// with ended jobs kept for `retention`.
    fn start<'a>(
        &'a self,
        url: &'a str,
        probe: Arc<Probe>,
        retention: Duration,
    ) -> BoxFut<'a, Box<dyn Session>>;
}

/// A started node, and what the producer and the readers do with it.
pub trait Session {
    /// Enqueues these payloads, one job each, returning once they are
    /// committed.
    fn enqueue<'a>(&'a self, payloads: Vec<Value>) -> BoxFut<'a, ()>;
    /// One round of the dashboard's reads, if the library has them.
    fn read_dashboard<'a>(&'a self) -> BoxFut<'a, bool>;
    /// Stops the node.
    fn stop(self: Box<Self>) -> BoxFut<'static, ()>;
}

/// What the jobs report, shared by the node's handler and the bench.
#[derive(Default)]
pub struct Probe {
    enqueued: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    /// Claim latencies (µs) since the last sample was taken.
    latencies: Mutex<Vec<u64>>,
}

impl Probe {
    /// The handler's first step: counts the start and its claim latency,
    /// from the payload's `at` (the enqueue time, µs since the epoch).
    pub fn started(&self, enqueued_at: Option<u64>) {
        self.started.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = enqueued_at {
            let latency = unix_micros().saturating_sub(at);
            self.latencies.lock().unwrap().push(latency);
        }
    }

    /// The handler's last step.
    pub fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A job's payload: its enqueue time and padding to 256 bytes of JSON.
fn payload() -> Value {
    let at = unix_micros();
    let mut value = json!({ "at": at, "pad": "" });
    let len = value.to_string().len();
    value["pad"] = Value::String("x".repeat(256usize.saturating_sub(len)));
    value
}

/// A phase switched on from the command line: from `at` for `span`.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub at: Duration,
    pub span: Duration,
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(text: &str) -> Result<Phase, String> {
        let (at, span) = text
            .split_once('+')
            .ok_or_else(|| format!("{text:?}: expected AT+FOR in seconds, as 120+300"))?;
        let seconds = |s: &str| {
            s.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("{s:?} is not a number of seconds"))
        };
        Ok(Phase {
            at: seconds(at)?,
            span: seconds(span)?,
        })
    }
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub length: Duration,
    /// How often the rate and latency are printed.
    pub window: Duration,
    pub retention: Duration,
    pub idle_tx: Option<Phase>,
    pub readers: Option<Phase>,
}

/// Per second: jobs finished in it, and whether the idle transaction and
/// the readers were on.
#[derive(Debug, Clone, Copy)]
struct Second {
    finished: u64,
    idle_tx: bool,
}

/// What a run measured.
pub struct Measured {
    pub name: &'static str,
    seconds: Vec<Second>,
    /// Per window: (p50, p99) claim latency in µs, and its job count.
    windows: Vec<(u64, u64, usize)>,
    /// Per minute: (table, live, dead, bytes).
    tables: Vec<Vec<(String, i64, i64, i64)>>,
    plan: Plan,
}

/// Runs `load` for the plan on a fresh database of the server at
/// `admin_url`, printing as it goes.
pub async fn run(load: &dyn Load, admin_url: &str, plan: Plan) -> Result<Measured> {
    let url = fresh_database(admin_url, load.database()).await?;
    let probe = Arc::new(Probe::default());
    let session = load.start(&url, probe.clone(), plan.retention).await?;
    println!(
        "{}: {} s, backlog {BACKLOG}, batches of ≤ {BATCH}, concurrency {CONCURRENCY}, {} ms of work a job, retention {} s",
        load.name(),
        plan.length.as_secs(),
        WORK.as_millis(),
        plan.retention.as_secs()
    );
    let began = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let idle_tx_on = std::sync::atomic::AtomicBool::new(false);

    // Several producers, so that the backlog is kept up even where one
    // enqueue batch takes a while: each tops it up with what the others
    // have not already claimed (`reserved` counts batches in flight).
    let reserved = AtomicU64::new(0);
    let producer = || async {
        while !done.load(Ordering::Relaxed) {
            let queued = probe
                .enqueued
                .load(Ordering::Relaxed)
                .saturating_sub(probe.started.load(Ordering::Relaxed))
                + reserved.load(Ordering::Relaxed);
            if queued + BATCH / 2 > BACKLOG {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let n = (BACKLOG - queued).min(BATCH);
            reserved.fetch_add(n, Ordering::Relaxed);
            let payloads = (0..n).map(|_| payload()).collect();
            let stored = session.enqueue(payloads).await;
            if stored.is_ok() {
                probe.enqueued.fetch_add(n, Ordering::Relaxed);
            }
            reserved.fetch_sub(n, Ordering::Relaxed);
            if let Err(err) = stored {
                eprintln!("{}: enqueue failed: {err}", load.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let produce = async {
        tokio::join!(producer(), producer(), producer(), producer());
    };

    let mut seconds = Vec::new();
    let mut windows = Vec::new();
    let mut tables = Vec::new();
    let sample = async {
        let mut stats = PgConnection::connect(&url).await?;
        let mut last = 0;
        let mut window_latencies: Vec<u64> = Vec::new();
        let per_window = plan.window.as_secs().max(1) as usize;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        for second in 1..=plan.length.as_secs() as usize {
            tick.tick().await;
            let finished = probe.finished.load(Ordering::Relaxed);
            seconds.push(Second {
                finished: finished - last,
                idle_tx: idle_tx_on.load(Ordering::Relaxed),
            });
            last = finished;
            window_latencies.append(&mut probe.latencies.lock().unwrap());
            if second % per_window == 0 {
                window_latencies.sort_unstable();
                let pick = |p: f64| {
                    window_latencies
                        .get(((window_latencies.len() as f64 - 1.0) * p).round() as usize)
                        .copied()
                        .unwrap_or(0)
                };
                let (p50, p99) = (pick(0.5), pick(0.99));
                let rate: u64 = seconds[seconds.len() - per_window..]
                    .iter()
                    .map(|s| s.finished)
                    .sum::<u64>()
                    / per_window as u64;
                let queued = probe
                    .enqueued
                    .load(Ordering::Relaxed)
                    .saturating_sub(probe.started.load(Ordering::Relaxed));
                println!(
                    "{} {:>4} s: {rate:>6} jobs/s, claim latency p50 {:.1} ms p99 {:.1} ms, {queued} queued{}",
                    load.name(),
                    second,
                    p50 as f64 / 1e3,
                    p99 as f64 / 1e3,
                    if idle_tx_on.load(Ordering::Relaxed) {
                        " (idle transaction open)"
                    } else {
                        ""
                    }
                );
                windows.push((p50, p99, window_latencies.len()));
                window_latencies.clear();
            }
            if second % 60 == 0 || second == plan.length.as_secs() as usize {
                let now = table_sizes(&mut stats, load.schema()).await?;
                for (table, live, dead, bytes) in &now {
                    println!(
                        "{} {:>4} s:   {table:<28} live {live:>9} dead {dead:>9} {:>9.1} MB",
                        load.name(),
                        second,
                        *bytes as f64 / 1e6
                    );
                }
                tables.push(now);
            }
        }
        done.store(true, Ordering::Relaxed);
        Ok::<_, super::common::Error>(())
    };

    let idle_tx = async {
        let Some(phase) = plan.idle_tx else {
            return Ok(());
        };
        tokio::time::sleep(phase.at).await;
        let mut conn = PgConnection::connect(&url).await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT txid_current()")
            .execute(&mut *tx)
            .await?;
        idle_tx_on.store(true, Ordering::Relaxed);
        println!("{}: idle transaction open", load.name());
        let end = began + phase.at + phase.span;
        while Instant::now() < end && !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tx.rollback().await?;
        idle_tx_on.store(false, Ordering::Relaxed);
        println!("{}: idle transaction ended", load.name());
        Ok::<_, super::common::Error>(())
    };

    let readers = async {
        let Some(phase) = plan.readers else {
            return Ok(());
        };
        tokio::time::sleep(phase.at).await;
        let end = began + phase.at + phase.span;
        let reads = AtomicU64::new(0);
        let reader = || async {
            while Instant::now() < end && !done.load(Ordering::Relaxed) {
                match session.read_dashboard().await {
                    Ok(true) => {
                        reads.fetch_add(1, Ordering::Relaxed);
                        // An open page refreshes about this often.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Ok(false) => return,
                    Err(err) => eprintln!("{}: dashboard read failed: {err}", load.name()),
                }
            }
        };
        println!("{}: dashboard readers on", load.name());
        tokio::join!(reader(), reader(), reader(), reader());
        println!(
            "{}: dashboard readers off after {} rounds",
            load.name(),
            reads.load(Ordering::Relaxed)
        );
        Ok::<_, super::common::Error>(())
    };

    let (_, sampled, idled, read) = tokio::join!(produce, sample, idle_tx, readers);
    session.stop().await?;
    sampled?;
    idled?;
    read?;
    drop_database(admin_url, load.database()).await?;
    Ok(Measured {
        name: load.name(),
        seconds,
        windows,
        tables,
        plan,
    })
}

/// Live tuples, dead tuples and total bytes of each table of `schema`.
async fn table_sizes(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, i64, i64, i64)>> {
    // The statistics are a snapshot per transaction: take a fresh one.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    // A library's numbered partitions or ring slots (`name_0`, `name_1`,
    // ...) are summed under their common name.
    Ok(sqlx::query_as(
        "SELECT regexp_replace(relname, '_[0-9]+$', '_N')::text AS name,
                sum(n_live_tup)::int8, sum(n_dead_tup)::int8,
                sum(pg_total_relation_size(relid))::int8
         FROM pg_stat_user_tables WHERE schemaname = $1
         GROUP BY 1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(conn)
    .await?)
}

impl Measured {
    /// Median of the per-second rates of each minute.
    fn minute_medians(&self) -> Vec<u64> {
        self.seconds
            .chunks(60)
            // A short last piece says little, unless it is the whole run.
            .filter(|minute| minute.len() >= 30 || self.seconds.len() < 60)
            .map(|minute| {
                let mut rates: Vec<u64> = minute.iter().map(|s| s.finished).collect();
                rates.sort_unstable();
                rates[rates.len() / 2]
            })
            .collect()
    }

    fn mean_rate(&self, pick: impl Fn(&Second) -> bool) -> Option<f64> {
        let picked: Vec<u64> = self
            .seconds
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.finished)
            .collect();
        (!picked.is_empty()).then(|| picked.iter().sum::<u64>() as f64 / picked.len() as f64)
    }

    /// The whole run's mean rate.
    pub fn rate(&self) -> f64 {
        self.mean_rate(|_| true).unwrap_or(0.0)
    }

    /// The rate before `until` (a phase's start), from the end of the
    /// first window (start-up), so that no phase and no warm-up lowers it;
    /// at least 1 job/s, so ratios stay finite.
    fn clean_rate(&self, until: Duration) -> f64 {
        let opened = (until.as_secs() as usize).min(self.seconds.len());
        let warm = (self.plan.window.as_secs() as usize).min(opened);
        let before = &self.seconds[warm..opened];
        (before.iter().map(|s| s.finished).sum::<u64>() as f64 / before.len().max(1) as f64)
            .max(1.0)
    }

    /// A summary for the report.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let medians = self.minute_medians();
        let best = medians.iter().copied().max().unwrap_or(0).max(1);
        let worst = medians.iter().copied().min().unwrap_or(0);
        out += &format!(
            "{}: mean {:.0} jobs/s; per-minute medians {} (worst minute {:.0} % of the best)\n",
            self.name,
            self.rate(),
            medians
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" → "),
            worst as f64 * 100.0 / best as f64
        );
        let p99s: Vec<String> = self
            .windows
            .iter()
            .map(|(_, p99, _)| format!("{:.0}", *p99 as f64 / 1e3))
            .collect();
        out += &format!(
            "{}: claim latency p99 per {} s window (ms): {}\n",
            self.name,
            self.plan.window.as_secs(),
            p99s.join(" ")
        );
        if let Some(phase) = self.plan.idle_tx {
            // Against the rate until the transaction opened.
            let clean = self.clean_rate(phase.at);
            let during: Vec<String> = self
                .seconds
                .iter()
                .enumerate()
                .filter(|(_, s)| s.idle_tx)
                .collect::<Vec<_>>()
                .chunks(60)
                .map(|minute| {
                    let rate = minute.iter().map(|(_, s)| s.finished).sum::<u64>() as f64
                        / minute.len() as f64;
                    format!("{:.0} %", rate * 100.0 / clean)
                })
                .collect();
            // The first 10 s after it ended.
            let after_start = (phase.at + phase.span).as_secs() as usize;
            let after = self
                .seconds
                .iter()
                .skip(after_start)
                .take(10)
                .map(|s| s.finished)
                .sum::<u64>() as f64
                / 10.0;
            // How soon after it the rate is back: the first second from
            // which the mean of 5 s is ≥ 95 % of the clean rate.
            let after_seconds: Vec<u64> = self
                .seconds
                .iter()
                .skip(after_start)
                .map(|s| s.finished)
                .collect();
            let back = after_seconds
                .windows(5)
                .position(|five| five.iter().sum::<u64>() as f64 / 5.0 >= 0.95 * clean);
            let each: Vec<String> = after_seconds
                .iter()
                .take(30)
                .map(|n| format!("{:.0}", *n as f64 * 100.0 / clean))
                .collect();
            out += &format!(
                "{}: idle transaction for {} s: per minute of it {} of the clean rate ({clean:.0} jobs/s); the 10 s after it {:.0} %; back to ≥ 95 % (mean of 5 s) {}\n{}: each second after it, % of clean: {}\n",
                self.name,
                phase.span.as_secs(),
                during.join(", "),
                after * 100.0 / clean,
                back.map_or("not within the run".to_owned(), |s| format!(
                    "{s} s after it"
                )),
                self.name,
                each.join(" ")
            );
        }
        if let Some(phase) = self.plan.readers {
            // Against the rate before any phase began.
            let first_phase = self
                .plan
                .idle_tx
                .map_or(phase.at, |idle| idle.at.min(phase.at));
            let clean = self.clean_rate(first_phase);
            let reading: Vec<u64> = self
                .seconds
                .iter()
                .skip(phase.at.as_secs() as usize)
                .take(phase.span.as_secs() as usize)
                .map(|s| s.finished)
                .collect();
            let rate = reading.iter().sum::<u64>() as f64 / reading.len().max(1) as f64;
            out += &format!(
                "{}: dashboard readers for {} s: {rate:.0} jobs/s, {:.0} % of the clean rate ({clean:.0} jobs/s)\n",
                self.name,
                phase.span.as_secs(),
                rate * 100.0 / clean
            );
        }
        let sizes = |minute: &Vec<(String, i64, i64, i64)>| {
            minute.iter().map(|(_, _, _, bytes)| bytes).sum::<i64>() as f64 / 1e6
        };
        let dead = |minute: &Vec<(String, i64, i64, i64)>| {
            minute.iter().map(|(_, _, dead, _)| dead).sum::<i64>()
        };
        out += &format!(
            "{}: total size per minute (MB): {}\n{}: dead tuples per minute: {}\n",
            self.name,
            self.tables
                .iter()
                .map(|m| format!("{:.0}", sizes(m)))
                .collect::<Vec<_>>()
                .join(" "),
            self.name,
            self.tables
                .iter()
                .map(|m| dead(m).to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        out
    }
}
