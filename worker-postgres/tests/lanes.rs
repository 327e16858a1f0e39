//! The hot table's lanes: clearing one (moving what it still holds to
//! another, then truncating it) loses nothing and runs nothing twice, works
//! while a transaction pins the vacuum horizon, and gives way to a
//! transaction that uses the lane.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{database, manager, pool, schema};
use worker_core::prelude::*;

/// A node that executes only `slow` (so that everything else stays queued).
async fn slow_only_node(backend: worker_postgres::Postgres) -> WorkerManager {
    let node = WorkerManager::new();
    node.set_grace_period(Duration::from_millis(300));
    node.register_with("slow", WorkerOptions::new(), |ctx| async move {
        let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
        ctx.send(json!({"started": ctx.attempt()})).await?;
        ctx.sleep(Duration::from_millis(ms)).await;
        ctx.send(json!({"done": ctx.attempt()})).await?;
        Ok(json!({"attempt": ctx.attempt()}))
    })
    .await
    .unwrap();
    node.set_backend(backend).await.expect("the backend starts");
    node
}

async fn count(pool: &sqlx::PgPool, query: String) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(query))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Bytes in each lane's table.
async fn lane_sizes(pool: &sqlx::PgPool, schema: &str) -> Vec<i64> {
    let mut sizes = Vec::new();
    for lane in 0..3 {
        sizes.push(
            count(
                pool,
                format!("SELECT pg_relation_size('{schema}.runs_lane_{lane}')"),
            )
            .await,
        );
    }
    sizes
}

#[tokio::test]
async fn clearing_every_lane_moves_queued_and_running_runs_and_each_ends_once() {
    let Some(db) = database() else { return };
    let schema = schema("lanes_move");
    let backend = support::backend(db, &schema);
    let node = slow_only_node(backend.clone()).await;
    let caller = manager(support::backend(db, &schema).execute(false)).await;
    let pool = pool(db).await;

    // One run executing on the node, 300 queued that no node executes.
    let mut running = caller
        .call("slow", None, Some(json!({"ms": 4000})))
        .await
        .unwrap();
    assert_eq!(running.recv().await, Some(json!({"started": 1})));
    let mut queued = Vec::new();
    for n in 0..300 {
        queued.push(
            caller
                .call("echo", None, Some(json!({"n": 1, "tag": n})))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.runs")).await,
        301
    );

    // Lane 0 moves into 2, 1 into 0, 2 into 1: every row moves at least
    // once, and every lane is truncated. (The node's own upkeep may clear
    // the period's oldest lane meanwhile too.)
    for lane in 0..3 {
        let cleared = backend.clear_lane_for_tests(lane).await.unwrap();
        assert!(cleared.starts_with("Truncated"), "lane {lane}: {cleared}");
    }
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.runs")).await,
        301,
        "nothing lost, nothing doubled"
    );
    assert_eq!(
        count(
            &pool,
            format!("SELECT count(*) FROM {schema}.lanes WHERE clears >= 1")
        )
        .await,
        3
    );

    // The running run keeps its lease through the move: it is renewed,
    // sends its last message and ends once, on its first attempt.
    assert_eq!(running.recv().await, Some(json!({"done": 1})));
    let output: Value = running.await_output().await.unwrap();
    assert_eq!(output, json!({"attempt": 1}));

    // The queued runs run once each when a node that has their worker
    // comes.
    let executor = manager(support::backend(db, &schema)).await;
    for mut handle in queued {
        assert_eq!(handle.recv().await, Some(json!({"i": 0})));
        assert_eq!(handle.recv().await, None);
        let output: Value = handle.await_output().await.unwrap();
        assert_eq!(output, json!({"n": 1, "attempt": 1}));
    }
    let stats = caller.stats("echo").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.running), (300, 0, 0));
    assert_eq!(caller.stats("slow").await.unwrap().runs, 1);
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.ended_runs")).await,
        301,
        "one ending each"
    );
    for manager in [executor, caller, node] {
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_lane_is_emptied_while_a_transaction_pins_the_horizon_and_waits_for_one_using_it() {
    let Some(db) = database() else { return };
    let schema = schema("lanes_pinned");
    let backend = support::backend(db, &schema);
    let node = manager(backend.clone()).await;
    let pool = pool(db).await;

    // A session holds a snapshot: vacuum can remove nothing dead after it.
    let mut pinning = pool.begin().await.unwrap();
    sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT txid_current();")
        .execute(&mut *pinning)
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..500 {
        handles.push(node.call("noop", None, None).await.unwrap());
    }
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM {schema}.runs")))
        .execute(&pool)
        .await
        .unwrap();
    let before = lane_sizes(&pool, &schema).await;
    assert!(
        before.iter().sum::<i64>() > 0,
        "500 runs left dead rows vacuum can't remove: {before:?}"
    );

    // Truncation frees them anyway.
    for lane in 0..3 {
        backend.clear_lane_for_tests(lane).await.unwrap();
    }
    assert_eq!(lane_sizes(&pool, &schema).await, [0, 0, 0]);
    pinning.rollback().await.unwrap();

    // A transaction that read a lane holds it: the clearing gives way
    // (nothing moved, nothing truncated), and clears it once it ended.
    let slow = node
        .call("slow", None, Some(json!({"ms": 1000})))
        .await
        .unwrap();
    let lane: i16 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT lane FROM {schema}.runs LIMIT 1"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut reading = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.runs_lane_{lane}"
    )))
    .execute(&mut *reading)
    .await
    .unwrap();
    let lane = usize::try_from(lane).unwrap();
    let cleared = backend.clear_lane_for_tests(lane).await.unwrap();
    assert_eq!(cleared, "Busy");
    assert_eq!(
        count(
            &pool,
            format!("SELECT count(*) FROM {schema}.runs_lane_{lane}")
        )
        .await,
        1
    );
    reading.commit().await.unwrap();
    let cleared = backend.clear_lane_for_tests(lane).await.unwrap();
    assert!(cleared.starts_with("Truncated"), "{cleared}");
    let output: Value = slow.await_output().await.unwrap();
    assert_eq!(output["attempt"], 1);
    assert_eq!(node.stats("slow").await.unwrap().runs, 1);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_upkeep_truncates_the_oldest_lane_by_itself_and_keeps_its_runs() {
    let Some(db) = database() else { return };
    let schema = schema("lanes_upkeep");
    let node = manager(support::backend(db, &schema)).await;
    let pool = pool(db).await;
    // Ten queued runs in each lane, of a worker no node has: whichever
    // lane is the oldest now holds some.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.runs (id, worker, lane)
         SELECT gen_random_uuid(), 'nobody', (i % 3)::int2 FROM generate_series(1, 30) i"
    )))
    .execute(&pool)
    .await
    .unwrap();
    support::eventually("a lane truncated by the node's upkeep", || {
        let pool = pool.clone();
        let query = format!("SELECT sum(clears)::int8 FROM {schema}.lanes");
        async move { count(&pool, query).await >= 1 }
    })
    .await;
    assert_eq!(
        count(
            &pool,
            format!("SELECT count(*) FROM {schema}.runs WHERE worker = 'nobody'")
        )
        .await,
        30,
        "the runs it held moved to another lane"
    );
    node.shutdown().await.unwrap();
}
