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
    worker_core::shutdown_signal().await.expect("signals");
    manager.shutdown().await.expect("shutdown");
    println!("stopped");
}
