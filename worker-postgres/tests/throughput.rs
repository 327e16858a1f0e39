//! A quick look at the drain rate while working on the claim → execute →
//! record pipeline: N no-op runs queued up front, one node at concurrency
//! 32 drains them. It prints; it asserts nothing about speed (the numbers
//! that count come from `bench`, against the anchors, in one run).
//!
//! `cargo test --release -p worker-postgres --test throughput -- --ignored --nocapture`
//! (`DRAIN_RUNS`, `DRAIN_ROUNDS` to change the size).

mod support;

use std::time::{Duration, Instant};

use support::{eventually, manager, pool, schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release -p worker-postgres --test throughput -- --ignored --nocapture"]
async fn drain_rate() {
    let Some(db) = support::database() else {
        return;
    };
    let runs: i64 = std::env::var("DRAIN_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let rounds: usize = std::env::var("DRAIN_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    for round in 0..rounds {
        let schema = schema(&format!("drain_{round}"));
        let backend = support::backend(db, &schema).concurrency(32);
        backend.migrate().await.unwrap();
        let look = pool(db).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.runs (id, worker) SELECT gen_random_uuid(), 'noop' FROM generate_series(1, {runs})"
        )))
        .execute(&look)
        .await
        .unwrap();
        let began = Instant::now();
        let node = manager(backend).await;
        eventually("the drain", || async {
            node.stats("noop").await.unwrap().runs >= runs as u64
        })
        .await;
        let took = began.elapsed();
        eprintln!(
            "round {round}: {runs} runs in {took:?}: {:.0} runs/s",
            runs as f64 / took.as_secs_f64()
        );
        node.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
