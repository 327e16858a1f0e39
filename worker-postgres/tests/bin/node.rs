//! A node for the multi-process tests: the test workers, a PostgreSQL
//! backend that executes them, and nothing else. Configured by the
//! environment (`DATABASE_URL`, `WORKER_SCHEMA`, `LEASE_MS`, `CONCURRENCY`,
//! `MAX_STALLS`, `GRACE_MS`, `TICKS`, and `STARTS_FILE` for the starts of
//! the `counted` worker); prints `ready` once it claims runs,
//! and on SIGTERM shuts down gracefully, prints `stopped` and exits 0.

#[path = "../support/workers.rs"]
mod workers;

use std::time::Duration;

use worker_core::WorkerManager;
use worker_postgres::Postgres;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let schema = std::env::var("WORKER_SCHEMA").unwrap_or_else(|_| "worker".to_owned());
    let backend = Postgres::new(url)
        .schema(&schema)
        .lease(Duration::from_millis(env_number("LEASE_MS", 2000)))
        .concurrency(env_number("CONCURRENCY", 16) as usize)
        .max_stalls(env_number("MAX_STALLS", 2) as u32);
    if let Ok(path) = std::env::var("STARTS_FILE") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open STARTS_FILE");
        let _ = workers::STARTS.set(file);
    }
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(env_number("GRACE_MS", 300)));
    let ticks = std::env::var("TICKS").is_ok_and(|v| v == "1");
    // The backend first, so that the scheduled worker ticks through it.
    workers::register(&manager).await;
    manager
        .set_backend(backend)
        .await
        .expect("the backend starts");
    if ticks {
        workers::register_ticks(&manager).await;
    }
    println!("ready {}", std::process::id());
    // CALL_KEY=k CALL_AT_MS=<epoch ms> CALLS=n: at that moment, n
    // concurrent calls of `slow` with that key; prints the run ids.
    if let Ok(key) = std::env::var("CALL_KEY") {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(env_number("CALL_AT_MS", 0));
        if let Ok(wait) = at.duration_since(std::time::SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let calls = (0..env_number("CALLS", 10)).map(|_| {
            let manager = manager.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let call = worker_core::Call::new()
                    .key(key)
                    .payload(serde_json::json!({"ms": 1500}));
                manager
                    .call_with("slow", call)
                    .await
                    .map(|h| h.id().to_owned())
            })
        });
        for call in calls.collect::<Vec<_>>() {
            match call.await.expect("the call task") {
                Ok(id) => println!("called {id}"),
                Err(error) => println!("call failed: {error}"),
            }
        }
        println!("calls done");
    }
    // START_WORKFLOW=1: starts a diamond of `join` steps, prints its id
    // and exits at once, before any of it ran: the workflow must outlive
    // its caller.
    if std::env::var("START_WORKFLOW").is_ok_and(|v| v == "1") {
        let flow = workers::diamond("outlives", 200);
        let handle = manager
            .start_workflow(flow)
            .await
            .expect("start the workflow");
        println!("workflow {}", handle.id());
        std::process::exit(0);
    }
    worker_core::shutdown_signal().await.expect("signals");
    manager.shutdown().await.expect("shutdown");
    println!("stopped");
}
