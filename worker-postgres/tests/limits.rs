//! Cluster-wide limits in durable mode, against a real PostgreSQL and real
//! node processes: never over (at once, per window, per key), not under
//! (a limit with room and waiting work is used), fair across keys, and
//! crash-safe (a node killed with -9 gives its slots back).
//!
//! Every start and end is read back from the database, as it recorded
//! them on its own clock: a run's claim (`claimed_at`) and the release of
//! its slot (`released_at`, by its node's next claim once the attempt
//! stopped; else its ending, `ended_at`), and each earlier attempt's row in
//! `attempts`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::{NodeProcess, NodeSettings, database, eventually, pool, schema};
use worker_core::prelude::*;

/// One attempt as the database recorded it: its account (the limit key),
/// when it was claimed and when it ended, in epoch microseconds.
#[derive(Debug, Clone)]
struct Attempt {
    account: String,
    start: i64,
    end: i64,
}

/// Every attempt of `worker`'s runs: the last of each run from
/// `ended_runs`, the earlier ones (stalled, retried) from `attempts`.
async fn attempts(pool: &sqlx::PgPool, schema: &str, worker: &str) -> Vec<Attempt> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT e.payload->>'account',
                floor(extract(epoch FROM e.claimed_at) * 1000000)::int8,
                floor(extract(epoch FROM coalesce(e.released_at, e.ended_at)) * 1000000)::int8
         FROM {schema}.ended_runs e WHERE e.worker = $1
         UNION ALL
         SELECT e.payload->>'account',
                floor(extract(epoch FROM a.started_at) * 1000000)::int8,
                floor(extract(epoch FROM a.ended_at) * 1000000)::int8
         FROM {schema}.attempts a JOIN {schema}.ended_runs e ON e.id = a.run_id
         WHERE e.worker = $1"
    )))
    .bind(worker)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(account, start, end)| Attempt {
            account,
            start,
            end,
        })
        .collect()
}

/// The most attempts executing at one instant (an attempt holds its slot
/// from its start up to, not including, its end).
fn most_at_once<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for attempt in attempts {
        edges.push((attempt.start, 1));
        edges.push((attempt.end, -1));
    }
    // At one instant, ends before starts.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The most starts within any window of `period` (any interval of that
/// length: a window starting at each start covers every case).
fn most_in_a_window<'a>(
    attempts: impl IntoIterator<Item = &'a Attempt>,
    period: Duration,
) -> usize {
    let mut starts: Vec<i64> = attempts.into_iter().map(|a| a.start).collect();
    starts.sort_unstable();
    let period = i64::try_from(period.as_micros()).unwrap();
    let mut most = 0;
    let mut last = 0;
    for first in 0..starts.len() {
        while last < starts.len() && starts[last] < starts[first] + period {
            last += 1;
        }
        most = most.max(last - first);
    }
    most
}

fn by_account(attempts: &[Attempt]) -> HashMap<&str, Vec<&Attempt>> {
    let mut accounts: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for attempt in attempts {
        accounts
            .entry(attempt.account.as_str())
            .or_default()
            .push(attempt);
    }
    accounts
}

async fn count(pool: &sqlx::PgPool, sql: String) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A manager that only calls: the node processes execute every run.
async fn caller(db: &support::Database, schema: &str) -> WorkerManager {
    support::manager(support::backend(db, schema).execute(false)).await
}

fn nodes(db: &support::Database, schema: &str, lease_ms: u64) -> Vec<NodeProcess> {
    (0..3)
        .map(|_| {
            let mut settings = NodeSettings::new(db, schema);
            settings.concurrency = 8;
            settings.lease_ms = lease_ms;
            NodeProcess::start(&settings)
        })
        .collect()
}

/// `n` calls of `worker` over `accounts` accounts, `ms` long each.
fn calls(n: usize, accounts: usize, ms: u64) -> Vec<Call> {
    (0..n)
        .map(|i| Call::new().payload(json!({"account": format!("a{}", i % accounts), "ms": ms})))
        .collect()
}

async fn wait_until_ended(pool: &sqlx::PgPool, schema: &str, worker: &str, runs: i64) {
    eventually(&format!("{runs} runs of {worker} ended"), || async {
        count(
            pool,
            format!("SELECT count(*) FROM {schema}.ended_runs WHERE worker = '{worker}'"),
        )
        .await
            == runs
    })
    .await;
}

#[tokio::test]
async fn three_nodes_never_exceed_global_or_key_concurrency_and_use_all_of_it() {
    let Some(db) = database() else { return };
    let schema = schema("limit_slots");
    let manager = caller(db, &schema).await;
    let nodes = nodes(db, &schema, 2000);
    let pool = pool(db).await;
    // 2,000 runs over 20 accounts: 16 at once in the cluster (3 nodes of
    // 8 could run 24), 1 at once per account.
    manager
        .call_many("limited-slots", calls(2000, 20, 15))
        .await
        .unwrap();
    wait_until_ended(&pool, &schema, "limited-slots", 2000).await;
    let attempts = attempts(&pool, &schema, "limited-slots").await;
    assert_eq!(attempts.len(), 2000, "one attempt a run: nothing crashed");
    assert_eq!(
        count(
            &pool,
            format!("SELECT count(*) FROM {schema}.ended_runs WHERE state = 'succeeded'")
        )
        .await,
        2000
    );
    assert_eq!(
        most_at_once(&attempts),
        16,
        "never over global_concurrency, and all of it used while runs waited"
    );
    for (account, attempts) in by_account(&attempts) {
        assert_eq!(
            most_at_once(attempts.iter().copied()),
            1,
            "account {account}: key_concurrency 1"
        );
    }
    let stats = manager.stats("limited-slots").await.unwrap();
    let limits = stats
        .limits
        .expect("a limited worker's stats show its limits");
    assert_eq!((limits.running, limits.global_concurrency), (0, Some(16)));
    drop(nodes);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn three_nodes_never_start_more_than_the_rate_in_any_window_and_use_it() {
    let Some(db) = database() else { return };
    let schema = schema("limit_rate");
    let manager = caller(db, &schema).await;
    let nodes = nodes(db, &schema, 2000);
    let pool = pool(db).await;
    // 40 a second in the cluster, 5 a second per account: 120 runs, 15
    // of them of one hot account, the rest over 19 others.
    let mut runs = calls(105, 19, 0);
    runs.extend((0..15).map(|_| Call::new().payload(json!({"account": "hot", "ms": 0}))));
    manager.call_many("limited-rate", runs).await.unwrap();
    wait_until_ended(&pool, &schema, "limited-rate", 120).await;
    let attempts = attempts(&pool, &schema, "limited-rate").await;
    assert_eq!(attempts.len(), 120);
    let second = Duration::from_secs(1);
    assert_eq!(
        most_in_a_window(&attempts, second),
        40,
        "never over the rate in any sliding window, and the rate used"
    );
    for (account, attempts) in by_account(&attempts) {
        let most = most_in_a_window(attempts.iter().copied(), second);
        assert!(
            most <= 5,
            "account {account}: {most} starts within a second"
        );
    }
    let stats = manager.stats("limited-rate").await.unwrap();
    let limits = stats.limits.unwrap();
    assert_eq!(limits.rate.unwrap().to_string(), "40/1s");
    drop(nodes);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_killed_with_minus_9_gives_its_slots_back_when_its_leases_are_reaped() {
    let Some(db) = database() else { return };
    let schema = schema("limit_crash");
    let manager = caller(db, &schema).await;
    let mut nodes = nodes(db, &schema, 1000);
    let pool = pool(db).await;
    manager
        .call_many("limited-slots", calls(300, 20, 150))
        .await
        .unwrap();
    // Once a node holds runs, it dies with them.
    let victim = &nodes[0];
    let node_name: String = loop {
        let holder: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT node FROM {schema}.runs WHERE state = 'running' AND node LIKE '%:{}:%' LIMIT 1",
            victim.pid()
        )))
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(name) = holder {
            break name;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    nodes[0].signal("KILL");
    nodes[0].wait();
    wait_until_ended(&pool, &schema, "limited-slots", 300).await;
    assert_eq!(
        count(
            &pool,
            format!("SELECT count(*) FROM {schema}.ended_runs WHERE state = 'succeeded'")
        )
        .await,
        300,
        "every run ends once, the killed node's too"
    );
    let stalled = count(
        &pool,
        format!(
            "SELECT count(*) FROM {schema}.attempts WHERE outcome = 'stalled' AND node = '{node_name}'"
        ),
    )
    .await;
    assert!(stalled >= 1, "the killed node held runs");
    let attempts = attempts(&pool, &schema, "limited-slots").await;
    assert!(
        most_at_once(&attempts) <= 16,
        "a dead node's slots count until its leases are reaped"
    );
    for (account, attempts) in by_account(&attempts) {
        assert_eq!(
            most_at_once(attempts.iter().copied()),
            1,
            "account {account}"
        );
    }
    let limits = manager
        .stats("limited-slots")
        .await
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits.running, 0, "no slot leaked");
    drop(nodes);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_key_with_a_backlog_does_not_hold_back_another_key() {
    let Some(db) = database() else { return };
    let schema = schema("limit_fair");
    let manager = caller(db, &schema).await;
    let mut settings = NodeSettings::new(db, &schema);
    settings.concurrency = 8;
    let node = NodeProcess::start(&settings);
    let pool = pool(db).await;
    // 200 runs of account "busy", queued first, then one of "quiet".
    let busy: Vec<Call> = (0..200)
        .map(|_| Call::new().payload(json!({"account": "busy", "ms": 5})))
        .collect();
    manager.call_many("limited-slots", busy).await.unwrap();
    let quiet = manager
        .call(
            "limited-slots",
            None,
            Some(json!({"account": "quiet", "ms": 5})),
        )
        .await
        .unwrap();
    quiet.await_result().await.unwrap();
    wait_until_ended(&pool, &schema, "limited-slots", 201).await;
    let rank: i64 = count(
        &pool,
        format!(
            "SELECT count(*) FROM {schema}.ended_runs
             WHERE worker = 'limited-slots' AND claimed_at < (
                 SELECT claimed_at FROM {schema}.ended_runs WHERE payload->>'account' = 'quiet')"
        ),
    )
    .await;
    assert!(
        rank <= 3,
        "the quiet account's run started after {rank} runs of the busy one"
    );
    drop(node);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_retry_waiting_out_its_backoff_holds_no_slot() {
    let Some(db) = database() else { return };
    let schema = schema("limit_retry");
    let manager = caller(db, &schema).await;
    let mut settings = NodeSettings::new(db, &schema);
    settings.concurrency = 8;
    let node = NodeProcess::start(&settings);
    let pool = pool(db).await;
    // Two slots. The failing run retries after 1.5 s; if its backoff held
    // a slot, four runs of 600 ms would take 2.4 s on the other.
    let failing = manager
        .call(
            "limited-whole",
            None,
            Some(json!({"fail": true, "account": "x"})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let others: Vec<Call> = (0..4)
        .map(|i| Call::new().payload(json!({"account": format!("o{i}"), "ms": 600})))
        .collect();
    manager.call_many("limited-whole", others).await.unwrap();
    failing.await_result().await.unwrap();
    wait_until_ended(&pool, &schema, "limited-whole", 5).await;
    let late = count(
        &pool,
        format!(
            "SELECT count(*) FROM {schema}.ended_runs
             WHERE worker = 'limited-whole' AND payload->>'account' <> 'x' AND claimed_at > (
                 SELECT claimed_at FROM {schema}.ended_runs WHERE payload->>'account' = 'x')"
        ),
    )
    .await;
    assert_eq!(late, 0, "every other run started during the backoff");
    let attempts = attempts(&pool, &schema, "limited-whole").await;
    assert_eq!(attempts.len(), 6);
    assert!(most_at_once(&attempts) <= 2);
    drop(node);
    manager.shutdown().await.unwrap();
}
