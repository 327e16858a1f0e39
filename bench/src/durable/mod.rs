//! The durable-mode bench: worker-postgres against three other PostgreSQL
//! job queues, apalis-postgres 1.0, graphile_worker 0.14 and awa 0.6.9, on
//! the same server in the same run, each in a database of its own that is
//! dropped and created again before every measurement.
//!
//! ```text
//! cargo run --release -p bench --features durable --bin durable -- --postgres URL
//! cargo run --release -p bench --features durable --bin durable -- --quick
//! ```
//!
//! Cases, each 3 rounds (interleaved: round 1 of every library, then
//! round 2, ...), printed as median [min..max]:
//! - (a) throughput: N no-op jobs queued, then drained by one instance
//!   with concurrency 32 (a drain with under a tenth done after 5 s is cut
//!   short there and counted as far as it got);
//! - (b) enqueue→start latency on an idle instance, one job at a time
//!   (200 jobs, or as many as 20 s allow);
//! - (c) recovery: kill -9 of the process running a job, until the job
//!   starts again in another process (at most 60 s);
//! - (d) enqueue: N enqueues from 64 tasks;
//! - (e) bulk insert: N runs in one bulk call of each library (100k;
//!   2,000 with `--quick`), until committed, nothing draining (awa's
//!   slow compat COPY only with `--quick` or `--full`);
//! - (f) and (g): the cost of cluster-wide limits, ours alone;
//! - (h): diamond workflows (1 → 2 → 1) against as many independent runs,
//!   per step, both stored first and drained by one node; ours, and
//!   apalis-workflow 1.0 on apalis-postgres.
//!
//! Nothing here asserts on timings: the output is a report.

mod apalis;
mod awa;
mod common;
mod graphile;
mod limits;
mod ours;
mod report;
mod sustained;
mod workflows;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;

use self::common::{
    Node, Pace, Queue, Result, create_starts_table, db_now, drop_database, fresh_database,
    percentile, wait_for_start,
};
use self::report::{Cell, Row, Unit};

const USAGE: &str = "\
usage: durable [--postgres URL] [--quick] [--full] [--case a,b,c,d,e,f,g,h] [--rounds N] [--json FILE]

  --postgres URL  the server (default: $DATABASE_URL); the bench creates and
                  drops the databases bench_ours, bench_apalis, bench_graphile,
                  bench_awa
  --quick         tiny sizes, 1 round, no (c): checks the harness, not the speed
  --full          also measure the anchors' default recovery (apalis: 300 s;
                  graphile: never, so a 60 s timeout; awa: up to ~2 min) in (c),
                  and awa's insert_many_copy_from_pool (~100 s a round) in (e)
  --case IDS      run only these cases
  --rounds N      rounds per measurement (default 3, quick 1)
  --json FILE     also write the results as JSON to FILE

usage: durable --sustained SECONDS [--postgres URL] [--libs ours,awa]
               [--retention SECONDS] [--window SECONDS]
               [--idle-tx AT+FOR] [--readers AT+FOR]

  the sustained load instead (issue 22): a producer keeps 4,000 jobs
  queued (batches of up to 128, 256-byte payloads), one node runs them at
  concurrency 64 with 1 ms of work each, for SECONDS per library, back to
  back; it prints the rate and claim latency per window (default 30 s) and
  every table's live and dead tuples and size each minute
  --retention     how long ended jobs are kept (default 120 s)
  --idle-tx       a transaction held open and idle from AT for FOR seconds
  --readers       4 tasks reading the dashboard's queries, a round a second
                  each, from AT for FOR seconds
";

static OURS: ours::Ours = ours::Ours;
static APALIS: apalis::Apalis = apalis::Apalis;
static GRAPHILE: graphile::Graphile = graphile::Graphile;
static AWA: awa::Awa = awa::Awa;

/// The table's anchor columns: (name, header).
const ANCHORS: [(&str, &str); 3] = [
    ("apalis", "apalis-postgres 1.0"),
    ("graphile", "graphile_worker 0.14"),
    ("awa", "awa 0.6.9"),
];

fn queue(name: &str) -> Option<&'static dyn Queue> {
    match name {
        "ours" => Some(&OURS),
        "apalis" => Some(&APALIS),
        "graphile" => Some(&GRAPHILE),
        "awa" => Some(&AWA),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Args {
    url: Option<String>,
    quick: bool,
    full: bool,
    cases: Option<Vec<String>>,
    rounds: Option<usize>,
    json: Option<String>,
    /// Hidden: be a node of case (c): LIB SETTING NAME.
    node: Option<(String, String, String)>,
    /// The sustained load for this long per library, instead of (a)-(d).
    sustained: Option<Duration>,
    libs: Option<Vec<String>>,
    retention: Option<Duration>,
    window: Option<Duration>,
    idle_tx: Option<sustained::Phase>,
    readers: Option<sustained::Phase>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args::default();
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--postgres" => args.url = Some(value("--postgres")?),
            "--quick" => args.quick = true,
            "--full" => args.full = true,
            "--json" => args.json = Some(value("--json")?),
            "--rounds" => {
                let n = value("--rounds")?;
                args.rounds = Some(
                    n.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("bad --rounds {n:?}"))?,
                );
            }
            "--case" | "--cases" => {
                let ids: Vec<String> = value("--case")?
                    .split(',')
                    .map(|id| id.trim().to_ascii_lowercase())
                    .collect();
                if let Some(bad) = ids
                    .iter()
                    .find(|id| !["a", "b", "c", "d", "e", "f", "g", "h"].contains(&id.as_str()))
                {
                    return Err(format!("unknown case {bad:?}; known: a,b,c,d,e,f,g"));
                }
                args.cases = Some(ids);
            }
            "--node" => {
                args.node = Some((value("--node")?, value("--node")?, value("--node")?));
            }
            "--sustained" => args.sustained = Some(seconds("--sustained", value("--sustained")?)?),
            "--retention" => args.retention = Some(seconds("--retention", value("--retention")?)?),
            "--window" => args.window = Some(seconds("--window", value("--window")?)?),
            "--libs" => {
                args.libs = Some(
                    value("--libs")?
                        .split(',')
                        .map(|lib| lib.trim().to_owned())
                        .collect(),
                );
            }
            "--idle-tx" => args.idle_tx = Some(value("--idle-tx")?.parse()?),
            "--readers" => args.readers = Some(value("--readers")?.parse()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// A whole number of seconds, at least 1, for option `name`.
fn seconds(name: &str, text: String) -> std::result::Result<Duration, String> {
    text.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_secs)
        .ok_or(format!("bad {name} {text:?}: a whole number of seconds"))
}

/// Sizes and rounds.
#[derive(Debug, Clone)]
struct Plan {
    rounds: usize,
    quick: bool,
    drain_jobs: usize,
    /// A drain with under a tenth of its jobs done by then is cut short and
    /// counted as far as it got.
    drain_cap: Duration,
    latency_jobs: usize,
    /// (b) enqueues no more jobs after this long (per library and round).
    latency_budget: Duration,
    enqueue_jobs: usize,
    enqueue_tasks: usize,
    /// Runs in (e)'s one bulk call.
    bulk_jobs: usize,
    /// How long (c) waits for a job to start again.
    recovery_cap: Duration,
    full: bool,
}

impl Plan {
    fn new(quick: bool, full: bool) -> Plan {
        if quick {
            Plan {
                rounds: 1,
                quick,
                drain_jobs: 200,
                drain_cap: Duration::from_secs(3),
                latency_jobs: 20,
                latency_budget: Duration::from_secs(10),
                enqueue_jobs: 200,
                enqueue_tasks: 64,
                bulk_jobs: 2_000,
                recovery_cap: Duration::from_secs(60),
                full,
            }
        } else {
            Plan {
                rounds: 3,
                quick,
                drain_jobs: 10_000,
                drain_cap: Duration::from_secs(5),
                latency_jobs: 200,
                latency_budget: Duration::from_secs(20),
                enqueue_jobs: 10_000,
                enqueue_tasks: 64,
                bulk_jobs: 100_000,
                recovery_cap: Duration::from_secs(60),
                full,
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "rounds": self.rounds,
            "drain_jobs": self.drain_jobs,
            "drain_cap_s": self.drain_cap.as_secs_f64(),
            "latency_jobs": self.latency_jobs,
            "latency_budget_s": self.latency_budget.as_secs_f64(),
            "enqueue_jobs": self.enqueue_jobs,
            "enqueue_tasks": self.enqueue_tasks,
            "bulk_jobs": self.bulk_jobs,
            "recovery_cap_s": self.recovery_cap.as_secs_f64(),
            "full": self.full,
        })
    }
}

pub fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("durable: {message}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(url) = args
        .url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
    else {
        eprintln!("durable: give the server with --postgres URL or DATABASE_URL\n");
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("durable: can't start tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.node {
        Some((lib, setting, name)) => match queue(lib) {
            Some(queue) => runtime.block_on(queue.node(&url, setting, name)),
            None => Err(format!("unknown library {lib:?}").into()),
        },
        None if args.sustained.is_some() => runtime.block_on(run_sustained(&args, &url)),
        None => runtime.block_on(run(&args, &url)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("durable: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The sustained load, one library after the other on the same server.
async fn run_sustained(args: &Args, admin_url: &str) -> Result<()> {
    let plan = sustained::Plan {
        length: args.sustained.unwrap_or(Duration::from_secs(600)),
        window: args.window.unwrap_or(Duration::from_secs(30)),
        retention: args.retention.unwrap_or(Duration::from_secs(120)),
        idle_tx: args.idle_tx,
        readers: args.readers,
    };
    let libs = args
        .libs
        .clone()
        .unwrap_or_else(|| vec!["ours".to_owned(), "awa".to_owned()]);
    let mut measured = Vec::new();
    for lib in &libs {
        let load: &dyn sustained::Load = match lib.as_str() {
            "ours" => &OURS,
            "awa" => &AWA,
            other => {
                return Err(
                    format!("--libs: no sustained load for {other:?}; known: ours, awa").into(),
                );
            }
        };
        measured.push(sustained::run(load, admin_url, plan).await?);
    }
    println!();
    for run in &measured {
        print!("{}", run.summary());
    }
    if let [ours, other] = &measured[..] {
        println!(
            "ratio of mean rates, {} ÷ {}: {:.2}×",
            ours.name,
            other.name,
            ours.rate() / other.rate().max(1.0)
        );
    }
    Ok(())
}

async fn run(args: &Args, admin_url: &str) -> Result<()> {
    let mut plan = Plan::new(args.quick, args.full);
    if let Some(rounds) = args.rounds {
        plan.rounds = rounds;
    }
    let wants = |case: &str| {
        args.cases
            .as_ref()
            .is_none_or(|c| c.iter().any(|id| id == case))
    };
    let began = Instant::now();
    let mut rows = Vec::new();
    if wants("a") {
        rows.extend(throughput(admin_url, &plan).await?);
    }
    if wants("b") {
        rows.extend(latency(admin_url, &plan).await?);
    }
    if wants("c") && !args.quick {
        rows.extend(recovery(admin_url, &plan).await?);
    }
    if wants("d") {
        rows.extend(enqueue(admin_url, &plan).await?);
    }
    if wants("e") {
        rows.extend(bulk(admin_url, &plan).await?);
    }
    let limits = if wants("f") || wants("g") {
        Some(limits::cost(admin_url, &plan).await?)
    } else {
        None
    };
    let flows = if wants("h") {
        Some(workflows::cost(admin_url, &plan).await?)
    } else {
        None
    };
    for lib in [&OURS as &dyn Queue, &APALIS, &GRAPHILE, &AWA] {
        drop_database(admin_url, lib.database()).await?;
    }

    println!();
    print!("{}", report::table(&rows, &ANCHORS));
    println!();
    print!("{}", report::legend(&rows));
    println!(
        "\n{} round(s) each, interleaved; median [min..max]. Ratio: ours ÷ best anchor for \
         throughput, best anchor ÷ ours for times.\nTotal {:.1} s.",
        plan.rounds,
        began.elapsed().as_secs_f64()
    );
    if let Some(table) = limits {
        println!("\n(f) and (g), the cost of cluster-wide limits:\n\n{table}");
    }
    if let Some(table) = flows {
        println!("\n(h), the cost of a workflow per step:\n\n{table}");
    }
    if let Some(path) = &args.json {
        let value = report::to_json(&rows, plan.to_json());
        std::fs::write(path, serde_json::to_string_pretty(&value)?)?;
        println!("wrote {path}");
    }
    Ok(())
}

/// A library with one of its settings, and its figures so far.
struct Leg {
    queue: &'static dyn Queue,
    cell: Cell,
}

impl Leg {
    fn new(queue: &'static dyn Queue, setting: &'static str) -> Leg {
        Leg {
            queue,
            cell: Cell::new(queue.name(), setting, queue.describe(setting)),
        }
    }

    fn setting(&self) -> &'static str {
        self.cell.setting
    }
}

/// Runs `measure` on every leg, `rounds` times interleaved, each on a fresh
/// database. A failed measurement becomes a note in its cell.
async fn rounds<F>(
    admin_url: &str,
    case: &str,
    plan: &Plan,
    legs: &mut [Leg],
    mut measure: F,
) -> Result<()>
where
    F: AsyncFnMut(&Leg, &str) -> Result<Outcome>,
{
    for round in 1..=plan.rounds {
        for leg in legs.iter_mut() {
            let url = fresh_database(admin_url, leg.queue.database()).await?;
            let outcome = match measure(leg, &url).await {
                Ok(outcome) => outcome,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            eprintln!(
                "({case}) round {round}/{} {} {}: {}",
                plan.rounds,
                leg.queue.name(),
                leg.setting(),
                outcome
            );
            match outcome {
                Outcome::Value(v, _) => leg.cell.values.push(v),
                Outcome::Partial(v, note, _) => {
                    leg.cell.values.push(v);
                    leg.cell.notes.push(note);
                }
                Outcome::Failed(err) => leg.cell.notes.push(format!("failed: {err}")),
                Outcome::TimedOut(note) => leg.cell.notes.push(note),
            }
        }
    }
    Ok(())
}

/// What one measurement gave.
#[derive(Debug, Clone)]
enum Outcome {
    /// A value, and how to show it in the progress line.
    Value(f64, String),
    /// A value from a measurement cut short: why (for the table), and
    /// what it got (for the progress line).
    Partial(f64, String, String),
    TimedOut(String),
    Failed(String),
}

impl Outcome {
    /// A drain's rate, marked partial when `cap` ended the wait first;
    /// `shown` is its progress line.
    fn of_drain(drained: &common::Drained, cap: Duration, shown: String) -> Outcome {
        if drained.complete {
            Outcome::Value(drained.rate(), shown)
        } else {
            Outcome::Partial(
                drained.rate(),
                format!("capped at {} s", cap.as_secs()),
                shown,
            )
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Value(_, shown) => f.write_str(shown),
            Outcome::Partial(_, note, shown) => write!(f, "{note}: {shown}"),
            Outcome::TimedOut(note) => write!(f, "{note}"),
            Outcome::Failed(err) => write!(f, "FAILED: {err}"),
        }
    }
}

fn take(legs: &mut [Leg], lib: &str, setting: &str) -> Cell {
    legs.iter()
        .find(|l| l.cell.lib == lib && l.cell.setting == setting)
        .map(|l| l.cell.clone())
        .expect("a leg of the case")
}

/// (a) Throughput of one instance draining queued no-op jobs.
async fn throughput(admin_url: &str, plan: &Plan) -> Result<Vec<Row>> {
    let mut legs = vec![
        Leg::new(&OURS, "default"),
        Leg::new(&APALIS, "default"),
        Leg::new(&APALIS, "batch-100"),
        Leg::new(&APALIS, "batch-500"),
        Leg::new(&GRAPHILE, "default"),
        Leg::new(&GRAPHILE, "best"),
        Leg::new(&GRAPHILE, "local-queue"),
        Leg::new(&AWA, "default"),
        Leg::new(&AWA, "partitioned-4"),
    ];
    let jobs = plan.drain_jobs;
    let cap = plan.drain_cap;
    rounds(
        admin_url,
        "a",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let drained = leg.queue.drain(url, leg.setting(), jobs, cap).await?;
            let rate = report::rate(drained.rate());
            let shown = if drained.complete {
                format!("{rate} in {:.2} s", drained.elapsed.as_secs_f64())
            } else {
                format!(
                    "{rate} ({} of {jobs} done in {:.1} s)",
                    drained.done,
                    drained.elapsed.as_secs_f64()
                )
            };
            Ok(Outcome::of_drain(&drained, cap, shown))
        },
    )
    .await?;
    let n = report_count(jobs);
    Ok(vec![
        Row {
            case: "a".to_owned(),
            what: format!("drain {n} queued no-op jobs, 1 instance ×32: defaults"),
            unit: Unit::Rate,
            ours: take(&mut legs, "ours", "default"),
            anchors: vec![
                take(&mut legs, "apalis", "default"),
                take(&mut legs, "graphile", "default"),
                take(&mut legs, "awa", "default"),
            ],
        },
        Row {
            case: "a".to_owned(),
            what: format!("drain {n} queued no-op jobs, 1 instance ×32: anchors' best"),
            unit: Unit::Rate,
            ours: take(&mut legs, "ours", "default"),
            anchors: vec![
                take(&mut legs, "apalis", "batch-100"),
                take(&mut legs, "graphile", "best"),
                take(&mut legs, "awa", "partitioned-4"),
            ],
        },
        Row {
            case: "a".to_owned(),
            what: format!("drain {n} queued no-op jobs, 1 instance ×32: other tunings"),
            unit: Unit::Rate,
            ours: take(&mut legs, "ours", "default"),
            anchors: vec![
                take(&mut legs, "apalis", "batch-500"),
                take(&mut legs, "graphile", "local-queue"),
            ],
        },
    ])
}

/// (b) Enqueue→start latency, one job at a time on an idle instance.
async fn latency(admin_url: &str, plan: &Plan) -> Result<Vec<Row>> {
    let mut legs = vec![
        Leg::new(&OURS, "default"),
        Leg::new(&APALIS, "pubsub"),
        Leg::new(&GRAPHILE, "default"),
        Leg::new(&AWA, "default"),
    ];
    let jobs = plan.latency_jobs;
    let pace = Pace {
        jobs,
        gap: Duration::ZERO,
        budget: plan.latency_budget,
    };
    // Every round's samples per leg, for the percentiles afterwards.
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![Vec::new(); legs.len()];
    let names: Vec<(&str, &str)> = legs.iter().map(|l| (l.cell.lib, l.cell.setting)).collect();
    rounds(
        admin_url,
        "b",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let got = leg.queue.latency(url, leg.setting(), pace).await?;
            let shown = format!(
                "p50 {} p95 {} p99 {} ({} jobs)",
                report::seconds(percentile(&got, 50.0).as_secs_f64()),
                report::seconds(percentile(&got, 95.0).as_secs_f64()),
                report::seconds(percentile(&got, 99.0).as_secs_f64()),
                got.len()
            );
            let measured = got.len();
            let i = names
                .iter()
                .position(|n| *n == (leg.cell.lib, leg.cell.setting))
                .expect("a leg");
            samples[i].push(got);
            // The cell's values are set from the samples below (one row per
            // percentile), so this value is only a placeholder.
            Ok(if measured < jobs {
                let budget = pace.budget.as_secs();
                Outcome::Partial(0.0, format!("{budget} s budget hit: fewer jobs"), shown)
            } else {
                Outcome::Value(0.0, shown)
            })
        },
    )
    .await?;
    let mut rows = Vec::new();
    for p in [50.0, 95.0, 99.0] {
        let cells: Vec<Cell> = legs
            .iter()
            .zip(&samples)
            .map(|(leg, rounds)| {
                let mut cell = leg.cell.clone();
                cell.values = rounds
                    .iter()
                    .map(|s| percentile(s, p).as_secs_f64())
                    .collect();
                cell
            })
            .collect();
        let mut cells = cells.into_iter();
        let ours = cells.next().expect("ours");
        rows.push(Row {
            case: format!("b p{p:.0}"),
            what: format!("enqueue→start, idle instance, {jobs} jobs one at a time"),
            unit: Unit::Seconds,
            ours,
            anchors: cells.collect(),
        });
    }
    if !plan.quick {
        rows.push(latency_with_defaults(admin_url, plan).await?);
    }
    Ok(rows)
}

/// (b) with every library at its defaults, each job enqueued after the
/// instance has been idle for a while (200 ms). apalis's default storage
/// has no LISTEN/NOTIFY: an idle worker looks for jobs again only on its
/// 30 s heartbeat, so this takes up to 30 s a job and is measured on 2
/// jobs in one round; the figures are per job.
async fn latency_with_defaults(admin_url: &str, plan: &Plan) -> Result<Row> {
    const JOBS: usize = 2;
    const IDLE: Duration = Duration::from_millis(200);
    let mut legs = vec![
        Leg::new(&OURS, "default"),
        Leg::new(&APALIS, "default"),
        Leg::new(&GRAPHILE, "default"),
        Leg::new(&AWA, "default"),
    ];
    let once = Plan {
        rounds: 1,
        ..plan.clone()
    };
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); legs.len()];
    let names: Vec<&str> = legs.iter().map(|l| l.cell.lib).collect();
    rounds(
        admin_url,
        "b",
        &once,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let pace = Pace {
                jobs: JOBS,
                gap: IDLE,
                budget: Duration::from_secs(600),
            };
            let got = leg.queue.latency(url, leg.setting(), pace).await?;
            let shown: Vec<String> = got
                .iter()
                .map(|d| report::seconds(d.as_secs_f64()))
                .collect();
            let i = names
                .iter()
                .position(|n| *n == leg.cell.lib)
                .expect("a leg");
            samples[i] = got.iter().map(Duration::as_secs_f64).collect();
            Ok(Outcome::Value(
                0.0,
                format!("per job: {}", shown.join(", ")),
            ))
        },
    )
    .await?;
    let mut cells = legs
        .into_iter()
        .zip(samples)
        .map(|(leg, values)| Cell { values, ..leg.cell });
    let ours = cells.next().expect("ours");
    Ok(Row {
        case: "b def".to_owned(),
        what: format!(
            "enqueue→start after 200 ms idle, every default (apalis: no pubsub), {JOBS} jobs"
        ),
        unit: Unit::Seconds,
        ours,
        anchors: cells.collect(),
    })
}

/// (c) kill -9 of the process running a job → the job starts again in
/// another process.
async fn recovery(admin_url: &str, plan: &Plan) -> Result<Vec<Row>> {
    let mut legs = vec![
        Leg::new(&OURS, "default"),
        Leg::new(&OURS, "lease-1s"),
        Leg::new(&APALIS, "hb-334ms"),
        Leg::new(&GRAPHILE, "recovery-1s"),
        Leg::new(&AWA, "recovery-1s"),
    ];
    if plan.full {
        legs.push(Leg::new(&APALIS, "default"));
        legs.push(Leg::new(&GRAPHILE, "default"));
        legs.push(Leg::new(&AWA, "default"));
    }
    let plan_cap = plan.recovery_cap;
    rounds(
        admin_url,
        "c",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            // apalis's default needs 300 s, awa's up to about 125 s: give
            // them that and the usual 60 s.
            let cap = match (leg.cell.lib, leg.setting()) {
                ("apalis", "default") => Duration::from_secs(300) + plan_cap,
                ("awa", "default") => Duration::from_secs(125) + plan_cap,
                _ => plan_cap,
            };
            Ok(
                match kill_and_restart(url, leg.queue, leg.setting(), cap).await? {
                    Some(took) => Outcome::Value(took, report::seconds(took)),
                    None => Outcome::TimedOut(format!("timed out: > {} s", cap.as_secs())),
                },
            )
        },
    )
    .await?;

    let mut apalis_default = Cell::new("apalis", "default", APALIS.describe("default"));
    let mut graphile_default = Cell::new("graphile", "default", GRAPHILE.describe("default"));
    let mut awa_default = Cell::new("awa", "default", AWA.describe("default"));
    if plan.full {
        apalis_default = take(&mut legs, "apalis", "default");
        graphile_default = take(&mut legs, "graphile", "default");
        awa_default = take(&mut legs, "awa", "default");
    } else {
        apalis_default.fixed = Some(
            "300 s (its setting: heartbeat_interval 30 s × missed_heartbeats 10; not measured, --full does)"
                .to_owned(),
        );
        graphile_default.fixed = Some(
            "never by itself (worker_recovery is off by default: WorkerRecoveryConfig.enabled = false)"
                .to_owned(),
        );
        awa_default.fixed = Some(
            "60-125 s (its settings: heartbeat 30 s, rescued once 90 s stale by a scan every 30 s, \
             then its retry backoff 2-2.5 s; not measured, --full does)"
                .to_owned(),
        );
    }
    Ok(vec![
        Row {
            case: "c".to_owned(),
            what: "kill -9 → job starts again in another process: defaults".to_owned(),
            unit: Unit::Seconds,
            ours: take(&mut legs, "ours", "default"),
            anchors: vec![apalis_default, graphile_default, awa_default],
        },
        Row {
            case: "c".to_owned(),
            what: "kill -9 → job starts again in another process: shortest safe settings"
                .to_owned(),
            unit: Unit::Seconds,
            ours: take(&mut legs, "ours", "lease-1s"),
            anchors: vec![
                take(&mut legs, "apalis", "hb-334ms"),
                take(&mut legs, "graphile", "recovery-1s"),
                take(&mut legs, "awa", "recovery-1s"),
            ],
        },
    ])
}

/// One round of (c): node A runs the long job, node B idles beside it;
/// kill -9 A, then wait (at most `cap`) for the job to start on B. Returns
/// seconds from the kill to that start, both on the database's clock, or
/// `None` on a timeout.
async fn kill_and_restart(
    url: &str,
    queue: &dyn Queue,
    setting: &str,
    cap: Duration,
) -> Result<Option<f64>> {
    const READY: Duration = Duration::from_secs(60);
    queue.prepare(url).await?;
    create_starts_table(url).await?;
    let db = PgPool::connect(url).await?;
    let mut a = Node::start(url, queue.name(), setting, "A", READY).await?;
    queue.enqueue_long(url).await?;
    let first = wait_for_start(&db, 0.0, READY)
        .await?
        .ok_or("the long job did not start on node A within 60 s")?;
    if first.node != "A" {
        return Err(format!("the long job started on {} instead of A", first.node).into());
    }
    let _b = Node::start(url, queue.name(), setting, "B", READY).await?;

    a.kill_9();
    let killed_at = db_now(&db).await?;
    drop(a);

    let again = wait_for_start(&db, killed_at, cap).await?;
    db.close().await;
    let Some(again) = again else {
        return Ok(None);
    };
    if again.job != first.job || again.node != "B" {
        return Err(format!(
            "expected job {} to start again on B, got job {} on {} (attempt {})",
            first.job, again.job, again.node, again.attempt
        )
        .into());
    }
    Ok(Some(again.at - killed_at))
}

/// (d) Enqueue throughput from 64 tasks, nothing draining.
async fn enqueue(admin_url: &str, plan: &Plan) -> Result<Vec<Row>> {
    let mut legs = vec![
        Leg::new(&OURS, "default"),
        Leg::new(&APALIS, "default"),
        Leg::new(&GRAPHILE, "default"),
        Leg::new(&AWA, "default"),
    ];
    let (jobs, tasks) = (plan.enqueue_jobs, plan.enqueue_tasks);
    rounds(
        admin_url,
        "d",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let took = leg.queue.enqueue(url, jobs, tasks).await?;
            let rate = jobs as f64 / took.as_secs_f64();
            Ok(Outcome::Value(
                rate,
                format!("{} in {:.2} s", report::rate(rate), took.as_secs_f64()),
            ))
        },
    )
    .await?;
    for leg in &mut legs {
        leg.cell.described = match leg.cell.lib {
            "ours" => "manager.call on an execute(false) manager".to_owned(),
            "apalis" => "PostgresStorage::push (TaskSink), default pool".to_owned(),
            "graphile" => "WorkerUtils::add_job, default pool".to_owned(),
            _ => "awa::insert_with, default pool".to_owned(),
        };
    }
    let mut cells = legs.into_iter().map(|l| l.cell);
    let ours = cells.next().expect("ours");
    Ok(vec![Row {
        case: "d".to_owned(),
        what: format!(
            "{} enqueues from {tasks} tasks, each until committed",
            report_count(jobs)
        ),
        unit: Unit::Rate,
        ours,
        anchors: cells.collect(),
    }])
}

/// (e) Bulk insert: `bulk_jobs` runs in one bulk call of each library,
/// until committed, nothing draining. Two rows, ours's two bulk calls,
/// each against every anchor's fastest bulk path (awa has two: the faster
/// median of the two is its cell, the other is named in its legend).
async fn bulk(admin_url: &str, plan: &Plan) -> Result<Vec<Row>> {
    let mut legs = vec![
        Leg::new(&OURS, "call-many"),
        Leg::new(&OURS, "enqueue-many"),
        Leg::new(&APALIS, "push-bulk"),
        Leg::new(&GRAPHILE, "add-jobs"),
        Leg::new(&AWA, "queue-storage-copy"),
    ];
    // awa's compat COPY inserts row by row (about 1k/s here): 100 s a
    // round at 100k, so only `--quick` (2,000 runs) and `--full` run it.
    let compat = plan.quick || plan.full;
    if compat {
        legs.push(Leg::new(&AWA, "copy"));
    }
    let jobs = plan.bulk_jobs;
    rounds(
        admin_url,
        "e",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let took = leg.queue.bulk(url, leg.setting(), jobs).await?;
            let rate = jobs as f64 / took.as_secs_f64();
            Ok(Outcome::Value(
                rate,
                format!("{} in {:.3} s", report::rate(rate), took.as_secs_f64()),
            ))
        },
    )
    .await?;
    let median = |cell: &Cell| cell.spread().map_or(0.0, |s| s.median);
    let mut awa = take(&mut legs, "awa", "queue-storage-copy");
    if compat {
        let copy = take(&mut legs, "awa", "copy");
        let other = if median(&copy) > median(&awa) {
            std::mem::replace(&mut awa, copy)
        } else {
            copy
        };
        let other_text = match other.spread() {
            Some(s) => report::rate(s.median),
            None => "no figure".to_owned(),
        };
        awa.described = format!(
            "{} (faster of its two; {}: {other_text})",
            awa.described, other.described
        );
    } else {
        awa.described = format!(
            "{} (its other, awa::insert_many_copy_from_pool, goes row by row: \
             about 1k/s; measured with --quick or --full)",
            awa.described
        );
    }
    let anchors = vec![
        take(&mut legs, "apalis", "push-bulk"),
        take(&mut legs, "graphile", "add-jobs"),
        awa,
    ];
    let n = report_count(jobs);
    Ok(vec![
        Row {
            case: "e".to_owned(),
            what: format!("{n} runs in one bulk call, until committed"),
            unit: Unit::Rate,
            ours: take(&mut legs, "ours", "call-many"),
            anchors: anchors.clone(),
        },
        Row {
            case: "e tx".to_owned(),
            what: format!("{n} runs in one bulk call in the caller's transaction, until committed"),
            unit: Unit::Rate,
            ours: take(&mut legs, "ours", "enqueue-many"),
            anchors,
        },
    ])
}

/// `10k`, `200`.
fn report_count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
