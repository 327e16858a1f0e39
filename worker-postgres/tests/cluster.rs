//! Durable mode across real processes: node processes
//! (`worker-postgres-test-node`) execute, this test process calls, and the
//! tests kill -9, SIGSTOP, SIGTERM the nodes and restart PostgreSQL under
//! them. Each run must end, once, with one recorded outcome.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Database, NodeProcess, NodeSettings, manager, pool, schema};
use worker_core::prelude::*;

/// A manager in this process that calls and never executes.
async fn caller(db: &Database, schema: &str) -> WorkerManager {
    manager(support::backend(db, schema).execute(false)).await
}

/// Which of `nodes` holds `run` now, once one does.
async fn owner(nodes: &[NodeProcess], pool: &sqlx::PgPool, schema: &str, run: &str) -> usize {
    let query = format!("SELECT node FROM {schema}.runs WHERE id = '{run}' AND state = 'running'");
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let node: Option<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(query.clone()))
            .fetch_optional(pool)
            .await
            .unwrap();
        if let Some(Some(node)) = node {
            let pid: u32 = node.split(':').nth(1).unwrap().parse().unwrap();
            return nodes
                .iter()
                .position(|n| n.pid() == pid)
                .expect("the owner is one of ours");
        }
        assert!(Instant::now() < deadline, "run {run} was never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn row(pool: &sqlx::PgPool, schema: &str, run: &str) -> (String, i32, i32) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT state, attempt, stalls FROM {schema}.all_runs WHERE id = '{run}'"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn messages_of(handle: &mut WorkerHandle) -> Vec<Value> {
    let mut messages = Vec::new();
    while let Some(message) = tokio::time::timeout(support::PATIENCE, handle.recv())
        .await
        .expect("a message or the end")
    {
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn a_node_killed_mid_run_leaves_it_to_another_with_attempt_two_and_one_outcome() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("kill9");
    let caller = caller(db, &schema).await;
    let settings = NodeSettings {
        lease_ms: 1000,
        ..NodeSettings::new(db, &schema)
    };
    let nodes = vec![NodeProcess::start(&settings), NodeProcess::start(&settings)];
    let pool = pool(db).await;

    let mut handle = caller
        .call("slow", None, Some(json!({"ms": 2000})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(handle.recv().await, Some(json!({"started": 1})));
    let victim = owner(&nodes, &pool, &schema, &id).await;
    nodes[victim].signal("KILL");
    let killed = Instant::now();

    assert_eq!(handle.recv().await, Some(json!({"started": 2})));
    eprintln!(
        "kill -9 to the run starting again elsewhere: {:?} (lease 1 s)",
        killed.elapsed()
    );
    assert_eq!(handle.recv().await, Some(json!({"done": 2})));
    assert_eq!(handle.recv().await, None);
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"attempt": 2}));
    assert_eq!(row(&pool, &schema, &id).await, ("succeeded".into(), 2, 1));
    let stats = caller.stats("slow").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.retries),
        (1, 0, 0),
        "a crash is not a retry"
    );
    // Both attempts are kept: the stall with the node that held it.
    let run = caller
        .history()
        .expect("a durable manager keeps history")
        .run(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.attempts.len(), 2, "{:?}", run.attempts);
    let (stalled, succeeded) = (&run.attempts[0], &run.attempts[1]);
    assert_eq!(
        (stalled.attempt, stalled.outcome),
        (1, Some(worker_core::observe::Outcome::Stalled))
    );
    let holder = stalled.node.as_deref().expect("the stalled attempt's node");
    assert_eq!(
        holder.split(':').nth(1),
        Some(nodes[victim].pid().to_string().as_str())
    );
    assert!(
        stalled
            .error
            .as_deref()
            .is_some_and(|e| e.contains(holder) && e.contains("stopped renewing its lease")),
        "{:?}",
        stalled.error
    );
    assert_eq!(
        (succeeded.attempt, succeeded.outcome),
        (2, Some(worker_core::observe::Outcome::Succeeded))
    );
    assert_ne!(succeeded.node.as_deref(), Some(holder));
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_stopped_past_its_lease_cannot_record_its_late_outcome() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("sigstop");
    let caller = caller(db, &schema).await;
    let settings = NodeSettings {
        lease_ms: 1000,
        ..NodeSettings::new(db, &schema)
    };
    let nodes = vec![NodeProcess::start(&settings), NodeProcess::start(&settings)];
    let pool = pool(db).await;

    let mut handle = caller
        .call("slow", None, Some(json!({"ms": 1500})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(handle.recv().await, Some(json!({"started": 1})));
    let frozen = owner(&nodes, &pool, &schema, &id).await;
    nodes[frozen].signal("STOP");
    // Another node takes it over once the lease lapses, and finishes it.
    let messages = messages_of(&mut handle).await;
    assert_eq!(messages, [json!({"started": 2}), json!({"done": 2})]);
    // The frozen node wakes up, its sleep over, and tries to finish too.
    nodes[frozen].signal("CONT");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"attempt": 2}), "the first outcome stands");
    assert_eq!(row(&pool, &schema, &id).await, ("succeeded".into(), 2, 1));
    let mut attached = caller.attach(&id).await.unwrap();
    assert_eq!(
        messages_of(&mut attached).await,
        [
            json!({"started": 1}),
            json!({"started": 2}),
            json!({"done": 2})
        ],
        "nothing from the late node"
    );
    let stats = caller.stats("slow").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (1, 0));
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn postgres_restarting_under_queued_and_running_runs_loses_and_doubles_nothing() {
    let Some(cluster) = support::private_cluster() else {
        return;
    };
    let db = Database {
        url: cluster.url(),
        cluster: None,
    };
    let schema = schema("pgrestart");
    let caller = caller(&db, &schema).await;
    let settings = NodeSettings {
        lease_ms: 2000,
        concurrency: 4,
        ..NodeSettings::new(&db, &schema)
    };
    let _node = NodeProcess::start(&settings);

    let mut handles = Vec::new();
    for _ in 0..16 {
        handles.push(
            caller
                .call("slow", None, Some(json!({"ms": 800})))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop_server().unwrap();
    // While it is down: a call fails at once and says why.
    let asked = Instant::now();
    let error = caller.call("noop", None, None).await.unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(error.to_string().contains("PostgreSQL"), "{error}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server().unwrap();

    for handle in handles {
        let output: Value = tokio::time::timeout(support::PATIENCE, handle.await_output())
            .await
            .expect("every handle returns once the database is back")
            .expect("every run succeeds");
        assert!(output["attempt"].as_u64().unwrap() >= 1);
    }
    let stats = caller.stats("slow").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.cancelled),
        (16, 0, 0),
        "each counted once"
    );
    let pool = pool(&db).await;
    let ended: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.ended_runs WHERE state = 'succeeded'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended, 16);
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_payload_that_kills_its_node_every_time_stalls_after_three_starts_while_others_flow() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("abort");
    let caller = caller(db, &schema).await;
    let settings = NodeSettings {
        lease_ms: 1000,
        ..NodeSettings::new(db, &schema)
    };
    let mut nodes = vec![NodeProcess::start(&settings), NodeProcess::start(&settings)];

    let mut poison = caller.call("abort", None, None).await.unwrap();
    let poison_id = poison.id().to_owned();
    let mut others = Vec::new();
    let deadline = Instant::now() + support::PATIENCE;
    let mut restarts = 0;
    // A supervisor: a node that died is started again, as systemd would.
    loop {
        assert!(Instant::now() < deadline, "the poison run never ended");
        for node in &mut nodes {
            if node.child.try_wait().unwrap().is_some() {
                *node = NodeProcess::start(&settings);
                restarts += 1;
            }
        }
        others.push(
            caller
                .call("echo", None, Some(json!({"n": 1})))
                .await
                .unwrap(),
        );
        if poison.is_finished() {
            break;
        }
        if let Ok(None) = tokio::time::timeout(Duration::from_millis(200), poison.recv()).await {
            break;
        }
    }
    let error = poison.await_result().await.unwrap_err();
    assert!(error.is_stalled(), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "Worker 'abort' run {poison_id} stalled: the node running it died or lost its lease, 3 starts in a row; it is not run again"
        )
    );
    let mut attached = caller.attach(&poison_id).await.unwrap();
    assert_eq!(
        messages_of(&mut attached).await,
        [
            json!({"aborting": 1}),
            json!({"aborting": 2}),
            json!({"aborting": 3})
        ],
        "started 3 times"
    );
    assert!(
        restarts >= 3,
        "each start killed a node ({restarts} restarts)"
    );
    for other in others {
        let output: Value = tokio::time::timeout(support::PATIENCE, other.await_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output["n"], 1);
    }
    let stats = caller.stats("abort").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (1, 1));
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_from_another_process_reaches_the_node_within_a_second() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("xcancel");
    let caller = caller(db, &schema).await;
    let _node = NodeProcess::start(&NodeSettings::new(db, &schema));
    let mut handle = caller
        .call("slow", None, Some(json!({"ms": 60_000})))
        .await
        .unwrap();
    assert_eq!(handle.recv().await, Some(json!({"started": 1})));
    let id = handle.id().to_owned();
    let asked = Instant::now();
    WorkerManager::cancel(&caller, &id).await.unwrap();
    let took = asked.elapsed();
    // The worker saw ctx.cancelled() (its sleep ended early) and went on to
    // its last message within the grace period.
    assert_eq!(handle.recv().await, Some(json!({"done": 1})));
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
    eprintln!("cancel across processes took {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(caller.stats("slow").await.unwrap().cancelled, 1);
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn three_nodes_run_three_thousand_runs_each_exactly_once() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("three");
    let caller = caller(db, &schema).await;
    let settings = NodeSettings {
        concurrency: 32,
        ..NodeSettings::new(db, &schema)
    };
    let _nodes = [
        NodeProcess::start(&settings),
        NodeProcess::start(&settings),
        NodeProcess::start(&settings),
    ];
    let caller = Arc::new(caller);
    let mut tasks = Vec::new();
    for task in 0..64 {
        let caller = caller.clone();
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in (task..3000).step_by(64) {
                let handle = caller
                    .call("echo", None, Some(json!({"n": 1, "i": i})))
                    .await
                    .unwrap();
                handles.push(handle);
            }
            for handle in handles {
                let output: Value = handle.await_output().await.unwrap();
                assert_eq!(output, json!({"n": 1, "attempt": 1}));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let pool = pool(db).await;
    let per_run: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {schema}.messages m WHERE m.run_id = r.id), r.attempt::int8
         FROM {schema}.ended_runs r WHERE r.state = 'succeeded'"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_run.len(), 3000);
    assert!(
        per_run
            .iter()
            .all(|&(messages, attempt)| messages == 1 && attempt == 1),
        "each ran exactly once"
    );
    let stats = caller.stats("echo").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.running),
        (3000, 0, 0),
        "the stats add up"
    );
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_schedule_on_three_nodes_runs_once_per_tick() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("ticks");
    let settings = NodeSettings {
        ticks: true,
        ..NodeSettings::new(db, &schema)
    };
    let first = [NodeProcess::start(&settings), NodeProcess::start(&settings)];
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A node that starts late doesn't run again a tick already taken.
    let late = NodeProcess::start(&settings);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    drop(first);
    drop(late);
    let pool = pool(db).await;
    let per_tick: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.all_runs r JOIN {schema}.ticks t ON t.run_id = r.id
         WHERE r.worker = 'tick' GROUP BY t.tick_at ORDER BY t.tick_at"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let runs: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.all_runs WHERE worker = 'tick'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(per_tick.iter().all(|&(n,)| n == 1), "{per_tick:?}");
    assert_eq!(runs as usize, per_tick.len(), "every run is a tick's");
    assert!(
        (4..=7).contains(&runs),
        "about one per second for 5.5 s, not three: {runs}"
    );
}

#[tokio::test]
async fn a_node_told_to_stop_mid_run_hands_it_to_another_without_an_error() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("sigterm");
    let caller = caller(db, &schema).await;
    let settings = NodeSettings::new(db, &schema);
    let mut nodes = vec![NodeProcess::start(&settings), NodeProcess::start(&settings)];
    let pool = pool(db).await;
    let mut handle = caller
        .call("slow", None, Some(json!({"ms": 1500})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(handle.recv().await, Some(json!({"started": 1})));
    let leaving = owner(&nodes, &pool, &schema, &id).await;
    let node = &mut nodes[leaving];
    node.signal("TERM");
    assert!(node.wait().success(), "a graceful exit");
    node.wait_for_line("stopped");
    let messages = messages_of(&mut handle).await;
    // Cancelled there (its sleep ended early), started again here.
    assert_eq!(messages.last(), Some(&json!({"done": 1})));
    assert!(messages.contains(&json!({"started": 1})), "{messages:?}");
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(
        output,
        json!({"attempt": 1}),
        "not a retry: the same attempt"
    );
    let stats = caller.stats("slow").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.cancelled, stats.retries),
        (1, 0, 0, 0),
        "no error, no cancel counted"
    );
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_caller_that_restarts_attaches_and_replays_from_the_first_message() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("reattach");
    let _node = NodeProcess::start(&NodeSettings::new(db, &schema));
    let first = caller(db, &schema).await;
    let mut handle = first
        .call("echo", None, Some(json!({"n": 5, "ms": 150})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(handle.recv().await, Some(json!({"i": 0})));
    // The caller goes away (a deploy) and comes back as a new process would.
    drop(handle);
    first.shutdown().await.unwrap();
    drop(first);
    let second = caller(db, &schema).await;
    let mut attached = second.attach(&id).await.unwrap();
    let messages = messages_of(&mut attached).await;
    assert_eq!(
        messages,
        (0..5).map(|i| json!({"i": i})).collect::<Vec<_>>()
    );
    let output: Value = attached.await_output().await.unwrap();
    assert_eq!(output["n"], 5);
    second.shutdown().await.unwrap();
}

/// While PostgreSQL is down, calls fail fast and say so; none is lost or
/// stored twice across the outage.
#[tokio::test]
async fn calls_while_postgres_is_down_fail_within_a_second_and_none_is_lost_or_doubled() {
    let Some(cluster) = support::private_cluster() else {
        return;
    };
    let db = Database {
        url: cluster.url(),
        cluster: None,
    };
    let schema = schema("outage");
    // Nothing executes: every stored run stays in the table to be counted.
    let caller = Arc::new(caller(&db, &schema).await);

    /// What one call came to.
    struct Answer {
        n: u64,
        took: Duration,
        result: Result<String>,
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for task in 0..8u64 {
        let caller = caller.clone();
        let stop = stop.clone();
        callers.spawn(async move {
            let mut answers = Vec::new();
            let mut n = task;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                let result = caller
                    .call("noop", None, Some(json!({ "n": n })))
                    .await
                    .map(|handle| handle.id().to_owned());
                answers.push(Answer {
                    n,
                    took: asked.elapsed(),
                    result,
                });
                n += 8;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop_server().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_server().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = Vec::new();
    while let Some(joined) = callers.join_next().await {
        answers.extend(joined.unwrap());
    }

    let pool = pool(&db).await;
    let stored: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (payload->>'n')::int8, count(*) FROM {schema}.all_runs GROUP BY 1"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: std::collections::HashMap<u64, i64> = stored
        .into_iter()
        .map(|(n, count)| (n as u64, count))
        .collect();
    let (mut succeeded, mut failed, mut unsure) = (0, 0, 0);
    for answer in &answers {
        let copies = stored.get(&answer.n).copied().unwrap_or(0);
        match &answer.result {
            Ok(run_id) => {
                succeeded += 1;
                assert_eq!(copies, 1, "call {} (run {run_id}) stored once", answer.n);
            }
            Err(err) => {
                assert!(err.is_unavailable(), "call {}: {err}", answer.n);
                assert!(
                    err.to_string().contains("127.0.0.1"),
                    "the error names the database: {err}"
                );
                assert!(
                    answer.took < Duration::from_secs(1),
                    "call {} failed after {:?}, not within 1 s: {err}",
                    answer.n,
                    answer.took
                );
                if err.to_string().contains("may have been stored") {
                    unsure += 1;
                    assert!(copies <= 1, "call {} stored at most once", answer.n);
                } else {
                    failed += 1;
                    assert_eq!(
                        copies, 0,
                        "call {} failed and is not stored: {err}",
                        answer.n
                    );
                }
            }
        }
    }
    assert!(failed > 0, "some calls ran into the outage");
    assert!(succeeded > 0, "calls before and after it were stored");
    // Calls work again after the outage, by themselves.
    let last = answers.iter().max_by_key(|answer| answer.n).unwrap();
    assert!(last.result.is_ok(), "the calls after the outage succeed");
    eprintln!(
        "{succeeded} stored, {failed} failed while PostgreSQL was down, {unsure} unsure; slowest failure {:?}",
        answers
            .iter()
            .filter(|answer| answer.result.is_err())
            .map(|answer| answer.took)
            .max()
            .unwrap_or_default()
    );
    caller.shutdown().await.unwrap();
}
