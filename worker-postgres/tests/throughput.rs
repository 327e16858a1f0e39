//! A quick look at the drain rate while working on the claim → execute →
//! record pipeline: N no-op runs queued up front, one node at concurrency
//! 32 drains them. It prints the rate and where the time went: CPU seconds
//! of the test process (the node) and of every PostgreSQL process, and the
//! server's commits, rows written and WAL per run. It asserts nothing
//! about speed (the numbers that count come from `bench`, against the
//! anchors, in one run).
//!
//! The server's CPU is read from `/proc`, so it is counted only when the
//! server runs on this machine (the throwaway cluster, or a local
//! `DATABASE_URL`).
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
        let before = Sample::take(&look).await;
        let began = Instant::now();
        let node = manager(backend).await;
        eventually("the drain", || async {
            node.stats("noop").await.unwrap().runs >= runs as u64
        })
        .await;
        let took = began.elapsed();
        let after = Sample::take(&look).await;
        let per_run = |n: f64| n / runs as f64;
        eprintln!(
            "round {round}: {runs} runs in {took:?}: {:.0} runs/s\n  \
             CPU: node {:.2} cores, PostgreSQL {:.2} cores ({:.1} µs/run)\n  \
             per run: {:.3} commits, {:.2} rows inserted, {:.2} updated, {:.2} deleted, {:.0} bytes of WAL\n  \
             commits/s: {:.0}",
            runs as f64 / took.as_secs_f64(),
            (after.node_cpu - before.node_cpu) / took.as_secs_f64(),
            (after.server_cpu - before.server_cpu) / took.as_secs_f64(),
            per_run(after.server_cpu - before.server_cpu) * 1e6,
            per_run(after.commits - before.commits),
            per_run(after.inserted - before.inserted),
            per_run(after.updated - before.updated),
            per_run(after.deleted - before.deleted),
            per_run(after.wal - before.wal),
            (after.commits - before.commits) / took.as_secs_f64(),
        );
        node.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The counters the probe compares before and after a drain.
struct Sample {
    /// CPU seconds of this process.
    node_cpu: f64,
    /// CPU seconds of every process named `postgres` on this machine.
    server_cpu: f64,
    commits: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
    wal: f64,
}

impl Sample {
    async fn take(pool: &sqlx::PgPool) -> Sample {
        let (commits, inserted, updated, deleted, wal): (i64, i64, i64, i64, f64) = sqlx::query_as(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted,
                        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8
                 FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        // pg_stat_database is refreshed at most once per transaction.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(pool)
            .await
            .unwrap();
        Sample {
            node_cpu: cpu_seconds("self"),
            server_cpu: std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
                .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.trim() == "postgres")
                })
                .map(|pid| cpu_seconds(&pid))
                .sum(),
            commits: commits as f64,
            inserted: inserted as f64,
            updated: updated as f64,
            deleted: deleted as f64,
            wal,
        }
    }
}

/// User + system CPU seconds of a process, from `/proc/PID/stat` (0 if it
/// is gone).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
