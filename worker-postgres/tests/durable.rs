//! Durable mode in one process, against a real PostgreSQL: the same API as
//! in-process mode, with runs stored, claimed, executed and recorded
//! through the database.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{database, eventually, manager, pool, schema};
use worker_core::backend::TimelineBucket;
use worker_core::observe::Outcome;
use worker_core::prelude::*;

#[tokio::test]
async fn call_stores_the_run_then_messages_and_output_come_back_in_order() {
    let Some(db) = database() else { return };
    let schema = schema("call");
    let manager = manager(support::backend(db, &schema)).await;
    assert!(manager.is_durable());

    let mut handle = manager
        .call("echo", None, Some(json!({"n": 5})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    // Committed before call returned.
    let pool = pool(db).await;
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.all_runs WHERE id = '{id}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    let mut seen = Vec::new();
    while let Some(message) = handle.recv().await {
        seen.push(message["i"].as_u64().unwrap());
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert!(handle.is_finished());
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"n": 5, "attempt": 1}));

    // run() waits for the outcome the same way.
    manager.run("noop", None).await.unwrap();
    let stats = manager.stats("echo").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.running), (1, 0, 0));
    assert!(stats.p50_ms.is_some());
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_come_back_with_the_same_predicates_and_text_as_in_process() {
    let Some(db) = database() else { return };
    let durable = manager(support::backend(db, &schema("errors"))).await;
    let local = WorkerManager::new();
    support::workers::register(&local).await;
    for how in ["error", "panic", "timeout", "validation", "permanent"] {
        let payload = Some(json!({"how": how}));
        let there = durable.call("fails", None, payload.clone()).await.unwrap();
        let here = local.call("fails", None, payload).await.unwrap();
        let (there_id, here_id) = (there.id().to_owned(), here.id().to_owned());
        let there = there.await_result().await.unwrap_err();
        let here = here.await_result().await.unwrap_err();
        assert_eq!(
            there.to_string().replace(&there_id, "ID"),
            here.to_string().replace(&here_id, "ID"),
            "{how}"
        );
        let predicates = |e: &Error| {
            [
                e.is_timeout(),
                e.is_panic(),
                e.is_validation(),
                e.is_cancelled(),
                e.is_permanent(),
                e.is_stalled(),
            ]
        };
        assert_eq!(predicates(&there), predicates(&here), "{how}");
    }
    let stats = durable.stats("fails").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.timeouts, stats.panics),
        (5, 5, 1, 1)
    );
    durable.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_attempt_waits_in_the_database_and_its_messages_follow_the_first() {
    let Some(db) = database() else { return };
    let schema = schema("retry");
    let manager = manager(support::backend(db, &schema)).await;
    let mut handle = manager.call("fails-once", None, None).await.unwrap();
    let id = handle.id().to_owned();
    let mut messages = Vec::new();
    while let Some(message) = handle.recv().await {
        messages.push(message);
    }
    assert_eq!(messages, [json!({"attempt": 1}), json!({"attempt": 2})]);
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"attempt": 2}));
    let stats = manager.stats("fails-once").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (1, 0, 1));
    // Both attempts are kept, the failed one with its error.
    let run = manager
        .history()
        .expect("a durable manager keeps history")
        .run(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let attempts: Vec<_> = run
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome, a.error.clone(), a.node.is_some()))
        .collect();
    assert_eq!(
        attempts,
        [
            (
                1,
                Some(Outcome::Failed),
                Some("the first attempt fails".to_owned()),
                true
            ),
            (2, Some(Outcome::Succeeded), None, true),
        ]
    );
    assert!(
        run.attempts
            .iter()
            .all(|a| a.started_at.is_some_and(|at| at <= a.ended_at)
                && a.duration_ms.is_some_and(|ms| ms >= 0.0))
    );
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn enqueue_in_a_rolled_back_transaction_never_runs_and_a_committed_one_does() {
    let Some(db) = database() else { return };
    let schema = schema("enqueue");
    let backend = support::backend(db, &schema);
    let manager = manager(backend.clone()).await;
    let pool = pool(db).await;

    let mut tx = pool.begin().await.unwrap();
    let rolled_back = backend
        .enqueue(&mut tx, "echo", Some(json!({"n": 1})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let error = manager.attach(&rolled_back).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("Run '{rolled_back}' is unknown")),
        "{error}"
    );

    let mut tx = pool.begin().await.unwrap();
    let committed = backend
        .enqueue(&mut tx, "echo", Some(json!({"n": 2})))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut handle = manager.attach(&committed).await.unwrap();
    assert_eq!(handle.recv().await, Some(json!({"i": 0})));
    assert_eq!(handle.recv().await, Some(json!({"i": 1})));
    assert_eq!(handle.recv().await, None);
    handle.await_result().await.unwrap();
    assert_eq!(
        manager.stats("echo").await.unwrap().runs,
        1,
        "only the committed one ran"
    );
    manager.shutdown().await.unwrap();
}

/// Claims read the queue from where they last claimed, so that while a
/// long transaction holds vacuum back they don't wade through the dead
/// entries of every run claimed before. A run whose transaction began
/// before later runs were claimed, and committed after them, lies behind
/// that point: it still runs, once.
#[tokio::test]
async fn a_run_committed_after_later_runs_were_claimed_still_runs_once() {
    let Some(db) = database() else { return };
    let schema = schema("late");
    let backend = support::backend(db, &schema);
    let manager = manager(backend.clone()).await;
    let pool = pool(db).await;

    let mut tx = pool.begin().await.unwrap();
    // Queued at the transaction's start: earlier than every run below.
    let late = backend
        .enqueue(&mut tx, "echo", Some(json!({"n": 1})))
        .await
        .unwrap();
    for _ in 0..20 {
        manager
            .call("echo", None, Some(json!({"n": 0})))
            .await
            .unwrap()
            .await_result()
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let handle = manager.attach(&late).await.unwrap();
    tokio::time::timeout(support::PATIENCE, handle.await_result())
        .await
        .expect("the run committed late was never claimed")
        .unwrap();
    let attempts: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT attempt FROM {schema}.ended_runs WHERE id = '{late}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1, "started once");
    assert_eq!(manager.stats("echo").await.unwrap().runs, 21);
    manager.shutdown().await.unwrap();
}

/// Endings append their counts to `stat_deltas`; every node folds them
/// into `stats` each second. Nothing is left there for long, and two nodes
/// folding the same rows count each once.
#[tokio::test]
async fn statistics_appended_per_batch_are_folded_once_by_every_node() {
    let Some(db) = database() else { return };
    let schema = schema("fold");
    let executing = manager(support::backend(db, &schema)).await;
    let calling = manager(support::backend(db, &schema).execute(false)).await;
    let pool = pool(db).await;

    for _ in 0..50 {
        calling
            .call("echo", None, Some(json!({"n": 0})))
            .await
            .unwrap()
            .await_result()
            .await
            .unwrap();
    }
    eventually("every delta folded into stats", || async {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.stat_deltas"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        left == 0
    })
    .await;
    let folded: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT runs FROM {schema}.stats WHERE worker = 'echo'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(folded, 50, "each counted once");
    assert_eq!(calling.stats("echo").await.unwrap().runs, 50);
    assert_eq!(executing.stats("echo").await.unwrap().runs, 50);
    calling.shutdown().await.unwrap();
    executing.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_timeline_counts_each_ending_once_before_and_after_the_fold_with_its_p95() {
    let Some(db) = database() else { return };
    let schema = schema("timeline");
    let manager = manager(support::backend(db, &schema)).await;
    let pool = pool(db).await;
    let window = Duration::from_secs(600);
    let bucket = Duration::from_secs(3600);
    let counted = |buckets: &[TimelineBucket], outcome: Outcome| -> u64 {
        buckets
            .iter()
            .flat_map(|b| &b.counts)
            .filter(|(o, _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    };

    // 40 runs of 1 to 40 ms, 3 failures and a cancelled run.
    let mut handles = Vec::new();
    for ms in 1..=40 {
        handles.push(
            manager
                .call("slow", None, Some(json!({"ms": ms})))
                .await
                .unwrap(),
        );
    }
    for _ in 0..3 {
        handles.push(
            manager
                .call("fails", None, Some(json!({"how": "error"})))
                .await
                .unwrap(),
        );
    }
    let cancelled = manager
        .call("slow", None, Some(json!({"ms": 60_000})))
        .await
        .unwrap();
    for handle in handles {
        let _ = handle.await_result().await;
    }
    manager.cancel(cancelled.id()).await.unwrap();
    let _ = cancelled.await_result().await;

    // Read while the fold moves the counts from the deltas to the
    // timeline: each ending is in exactly one of them at every read.
    let history = manager.history().expect("a durable manager keeps history");
    let mut folded = false;
    for _ in 0..40 {
        let buckets = history.timeline(window, bucket).await.unwrap();
        assert_eq!(counted(&buckets, Outcome::Succeeded), 40, "{buckets:?}");
        assert_eq!(counted(&buckets, Outcome::Failed), 3, "{buckets:?}");
        assert_eq!(counted(&buckets, Outcome::Cancelled), 1, "{buckets:?}");
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.stat_deltas"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        if left == 0 {
            folded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(folded, "the statistics fold within 4 s");

    // The p95 from duration classes, against the exact one.
    let buckets = history.timeline(window, bucket).await.unwrap();
    let p95 = buckets.iter().find_map(|b| b.p95_ms).expect("a p95");
    let exact: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
         FROM {schema}.ended_runs WHERE state NOT IN ('cancelled', 'stalled')"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (p95 / exact - 1.0).abs() < 0.19,
        "p95 {p95} ms, exact {exact} ms"
    );

    // Past the retention, the timeline's rows go with the history.
    manager.shutdown().await.unwrap();
    let short = support::backend(db, &schema).retention(Duration::from_millis(1));
    let manager = support::manager(short).await;
    eventually("the timeline purged past the retention", || async {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.timeline"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        rows == 0
    })
    .await;
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn migrate_lets_a_process_enqueue_before_any_node_starts() {
    let Some(db) = database() else { return };
    let schema = schema("migrate");
    let backend = support::backend(db, &schema);
    backend.migrate().await.unwrap();
    backend.migrate().await.unwrap(); // idempotent
    let pool = pool(db).await;
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {schema}.migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions.first(), Some(&1));
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    // On a connection outside any transaction: stored and announced in one
    // statement.
    let mut conn = pool.acquire().await.unwrap();
    let id = backend
        .enqueue(&mut conn, "echo", Some(json!({"n": 1})))
        .await
        .unwrap();
    // A node started later finds it; a small pool is enough.
    let manager = manager(support::backend(db, &schema).pool_size(2)).await;
    let handle = manager.attach(&id).await.unwrap();
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"n": 1, "attempt": 1}));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_stops_a_queued_or_running_run_and_attach_replays_from_the_first_message() {
    let Some(db) = database() else { return };
    let schema = schema("cancel");
    // A caller that executes nothing: its runs stay queued.
    let caller = manager(support::backend(db, &schema).execute(false)).await;
    let queued = caller.call("slow", None, None).await.unwrap();
    assert_eq!(
        caller.running().await.unwrap(),
        Vec::<String>::new(),
        "queued, not running"
    );
    queued.cancel().await.unwrap();
    assert!(queued.await_result().await.unwrap_err().is_cancelled());

    let executor = manager(support::backend(db, &schema)).await;
    let mut running = caller
        .call("slow", None, Some(json!({"ms": 60_000})))
        .await
        .unwrap();
    let id = running.id().to_owned();
    assert_eq!(running.recv().await, Some(json!({"started": 1})));
    assert_eq!(caller.running().await.unwrap(), std::slice::from_ref(&id));
    assert_eq!(
        caller.running_for("slow").await.unwrap(),
        std::slice::from_ref(&id)
    );
    let asked = std::time::Instant::now();
    caller.cancel(&id).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1) + Duration::from_millis(300),
        "within 1 s plus the grace period"
    );
    // Cancelled: the sleep returned early and the worker said so.
    let mut attached = caller.attach(&id).await.unwrap();
    assert_eq!(attached.recv().await, Some(json!({"started": 1})));
    let error = attached.await_result().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert_eq!(
        error.to_string(),
        format!("Worker 'slow' run {id} was cancelled")
    );
    assert_eq!(caller.stats("slow").await.unwrap().cancelled, 2);
    assert!(caller.cancel(&id).await.unwrap_err().is_run_not_found());
    executor.shutdown().await.unwrap();
    caller.shutdown().await.unwrap();
}

#[tokio::test]
async fn local_workers_never_touch_the_database() {
    let Some(db) = database() else { return };
    let schema = schema("local");
    let manager = manager(support::backend(db, &schema).execute(false)).await;
    let output: Value = manager
        .call("in-process", None, None)
        .await
        .unwrap()
        .await_output()
        .await
        .unwrap();
    assert_eq!(output, json!({"pid": std::process::id()}));
    let pool = pool(db).await;
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.all_runs"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(manager.stats("in-process").await.unwrap().runs, 1);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn stats_survive_the_deletion_of_ended_runs_and_nothing_is_kept_past_retention() {
    let Some(db) = database() else { return };
    let schema = schema("retention");
    let backend = support::backend(db, &schema).retention(Duration::from_millis(1));
    let manager = manager(backend.clone()).await;
    let pool = pool(db).await;
    // A session holds a snapshot throughout: vacuum could free nothing
    // that ends meanwhile, but whole slots of the history are truncated.
    let mut pinning = pool.begin().await.unwrap();
    sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT txid_current();")
        .execute(&mut *pinning)
        .await
        .unwrap();
    for _ in 0..3 {
        manager.run("echo", Some(json!({"n": 2}))).await.unwrap();
    }
    let count = |table: &str| {
        let pool = pool.clone();
        let query = format!("SELECT count(*) FROM {schema}.{table}");
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // The history is looked at every few seconds.
    eventually("the ended runs are purged", || {
        let runs = count("all_runs");
        async move { runs.await == 0 }
    })
    .await;
    assert_eq!(count("messages").await, 0, "messages go with their runs");
    assert_eq!(count("attempts").await, 0, "and their attempts");
    let slots: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sum(truncations)::int8,
                sum(pg_relation_size(format('%I.ended_runs_slot_%s', '{schema}', slot)::regclass))::int8
         FROM {schema}.history"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(slots.0 >= 1, "a slot was truncated: {slots:?}");
    assert_eq!(slots.1, 0, "no slot keeps a page of what ended: {slots:?}");
    pinning.rollback().await.unwrap();
    assert_eq!(manager.stats("echo").await.unwrap().runs, 3);
    assert_eq!(backend.watched_runs(), 0, "no handle left anything behind");
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_url_or_schema_is_a_clear_error_at_start() {
    let manager = WorkerManager::new();
    let error = manager
        .set_backend(worker_postgres::Postgres::new("mysql://x"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Postgres::new: the URL is not a PostgreSQL connection string"),
        "{error}"
    );
    let error = manager
        .set_backend(
            worker_postgres::Postgres::new("postgres://x@127.0.0.1:1/x").schema("Bad-Name"),
        )
        .await
        .unwrap_err();
    assert!(error.is_validation());
    assert_eq!(
        error.to_string(),
        "Postgres::schema: \"Bad-Name\" is not a usable schema name; use lower-case letters, digits and '_', starting with a letter (at most 48)"
    );
    let error = manager
        .set_backend(worker_postgres::Postgres::new(
            "postgres://nobody@127.0.0.1:1/nothing",
        ))
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(
        error.to_string().starts_with(
            "PostgreSQL at postgres://nobody@127.0.0.1:1/nothing is unreachable: can't connect: "
        ),
        "{error}"
    );
    assert!(
        !error.to_string().contains("pool timed out"),
        "the error gives the reason, not the pool's timeout: {error}"
    );
    assert!(!manager.is_durable(), "nothing changed");
}

#[tokio::test]
async fn twenty_thousand_messages_arrive_once_in_order_through_the_batched_outbox() {
    let Some(db) = database() else { return };
    let manager = manager(support::backend(db, &schema("flood"))).await;
    let mut handle = manager
        .call("echo", None, Some(json!({"n": 20_000})))
        .await
        .unwrap();
    let mut next = 0;
    while let Some(message) = handle.recv().await {
        assert_eq!(message, json!({"i": next}));
        next += 1;
    }
    assert_eq!(next, 20_000);
    handle.await_result().await.unwrap();
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_process_executes_at_most_its_concurrency_at_once() {
    let Some(db) = database() else { return };
    let schema = schema("limit");
    let manager = manager(support::backend(db, &schema).concurrency(2)).await;
    let mut handles = Vec::new();
    for _ in 0..6 {
        handles.push(
            manager
                .call("slow", None, Some(json!({"ms": 300})))
                .await
                .unwrap(),
        );
    }
    // What executes here: the local runs in flight (the node may hold a
    // few more, claimed ahead, that wait for a slot).
    let mut most = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < support::PATIENCE {
        most = most.max(manager.in_flight());
        tokio::time::sleep(Duration::from_millis(10)).await;
        if manager.stats("slow").await.unwrap().runs == 6 {
            break;
        }
    }
    assert_eq!(most, 2, "two at a time, never more");
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn runs_past_a_workers_queue_limit_wait_in_the_database_instead_of_failing() {
    let Some(db) = database() else { return };
    let manager = manager(support::backend(db, &schema("overload"))).await;
    let mut handles = Vec::new();
    for _ in 0..6 {
        handles.push(manager.call("one-at-a-time", None, None).await.unwrap());
    }
    for handle in handles {
        let output: Value = handle.await_output().await.unwrap();
        assert_eq!(output, json!({"attempt": 1}), "not a retry");
    }
    let stats = manager.stats("one-at-a-time").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (6, 0, 0));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn nodes_starting_at_once_migrate_once() {
    let Some(db) = database() else { return };
    let schema = schema("migrate");
    let starts = (0..4).map(|_| {
        let backend = support::backend(db, &schema).execute(false);
        async move {
            let manager = WorkerManager::new();
            manager.set_backend(backend).await.map(|()| manager)
        }
    });
    let managers = futures_join_all(starts).await;
    for manager in &managers {
        assert!(manager.as_ref().is_ok(), "{:?}", manager.as_ref().err());
    }
    let pool = pool(db).await;
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {schema}.migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "each applied once"
    );
    // Migration 8: the history's slots, insert-only and truncated whole,
    // are not vacuumed for their inserts.
    let unvacuumed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname LIKE 'ended\\_runs\\_slot\\_%' AND c.relkind = 'r'
           AND 'autovacuum_vacuum_insert_threshold=-1' = ANY (c.reloptions)",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unvacuumed, 8, "every slot");
    // Starting again changes nothing.
    let again = WorkerManager::new();
    again
        .set_backend(support::backend(db, &schema).execute(false))
        .await
        .unwrap();
    for manager in managers.into_iter().flatten().chain([again]) {
        manager.shutdown().await.unwrap();
    }
}

/// Awaits every future at once (a tiny `join_all`).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn the_claim_path_uses_indexes_beside_a_million_ended_runs() {
    let Some(db) = database() else { return };
    let schema = schema("explain");
    // Create the tables, then fill them directly: 1,000,000 ended runs, as
    // after months of use, and a backlog of 100,000 queued runs and a few
    // running ones.
    let manager = manager(support::backend(db, &schema).execute(false)).await;
    let pool = pool(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.ended_runs (id, worker, state, ended_at, duration_ms)
         SELECT gen_random_uuid(), 'echo', 'succeeded', now() - (i || ' seconds')::interval, 1
         FROM generate_series(1, 1000000) i;
         INSERT INTO {schema}.runs (id, worker) SELECT gen_random_uuid(), 'echo' FROM generate_series(1, 100000);
         INSERT INTO {schema}.runs (id, worker, state, lease_until, lease_token)
         SELECT gen_random_uuid(), 'echo', 'running', now() + interval '1 hour', gen_random_uuid()
         FROM generate_series(1, 100);
         ANALYZE {schema}.runs;
         ANALYZE {schema}.ended_runs;"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let plans = [
        // The claim's inner select, the reaper's, running(), next due.
        format!(
            "SELECT id FROM {schema}.runs WHERE state = 'queued' AND run_at <= now()
             AND worker = ANY(ARRAY['echo']) AND limit_key IS NULL
             ORDER BY run_at LIMIT 64 FOR UPDATE SKIP LOCKED"
        ),
        // The limited claim's: a key's first runs, and the running ones.
        format!(
            "SELECT id FROM {schema}.runs WHERE worker = 'echo' AND limit_key = 'a'
             AND state = 'queued' AND run_at <= now()
             ORDER BY priority DESC, run_at LIMIT 8 FOR UPDATE SKIP LOCKED"
        ),
        format!(
            "SELECT count(*) FROM {schema}.runs WHERE worker = 'echo' AND limit_key = 'a'
             AND lease_token IS NOT NULL AND released_at IS NULL"
        ),
        format!(
            "SELECT id FROM {schema}.runs WHERE state = 'running' AND lease_until < now() FOR UPDATE SKIP LOCKED"
        ),
        format!("SELECT id FROM {schema}.runs WHERE state = 'running' AND worker = 'echo'"),
        format!(
            "SELECT min(run_at) FROM {schema}.runs WHERE state = 'queued' AND worker = ANY(ARRAY['echo'])
             AND limit_key IS NULL"
        ),
        // The purge, oldest first; a worker's percentiles, newest first.
        format!(
            "SELECT id FROM {schema}.ended_runs WHERE ended_at < now() - interval '1 day' ORDER BY ended_at LIMIT 5000"
        ),
        format!(
            "SELECT duration_ms FROM {schema}.ended_runs WHERE worker = 'echo' AND duration_ms IS NOT NULL
             ORDER BY ended_at DESC LIMIT 1000"
        ),
    ];
    for query in plans {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {query}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        // An empty lane of `runs` is read whole, at no cost: only a
        // table that holds rows must be reached through an index.
        let read_whole = plan
            .iter()
            .any(|line| line.contains("Seq Scan") && !line.contains("(cost=0.00..0.00 "));
        let plan = plan.join("\n");
        assert!(!read_whole, "{query}\n{plan}");
    }
    manager.shutdown().await.unwrap();
}

/// Upgrading a schema an older version made (ended runs in `runs`) moves
/// them to `ended_runs`, keeps what handles and pages read, and refuses
/// while a node of the older version runs.
#[tokio::test]
async fn upgrading_moves_ended_runs_across_and_refuses_beside_a_live_older_node() {
    let Some(db) = database() else { return };
    let schema = schema("upgrade");
    let backend = support::backend(db, &schema);
    backend.migrate_up_to_for_tests(2).await.unwrap();
    let pool = pool(db).await;
    // As the older version left it: an ended run with its output and a
    // message, a queued run, and a node of that version alive.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.runs (id, worker, state, started_at, ended_at, duration_ms, output, node)
         VALUES ('00000000-0000-4000-8000-000000000001', 'echo', 'succeeded', now(), now(), 3, '{{\"n\": 1}}', 'old-node');
         INSERT INTO {schema}.messages (run_id, seq, attempt, body)
         VALUES ('00000000-0000-4000-8000-000000000001', 0, 1, '\"hello\"');
         INSERT INTO {schema}.runs (id, worker, payload)
         VALUES ('00000000-0000-4000-8000-000000000002', 'echo', '{{\"n\": 2}}');
         INSERT INTO {schema}.nodes (node, executes) VALUES ('old-node', true);"
    )))
    .execute(&pool)
    .await
    .unwrap();

    let refused = backend.migrate().await.unwrap_err();
    assert!(
        refused.to_string().contains("old-node") && refused.to_string().contains("version 3"),
        "{refused}"
    );
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {schema}.migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2], "nothing changed");

    // The old node stops (a graceful stop deletes its row).
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {schema}.nodes")))
        .execute(&pool)
        .await
        .unwrap();
    let manager = manager(backend).await;
    let (hot, ended): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {schema}.runs WHERE ended_at IS NOT NULL),
                (SELECT count(*) FROM {schema}.ended_runs)"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((hot, ended), (0, 1), "the ended run moved across");

    // What handles and pages read of the old run still reads the same.
    let mut old = manager
        .attach("00000000-0000-4000-8000-000000000001")
        .await
        .unwrap();
    assert_eq!(old.recv().await, Some(json!("hello")));
    assert_eq!(old.await_output::<Value>().await.unwrap(), json!({"n": 1}));
    let page = manager
        .history()
        .expect("a durable manager keeps history")
        .run("00000000-0000-4000-8000-000000000001".parse().unwrap())
        .await
        .unwrap()
        .expect("the old run's page");
    assert_eq!(page.outcome(), Some(Outcome::Succeeded));
    assert_eq!(page.attempts.len(), 1, "its one attempt, from its row");
    // The queued run runs on the new version.
    let queued = manager
        .attach("00000000-0000-4000-8000-000000000002")
        .await
        .unwrap();
    assert_eq!(
        queued.await_output::<Value>().await.unwrap(),
        json!({"n": 2, "attempt": 1})
    );
    // The timeline holds the old run from the history kept before the
    // upgrade, and the new one.
    eventually("both runs on the timeline", || async {
        let buckets = manager
            .history()
            .unwrap()
            .timeline(Duration::from_secs(600), Duration::from_secs(600))
            .await
            .unwrap();
        let succeeded: u64 = buckets
            .iter()
            .flat_map(|b| &b.counts)
            .filter(|(o, _)| *o == Outcome::Succeeded)
            .map(|(_, n)| n)
            .sum();
        succeeded == 2
    })
    .await;
    manager.shutdown().await.unwrap();

    // A schema a newer version migrated is refused, not run.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.migrations (version, name) VALUES (99, 'from the future')"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let newer = support::backend(db, &schema).migrate().await.unwrap_err();
    assert!(newer.to_string().contains("migration 99"), "{newer}");
}
