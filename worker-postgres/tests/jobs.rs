//! The job model in durable mode, against a real PostgreSQL: later (on
//! the database's clock), once per key (enforced by the database, also
//! across processes), first (the claim's order across workers), in bulk
//! (one commit) and paused (stored, for the whole cluster).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{NodeProcess, NodeSettings, database, eventually, manager, pool, schema};
use worker_core::prelude::*;

async fn count(pool: &sqlx::PgPool, sql: String) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delayed_run_waits_in_the_database_listed_as_scheduled_then_starts() {
    let Some(db) = database() else { return };
    let schema = schema("delayed");
    let manager = manager(support::backend(db, &schema)).await;
    let handle = manager
        .call_with(
            "echo",
            Call::new()
                .payload(json!({"n": 1}))
                .delay(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(
        manager.scheduled(Some("echo")).await.unwrap(),
        [id.as_str()]
    );
    assert_eq!(manager.scheduled(None).await.unwrap(), [id.as_str()]);
    assert!(manager.running().await.unwrap().is_empty());
    let stats = manager.stats("echo").await.unwrap();
    assert_eq!((stats.scheduled, stats.queued), (1, 0));

    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output["n"], 1);
    // On the database's clock: not before its time, and soon after.
    let pool = pool(db).await;
    let waited_ms: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 FROM {schema}.ended_runs WHERE id = '{id}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (1500.0..4000.0).contains(&waited_ms),
        "started after {waited_ms} ms"
    );

    // Cancelled while it waits: at once, counted once.
    let later = manager
        .call_with("echo", Call::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    manager.cancel(later.id()).await.unwrap();
    assert!(later.await_result().await.unwrap_err().is_cancelled());
    let stats = manager.stats("echo").await.unwrap();
    assert_eq!((stats.cancelled, stats.scheduled), (1, 0));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn keys_join_replace_and_reject_through_the_database() {
    let Some(db) = database() else { return };
    let schema = schema("keys");
    let manager = manager(support::backend(db, &schema)).await;
    let call = |n: u64| {
        Call::new()
            .payload(json!({"n": n}))
            .key("doc:1")
            .delay(Duration::from_millis(800))
    };
    let mut first = manager.call_with("echo", call(1)).await.unwrap();
    let mut joined = manager.call_with("echo", call(2)).await.unwrap();
    assert_eq!(joined.id(), first.id());
    let rejected = manager
        .call_with("echo", call(3).on_duplicate(Duplicate::Reject))
        .await
        .unwrap_err();
    assert!(rejected.is_duplicate(), "{rejected}");
    assert!(rejected.to_string().contains(first.id()), "{rejected}");
    let replaced = manager
        .call_with("echo", call(4).on_duplicate(Duplicate::Replace))
        .await
        .unwrap();
    assert_eq!(replaced.id(), first.id());
    let id = first.id().to_owned();

    // Every handle gets every message, from the first.
    for handle in [&mut first, &mut joined] {
        let mut seen = Vec::new();
        while let Some(message) = handle.recv().await {
            seen.push(message["i"].as_u64().unwrap());
        }
        assert_eq!(seen, [0, 1, 2, 3]);
    }
    let output: Value = first.await_output().await.unwrap();
    assert_eq!(output["n"], 4, "the payload was replaced");
    let again: Value = joined.await_output().await.unwrap();
    assert_eq!(again, output);
    replaced.await_result().await.unwrap();
    let pool = pool(db).await;
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.all_runs")).await,
        1
    );
    assert_eq!(manager.stats("echo").await.unwrap().runs, 1);
    // Free again once it ended: nothing left in the key table.
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.run_keys")).await,
        0
    );
    let next = manager.call_with("echo", call(5)).await.unwrap();
    assert_ne!(next.id(), id);
    next.await_result().await.unwrap();
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn three_processes_calling_with_one_key_at_once_store_one_run() {
    let Some(db) = database() else { return };
    let schema = schema("key_race");
    let manager = manager(support::backend(db, &schema)).await;
    let at = std::time::SystemTime::now() + Duration::from_secs(4);
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut nodes: Vec<NodeProcess> = (0..3)
        .map(|_| {
            let mut settings = NodeSettings::new(db, &schema);
            settings.env = vec![
                ("CALL_KEY".into(), "account:42".into()),
                ("CALL_AT_MS".into(), at_ms.to_string()),
                ("CALLS".into(), "34".into()),
            ];
            NodeProcess::start(&settings)
        })
        .collect();
    let mut ids = Vec::new();
    for node in &mut nodes {
        node.wait_for_line("calls done");
        for line in &node.log {
            assert!(!line.starts_with("call failed"), "{line}");
            if let Some(id) = line.strip_prefix("called ") {
                ids.push(id.to_owned());
            }
        }
    }
    assert_eq!(ids.len(), 102);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let pool = pool(db).await;
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.all_runs")).await,
        1
    );
    let handle = manager.attach(&ids[0]).await.unwrap();
    handle.await_result().await.unwrap();
    drop(nodes);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn priority_orders_the_claim_across_workers_first_come_within_one() {
    let Some(db) = database() else { return };
    let schema = schema("priority");
    let manager = WorkerManager::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    for worker in ["ranked-a", "ranked-b"] {
        let order = order.clone();
        manager
            .register(worker, move |ctx| {
                let order = order.clone();
                async move {
                    let n = ctx.payload().and_then(|p| p["n"].as_i64()).unwrap_or(-1);
                    order.lock().unwrap().push(n);
                    let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
                    ctx.sleep(Duration::from_millis(ms)).await;
                    Ok(())
                }
            })
            .await
            .unwrap();
    }
    // Stored by a process that only calls, before any node claims, so
    // that the claims see them all.
    let caller = WorkerManager::new();
    for worker in ["ranked-a", "ranked-b"] {
        caller
            .register(worker, |_ctx| async { Ok(()) })
            .await
            .unwrap();
    }
    caller
        .set_backend(support::backend(db, &schema).execute(false))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (worker, n, priority) in [
        ("ranked-a", 1, 0),
        ("ranked-b", 2, 10),
        ("ranked-a", 3, -5),
        ("ranked-a", 4, 10),
        ("ranked-b", 5, 3),
        ("ranked-a", 6, 0),
    ] {
        let call = Call::new().payload(json!({"n": n})).priority(priority);
        ids.push(
            caller
                .call_with(worker, call)
                .await
                .unwrap()
                .id()
                .to_owned(),
        );
    }
    manager
        .set_backend(support::backend(db, &schema).concurrency(1))
        .await
        .unwrap();
    for id in ids {
        manager
            .attach(&id)
            .await
            .unwrap()
            .await_result()
            .await
            .unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [2, 4, 5, 1, 6, 3]);
    caller.shutdown().await.unwrap();
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn call_many_stores_a_batch_in_one_commit_with_ids_in_order() {
    let Some(db) = database() else { return };
    let schema = schema("bulk");
    let manager = manager(support::backend(db, &schema)).await;
    let pool = pool(db).await;
    // Large enough to be streamed with COPY: values with what its text
    // format escapes must arrive as they were.
    let payload = |n: usize| match n % 3 {
        0 => json!({"n": 0, "text": "tab\there, back\\slash,\nnew line, \\N, ünï"}),
        other => json!({"n": other}),
    };
    let calls = (0..1000).map(|n| Call::new().payload(payload(n)));
    let ids = manager.call_many("noop", calls).await.unwrap();
    assert_eq!(ids.len(), 1000);
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 1000);
    // In input order: the stored payload of each id is its call's.
    let stored: Vec<(String, Value)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id::text, payload FROM {schema}.all_runs"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let payload_of: std::collections::HashMap<String, Value> = stored.into_iter().collect();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(payload_of[id], payload(n), "run {n}");
    }
    eventually("the batch ran", || async {
        manager.stats("noop").await.unwrap().runs == 1000
    })
    .await;

    // Keys as for single calls, including within the batch; a Reject
    // that finds its key taken stores nothing of its batch.
    let keyed = vec![
        Call::new().key("a").delay(Duration::from_secs(5)),
        Call::new().key("a"),
        Call::new().key("b").delay(Duration::from_secs(5)),
    ];
    let ids = manager.call_many("noop", keyed).await.unwrap();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    let before = count(&pool, format!("SELECT count(*) FROM {schema}.all_runs")).await;
    let refused = vec![
        Call::new().payload(json!({"n": 1})),
        Call::new().key("b").on_duplicate(Duplicate::Reject),
    ];
    let error = manager.call_many("noop", refused).await.unwrap_err();
    assert!(
        error.is_duplicate() && error.to_string().contains(&ids[2]),
        "{error}"
    );
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.all_runs")).await,
        before
    );
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pause_is_stored_for_the_cluster_and_resume_starts_the_waiting_runs() {
    let Some(db) = database() else { return };
    let schema = schema("pause");
    let one = manager(support::backend(db, &schema)).await;
    let other = manager(support::backend(db, &schema)).await;
    one.pause("echo").await.unwrap();
    assert!(other.is_paused("echo").await.unwrap());
    let handle = other
        .call_with("echo", Call::new().payload(json!({"n": 1})))
        .await
        .unwrap();
    let due = other
        .call_with("echo", Call::new().delay(Duration::from_millis(300)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!handle.is_finished(), "a paused worker's run started");
    let stats = one.stats("echo").await.unwrap();
    assert_eq!((stats.queued, stats.scheduled, stats.paused), (2, 0, true));
    // Other workers go on.
    other.run("noop", None).await.unwrap();

    other.resume("echo").await.unwrap();
    assert!(!one.is_paused("echo").await.unwrap());
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output["n"], 1);
    due.await_result().await.unwrap();
    let stats = one.stats("echo").await.unwrap();
    assert_eq!((stats.runs, stats.queued, stats.paused), (2, 0, false));
    one.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_scheduled_run_survives_a_restart_of_every_process() {
    let Some(db) = database() else { return };
    let schema = schema("restart");
    let first = manager(support::backend(db, &schema)).await;
    let handle = first
        .call_with(
            "echo",
            Call::new()
                .payload(json!({"n": 9}))
                .delay(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    let id = handle.id().to_owned();
    drop(handle);
    first.shutdown().await.unwrap();
    drop(first);

    let second = manager(support::backend(db, &schema)).await;
    assert_eq!(second.scheduled(None).await.unwrap(), [id.as_str()]);
    let output: Value = second
        .attach(&id)
        .await
        .unwrap()
        .await_output()
        .await
        .unwrap();
    assert_eq!(output["n"], 9);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_unique_worker_and_a_replace_after_the_start_join_through_the_database() {
    let Some(db) = database() else { return };
    let schema = schema("unique");
    let manager = WorkerManager::new();
    manager
        .register_with(
            "sync-user",
            WorkerOptions::new().unique("user_id"),
            |ctx| async move {
                ctx.sleep(Duration::from_millis(300)).await;
                Ok(ctx.payload().cloned().unwrap_or(Value::Null))
            },
        )
        .await
        .unwrap();
    manager
        .set_backend(support::backend(db, &schema))
        .await
        .unwrap();
    let a = manager
        .call("sync-user", None, Some(json!({"user_id": 1, "n": 1})))
        .await
        .unwrap();
    eventually("the run started", || async {
        manager.stats("sync-user").await.unwrap().running == 1
    })
    .await;
    // Started: a Replace joins and changes nothing.
    let b = manager
        .call_with(
            "sync-user",
            Call::new()
                .payload(json!({"user_id": 1, "n": 2}))
                .on_duplicate(Duplicate::Replace),
        )
        .await
        .unwrap();
    let c = manager
        .call_with(
            "sync-user",
            Call::new().payload(json!({"user_id": 2, "n": 3})),
        )
        .await
        .unwrap();
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    let output: Value = b.await_output().await.unwrap();
    assert_eq!(output["n"], 1);
    a.await_result().await.unwrap();
    c.await_result().await.unwrap();
    let missing = manager
        .call_with("sync-user", Call::new().payload(json!({"n": 4})))
        .await
        .unwrap_err();
    assert!(
        missing.is_validation() && missing.to_string().contains("user_id"),
        "{missing}"
    );
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_paused_schedule_skips_its_ticks_once_in_the_cluster_and_counts_them() {
    let Some(db) = database() else { return };
    let schema = schema("paused_ticks");
    let managers = [
        manager(support::backend(db, &schema)).await,
        manager(support::backend(db, &schema)).await,
    ];
    for manager in &managers {
        support::workers::register_ticks(manager).await;
    }
    managers[0].pause("tick").await.unwrap();
    let before = managers[0].stats("tick").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stats = managers[1].stats("tick").await.unwrap();
    assert_eq!(stats.runs, before.runs, "no tick ran while paused");
    let skipped = stats.skipped - before.skipped;
    assert!(
        (2..=4).contains(&skipped),
        "each tick skipped once, not per node: {skipped}"
    );
    managers[1].resume("tick").await.unwrap();
    eventually("a tick ran after resume", || async {
        managers[0].stats("tick").await.unwrap().runs > before.runs
    })
    .await;
    for manager in &managers {
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn enqueue_with_and_enqueue_many_store_in_the_callers_transaction_or_not_at_all() {
    let Some(db) = database() else { return };
    let schema = schema("enqueue_jobs");
    let manager = manager(support::backend(db, &schema)).await;
    let store = support::backend(db, &schema);
    let pool = pool(db).await;
    let later = || Call::new().key("k").delay(Duration::from_secs(3600));

    // Rolled back: nothing stored, the key still free.
    let mut tx = pool.begin().await.unwrap();
    let ids = store
        .enqueue_many(
            &mut tx,
            "echo",
            [Call::new().payload(json!({"n": 1})), later()],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.all_runs")).await,
        0
    );
    assert_eq!(
        count(&pool, format!("SELECT count(*) FROM {schema}.run_keys")).await,
        0
    );

    // Committed: stored with the application's own writes; a duplicate
    // within the transaction joins.
    let mut tx = pool.begin().await.unwrap();
    let now = store
        .enqueue_with(&mut tx, "echo", Call::new().payload(json!({"n": 2})))
        .await
        .unwrap();
    let keyed = store
        .enqueue_many(&mut tx, "echo", [later(), later()])
        .await
        .unwrap();
    assert_eq!(keyed[0], keyed[1]);
    tx.commit().await.unwrap();
    let output: Value = manager
        .attach(&now)
        .await
        .unwrap()
        .await_output()
        .await
        .unwrap();
    assert_eq!(output["n"], 2);
    assert_eq!(
        manager.scheduled(Some("echo")).await.unwrap(),
        [keyed[0].as_str()]
    );
    manager.shutdown().await.unwrap();
}
