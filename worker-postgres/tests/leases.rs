//! A healthy node never loses a lease, and a node whose renewal is late
//! starts nothing on a lease that may lapse: so a run executes twice only
//! when a node really stopped. Each test makes renewal's enemies real (a
//! pool held busy past the lease, an outbox commit held back, renewal
//! paused) while another node's reaper waits for any lease that lapses;
//! without the fix, each of them executes runs twice.
//!
//! Every start of the `counted` worker is appended to a file, by this
//! process and by the node processes alike, so "started once" is counted,
//! not inferred.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Database, NodeProcess, NodeSettings, eventually, manager, pool, schema};

/// This process's starts file (shared by the tests of this binary: each
/// test reads only its own runs' lines).
fn local_starts() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "worker-postgres-leases-{}.starts",
        std::process::id()
    ));
    support::workers::STARTS.get_or_init(|| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the starts file")
    });
    path
}

/// A starts file for the node processes of one test.
fn node_starts(schema: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{schema}.starts"))
}

/// Every run of the schema: id -> (state, attempt, stalls).
async fn runs(pool: &sqlx::PgPool, schema: &str) -> HashMap<String, (String, i32, i32)> {
    let rows: Vec<(String, String, i32, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id::text, state, attempt, stalls FROM {schema}.all_runs"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, state, attempt, stalls)| (id, (state, attempt, stalls)))
        .collect()
}

async fn ended(pool: &sqlx::PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.ended_runs"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until `n` runs of the schema have ended, then checks that each
/// succeeded on attempt 1 with no stall, and started exactly once.
async fn each_started_once(pool: &sqlx::PgPool, schema: &str, n: usize, files: &[PathBuf]) {
    eventually(&format!("{n} runs ended"), || async {
        ended(pool, schema).await >= n as i64
    })
    .await;
    let runs = runs(pool, schema).await;
    assert_eq!(runs.len(), n);
    let mut starts: HashMap<&str, Vec<String>> = HashMap::new();
    let texts: Vec<String> = files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap_or_default())
        .collect();
    for line in texts.iter().flat_map(|text| text.lines()) {
        let mut words = line.split(' ');
        let (Some(id), Some(attempt), Some(pid)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if let Some((key, _)) = runs.get_key_value(id) {
            starts
                .entry(key.as_str())
                .or_default()
                .push(format!("attempt {attempt} in process {pid}"));
        }
    }
    let twice: Vec<_> = starts.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {n} runs started more than once: {:?}",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(starts.len(), n, "every run started");
    let odd: Vec<_> = runs
        .iter()
        .filter(|(_, (state, attempt, stalls))| {
            state != "succeeded" || *attempt != 1 || *stalls != 0
        })
        .take(5)
        .collect();
    assert!(
        odd.is_empty(),
        "every run succeeded on attempt 1 with no stall: {odd:?}"
    );
}

/// Waits until `n` runs are held (claimed) in the schema.
async fn held(pool: &sqlx::PgPool, schema: &str, n: i64) {
    eventually(&format!("{n} runs held"), || async {
        let running: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.runs WHERE state = 'running'"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        running >= n
    })
    .await;
}

fn one_second_node(db: &Database, schema: &str) -> NodeSettings {
    NodeSettings {
        lease_ms: 1000,
        starts_file: Some(node_starts(schema)),
        ..NodeSettings::new(db, schema)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_held_busy_past_the_lease_costs_no_lease() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("pool_busy");
    let files = [local_starts(), node_starts(&schema)];
    // The node's own pool, small, so that the test can hold all of it.
    let app_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&db.url)
        .await
        .unwrap();
    let node = manager(
        support::backend(db, &schema)
            .lease(Duration::from_secs(1))
            .concurrency(4)
            .pool(app_pool.clone()),
    )
    .await;
    let look = pool(db).await;
    // 4 executing and 4 claimed ahead, each 1.5 s.
    for _ in 0..8 {
        node.call("counted", None, Some(json!({"ms": 1500})))
            .await
            .unwrap();
    }
    held(&look, &schema, 8).await;
    // Another node, whose reaper takes any lease that lapses.
    let _other = NodeProcess::start(&one_second_node(db, &schema));
    // Every pooled connection busy for three leases: no claim, no ending
    // written, no reap by this node meanwhile.
    let mut busy = Vec::new();
    while let Ok(conn) = app_pool.acquire().await {
        busy.push(conn);
    }
    assert!(!busy.is_empty());
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(busy);
    each_started_once(&look, &schema, 8, &files).await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ending_whose_commit_is_held_back_holds_no_other_lease_back() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("slow_outbox");
    let files = [local_starts(), node_starts(&schema)];
    let _other = NodeProcess::start(&NodeSettings {
        concurrency: 2,
        ..one_second_node(db, &schema)
    });
    let node = manager(
        support::backend(db, &schema)
            .lease(Duration::from_secs(1))
            .concurrency(2),
    )
    .await;
    let look = pool(db).await;
    // Every ending counts itself into the worker's statistics row in the
    // transaction that records it: holding that row locked holds every
    // outbox commit back, with its runs' rows locked.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.stats (worker) VALUES ('counted')"
    )))
    .execute(&look)
    .await
    .unwrap();
    let mut lock = look.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {schema}.stats WHERE worker = 'counted' FOR UPDATE"
    )))
    .execute(&mut *lock)
    .await
    .unwrap();
    for _ in 0..12 {
        node.call("counted", None, Some(json!({"ms": 600})))
            .await
            .unwrap();
    }
    // Runs end, their endings wait behind the lock, others are claimed
    // and executed meanwhile: three leases long.
    tokio::time::sleep(Duration::from_secs(3)).await;
    lock.rollback().await.unwrap();
    each_started_once(&look, &schema, 12, &files).await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_renewal_is_late_starts_nothing_on_a_lapsing_lease() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("late_renewal");
    let files = [local_starts()];
    let backend = support::backend(db, &schema)
        .lease(Duration::from_secs(1))
        .concurrency(2);
    let node = manager(backend.clone()).await;
    let look = pool(db).await;
    // Renewal stops for a lease and a half, as in a process too starved
    // to renew. The node holds 2 runs executing and 2 claimed ahead, each
    // 800 ms: the two ahead would start 200 ms before their lease lapses,
    // and run 600 ms past it, while this node's own reaper requeues them.
    backend
        .pause_lease_renewal_for_tests(Duration::from_millis(1500))
        .unwrap();
    for _ in 0..4 {
        node.call("counted", None, Some(json!({"ms": 800})))
            .await
            .unwrap();
    }
    each_started_once(&look, &schema, 4, &files).await;
    node.shutdown().await.unwrap();
}

/// 3 node processes, freshly started (the cold start is where leases were
/// lost), 3,000 runs from 8 callers that drop their handles, while the
/// lanes of the runs table are cleared one after another, as fast as
/// they can be (queued and running runs move lane under the nodes' feet).
async fn three_nodes_run_each_once(lease_ms: u64) {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema(&format!("three_{lease_ms}"));
    let files = [node_starts(&schema)];
    let calling = support::backend(db, &schema).execute(false);
    let caller = Arc::new(manager(calling.clone()).await);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clearing = tokio::spawn({
        let done = done.clone();
        async move {
            let mut truncated = 0;
            for lane in (0..3).cycle() {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let cleared = calling.clear_lane_for_tests(lane).await.unwrap();
                truncated += usize::from(cleared.starts_with("Truncated"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            truncated
        }
    });
    let settings = NodeSettings {
        lease_ms,
        concurrency: 32,
        starts_file: Some(node_starts(&schema)),
        ..NodeSettings::new(db, &schema)
    };
    let _nodes = [
        NodeProcess::start(&settings),
        NodeProcess::start(&settings),
        NodeProcess::start(&settings),
    ];
    let began = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..8 {
        let caller = caller.clone();
        callers.push(tokio::spawn(async move {
            for _ in 0..375 {
                caller.call("counted", None, None).await.unwrap();
            }
        }));
    }
    for task in callers {
        task.await.unwrap();
    }
    let look = pool(db).await;
    each_started_once(&look, &schema, 3000, &files).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let truncated = clearing.await.unwrap();
    assert!(truncated >= 3, "lanes truncated under load: {truncated}");
    eprintln!(
        "3 nodes, lease {lease_ms} ms: 3,000 runs, each started once, in {:?}, {truncated} lanes truncated meanwhile",
        began.elapsed()
    );
    caller.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fresh_nodes_with_a_one_second_lease_start_each_run_once() {
    for _ in 0..2 {
        three_nodes_run_each_once(1000).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fresh_nodes_with_a_half_second_lease_start_each_run_once() {
    for _ in 0..2 {
        three_nodes_run_each_once(500).await;
    }
}
