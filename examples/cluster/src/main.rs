//! Many machines on one PostgreSQL, shown on one: worker nodes, a web node
//! with the dashboard, runs spread over the nodes, one node killed with
//! `kill -9`, and its runs finishing on the others.
//!
//! ```text
//! cargo run -p cluster -- --nodes 3                    # a throwaway PostgreSQL from /usr/lib/postgresql
//! cargo run -p cluster -- --nodes 3 --postgres URL     # or yours (its own schema, dropped after)
//! cargo run -p cluster -- --nodes 3 --keep             # then keep serving the dashboard until Ctrl+C
//! ```
//!
//! The same binary is each node (`cluster node …`) and the web node
//! (`cluster web …`): the same workers everywhere, as in production.

#[path = "../../../worker-postgres/tests/support/throwaway.rs"]
mod throwaway;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use worker_core::prelude::*;
use worker_postgres::Postgres;

const USAGE: &str = "\
usage: cluster [--nodes N] [--postgres URL] [--keep]

Starts N worker nodes (default 3) and a web node on one PostgreSQL, sends
runs, kills one node with kill -9, and shows its runs finishing elsewhere.

  --nodes N        how many worker nodes (1 to 16)
  --postgres URL   the database (default: a throwaway cluster from
                   /usr/lib/postgresql/*/bin, or $DATABASE_URL)
  --keep           keep the web node serving until Ctrl+C
  -h, --help       this help";

/// The workers of every node.
async fn register(manager: &WorkerManager) -> Result<()> {
    // Renders `frames` frames, 150 ms each, saying how far it got.
    manager
        .register_with("render-video", WorkerOptions::new(), |ctx| async move {
            let frames = ctx
                .payload()
                .and_then(|p| p["frames"].as_u64())
                .unwrap_or(10);
            for frame in 1..=frames {
                ctx.sleep(Duration::from_millis(150)).await;
                ctx.send(json!({"frame": frame, "of": frames, "attempt": ctx.attempt()}))
                    .await?;
            }
            Ok(json!({"frames": frames, "attempt": ctx.attempt()}))
        })
        .await
}

fn backend(url: &str, schema: &str) -> Postgres {
    Postgres::new(url)
        .schema(schema)
        .lease(Duration::from_secs(2))
        .concurrency(4)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("node") => node(&args[1..]).await,
        Some("web") => web(&args[1..]).await,
        _ => tour(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `cluster node --postgres URL --schema S`: executes runs until SIGTERM.
async fn node(args: &[String]) -> std::result::Result<(), String> {
    let url = flag(args, "--postgres").ok_or("node needs --postgres URL")?;
    let schema = flag(args, "--schema").ok_or("node needs --schema NAME")?;
    let manager = WorkerManager::new();
    register(&manager).await.map_err(|e| e.to_string())?;
    manager
        .set_backend(backend(url, schema))
        .await
        .map_err(|e| e.to_string())?;
    println!("ready");
    manager
        .shutdown_on_signal()
        .await
        .map_err(|e| e.to_string())
}

/// `cluster web --postgres URL --schema S`: the dashboard over the cluster,
/// executing nothing, until SIGTERM.
async fn web(args: &[String]) -> std::result::Result<(), String> {
    let url = flag(args, "--postgres").ok_or("web needs --postgres URL")?;
    let schema = flag(args, "--schema").ok_or("web needs --schema NAME")?;
    let manager = WorkerManager::new();
    register(&manager).await.map_err(|e| e.to_string())?;
    manager
        .set_backend(backend(url, schema).execute(false))
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("ready http://{addr}/workers");
    let app = worker_web::mount(
        axum::Router::new(),
        "/workers",
        worker_web::router(manager.clone()),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = worker_core::shutdown_signal().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    manager.shutdown().await.map_err(|e| e.to_string())
}

/// A child process of ours, killed if we stop first.
struct Process {
    child: Child,
    first_line: String,
}

impl Process {
    fn start(args: &[&str]) -> std::result::Result<Process, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("can't start a node: {e}"))?;
        let mut first_line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .map_err(|e| e.to_string())?;
        if !first_line.starts_with("ready") {
            return Err(format!("a node did not start: {first_line:?}"));
        }
        Ok(Process { child, first_line })
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tour(args: &[String]) -> std::result::Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let nodes: usize = flag(args, "--nodes")
        .map(|n| {
            n.parse()
                .map_err(|_| format!("--nodes takes a number from 1 to 16, not {n:?}"))
        })
        .transpose()?
        .unwrap_or(3);
    if !(1..=16).contains(&nodes) {
        return Err(format!("--nodes takes a number from 1 to 16, not {nodes}"));
    }
    let keep = args.iter().any(|a| a == "--keep");
    let mut _throwaway = None;
    let url = match flag(args, "--postgres")
        .map(str::to_owned)
        .or_else(|| std::env::var("DATABASE_URL").ok())
    {
        Some(url) => url,
        None => {
            println!("starting a throwaway PostgreSQL (pass --postgres URL to use yours)…");
            let cluster = throwaway::Cluster::start()
                .map_err(|why| format!("no database: {why}; pass --postgres URL"))?;
            let url = cluster.url();
            _throwaway = Some(cluster);
            url
        }
    };
    let schema = format!("cluster_demo_{}", std::process::id());

    let mut workers = Vec::new();
    for _ in 0..nodes {
        workers.push(Process::start(&[
            "node",
            "--postgres",
            &url,
            "--schema",
            &schema,
        ])?);
    }
    let web = Process::start(&["web", "--postgres", &url, "--schema", &schema])?;
    let dashboard = web
        .first_line
        .trim()
        .trim_start_matches("ready ")
        .to_owned();
    println!(
        "{nodes} worker nodes (pids {}), dashboard at {dashboard}",
        pids(&workers)
    );

    let caller = WorkerManager::new();
    register(&caller).await.map_err(|e| e.to_string())?;
    caller
        .set_backend(backend(&url, &schema).execute(false))
        .await
        .map_err(|e| e.to_string())?;
    let pool = worker_postgres::sqlx::PgPool::connect(&url)
        .await
        .map_err(|e| e.to_string())?;

    let runs = nodes * 4;
    let mut handles = Vec::new();
    for _ in 0..runs {
        handles.push(
            caller
                .call("render-video", None, Some(json!({"frames": 12})))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    println!("{runs} render-video runs stored; each takes about 1.8 s");
    tokio::time::sleep(Duration::from_millis(700)).await;
    show(&pool, &schema).await;

    // The node holding the most runs is the one whose death shows the
    // rescue: which node claims first is up to the scheduler, not to us.
    let patience = Instant::now() + Duration::from_secs(10);
    let busiest = loop {
        let busiest = busiest_node(&pool, &schema).await;
        if busiest.is_some() || Instant::now() >= patience {
            break busiest;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = workers
        .iter()
        .find(|w| Some(w.child.id()) == busiest)
        .unwrap_or(&workers[0]);
    let victim_pid = victim.child.id();
    victim.signal("KILL");
    println!(
        "kill -9 {victim_pid}: its runs stay 'running' until their 2 s lease runs out, then start again elsewhere"
    );
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        show(&pool, &schema).await;
    }

    let mut restarted = 0;
    for handle in handles {
        let output: Value = handle.await_output().await.map_err(|e| e.to_string())?;
        if output["attempt"].as_u64() > Some(1) {
            restarted += 1;
        }
    }
    let stats = caller.stats("render-video").await.unwrap_or_default();
    println!(
        "all {runs} runs ended: {} succeeded, {} failed; {restarted} started again after the kill (attempt 2); each counted once",
        stats.runs - stats.errors,
        stats.errors
    );
    if keep {
        println!("the dashboard stays at {dashboard}; Ctrl+C to stop");
        let _ = worker_core::shutdown_signal().await;
    }
    caller.shutdown().await.map_err(|e| e.to_string())?;
    drop(web);
    drop(workers);
    let _ = worker_postgres::sqlx::query(worker_postgres::sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {schema} CASCADE"
    )))
    .execute(&pool)
    .await;
    Ok(())
}

fn pids(processes: &[Process]) -> String {
    processes
        .iter()
        .map(|p| p.child.id().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pid of the node holding the most unended runs, if any holds one.
async fn busiest_node(pool: &worker_postgres::sqlx::PgPool, schema: &str) -> Option<u32> {
    let rows: Vec<(String,)> =
        worker_postgres::sqlx::query_as(worker_postgres::sqlx::AssertSqlSafe(format!(
            "SELECT node FROM {schema}.runs WHERE state = 'running' AND node IS NOT NULL
             GROUP BY node ORDER BY count(*) DESC LIMIT 1"
        )))
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    rows.first()
        .and_then(|(node,)| node.split(':').nth(1)?.parse().ok())
}

/// One line: runs per state, and the running ones per node.
async fn show(pool: &worker_postgres::sqlx::PgPool, schema: &str) {
    let rows: Vec<(String, Option<String>, i64)> =
        worker_postgres::sqlx::query_as(worker_postgres::sqlx::AssertSqlSafe(format!(
            "SELECT state, CASE WHEN state = 'running' THEN node END, count(*)
             FROM {schema}.all_runs GROUP BY 1, 2 ORDER BY 1, 2"
        )))
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    let mut states: BTreeMap<String, i64> = BTreeMap::new();
    let mut running = Vec::new();
    for (state, node, count) in rows {
        *states.entry(state).or_default() += count;
        if let Some(node) = node {
            let pid = node.split(':').nth(1).unwrap_or("?").to_owned();
            running.push(format!("{pid}: {count}"));
        }
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "  runs: {:<40} running on: {}",
        states.join(", "),
        if running.is_empty() {
            "-".to_owned()
        } else {
            running.join(", ")
        }
    );
}
