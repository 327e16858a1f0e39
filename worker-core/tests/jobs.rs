//! The job model in this process: later (`delay`/`at`), once per key
//! (`Join`, `Replace`, `Reject`, the worker's `unique` field), first
//! (`priority`), in bulk (`call_many`) and paused (`pause`/`resume`).
//! Timing tests run on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use worker_core::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A worker that records the payload's `n` of each run as it starts, and
/// when, then sleeps `work`.
async fn recorder(
    manager: &WorkerManager,
    name: &str,
    options: WorkerOptions,
    work: Duration,
) -> Arc<Mutex<Vec<(i64, Instant)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    manager
        .register_with(name, options, move |ctx| {
            let record = record.clone();
            async move {
                let n = ctx.payload().and_then(|p| p["n"].as_i64()).unwrap_or(-1);
                record.lock().unwrap().push((n, Instant::now()));
                ctx.emit(json!({"n": n}))?;
                ctx.sleep(work).await;
                ctx.emit(json!({"done": n}))?;
                Ok(json!({"n": n}))
            }
        })
        .await
        .unwrap();
    seen
}

fn order(seen: &Mutex<Vec<(i64, Instant)>>) -> Vec<i64> {
    seen.lock().unwrap().iter().map(|(n, _)| *n).collect()
}

#[tokio::test(start_paused = true)]
async fn a_delayed_run_waits_listed_as_scheduled_then_starts_on_time() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "remind", WorkerOptions::new(), ms(0)).await;
    let asked = Instant::now();
    let handle = manager
        .call_with(
            "remind",
            Call::new().payload(json!({"n": 1})).delay(ms(500)),
        )
        .await
        .unwrap();
    tokio::time::sleep(ms(499)).await;
    assert!(seen.lock().unwrap().is_empty(), "started before its time");
    assert_eq!(
        manager.scheduled(Some("remind")).await.unwrap(),
        [handle.id()]
    );
    assert_eq!(manager.scheduled(None).await.unwrap(), [handle.id()]);
    assert!(manager.running().await.unwrap().is_empty());
    let stats = manager.stats("remind").await.unwrap();
    assert_eq!((stats.scheduled, stats.queued, stats.running), (1, 0, 0));

    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"n": 1}));
    let started = seen.lock().unwrap()[0].1;
    assert!(started - asked >= ms(500) && started - asked < ms(600));
    assert!(manager.scheduled(None).await.unwrap().is_empty());
    let stats = manager.stats("remind").await.unwrap();
    assert_eq!((stats.runs, stats.scheduled, stats.cancelled), (1, 0, 0));
    assert!(
        stats.total_runtime_ms < 500,
        "the wait is not part of the duration"
    );
}

#[tokio::test(start_paused = true)]
async fn at_a_time_in_the_past_starts_at_once() {
    let manager = WorkerManager::new();
    recorder(&manager, "remind", WorkerOptions::new(), ms(0)).await;
    let past = SystemTime::now() - Duration::from_secs(60);
    let handle = manager
        .call_with("remind", Call::new().at(past))
        .await
        .unwrap();
    handle.await_result().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_scheduled_run_ends_it_at_once_counted_once() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "remind", WorkerOptions::new(), ms(0)).await;
    let handle = manager
        .call_with("remind", Call::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    let asked = Instant::now();
    manager.cancel(&id).await.unwrap();
    assert_eq!(Instant::now(), asked, "ended at once");
    let error = handle.await_result().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert!(manager.cancel(&id).await.unwrap_err().is_run_not_found());
    let stats = manager.stats("remind").await.unwrap();
    assert_eq!(
        (stats.cancelled, stats.runs, stats.running, stats.scheduled),
        (1, 0, 0, 0)
    );
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_and_counts_scheduled_runs() {
    let manager = WorkerManager::new();
    recorder(&manager, "remind", WorkerOptions::new(), ms(0)).await;
    let handle = manager
        .call_with(
            "remind",
            Call::new().delay(Duration::from_secs(60)).key("k"),
        )
        .await
        .unwrap();
    manager.shutdown().await.unwrap();
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
    assert_eq!(manager.stats("remind").await.unwrap().cancelled, 1);
    assert!(manager.scheduled(None).await.unwrap().is_empty());
    let refused = manager.call_with("remind", Call::new().delay(ms(1))).await;
    assert!(refused.unwrap_err().is_shutdown());
}

#[tokio::test(start_paused = true)]
async fn join_gives_the_same_run_its_outcome_and_every_later_message() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "sync", WorkerOptions::new(), ms(100)).await;
    let call = || Call::new().payload(json!({"n": 7})).key("account:7");
    let mut first = manager.call_with("sync", call()).await.unwrap();
    let first_id = first.id().to_owned();
    tokio::task::yield_now().await;
    let mut joined = manager.call_with("sync", call()).await.unwrap();
    assert_eq!(joined.id(), first.id());

    let mut from_first = Vec::new();
    while let Some(message) = first.recv().await {
        from_first.push(message);
    }
    let mut from_joined = Vec::new();
    while let Some(message) = joined.recv().await {
        from_joined.push(message);
    }
    // The first handle saw both; the one that joined after the start saw
    // what came after it joined.
    assert_eq!(from_first, [json!({"n": 7}), json!({"done": 7})]);
    assert!(
        from_joined.ends_with(&[json!({"done": 7})]),
        "{from_joined:?}"
    );
    let a: Value = first.await_output().await.unwrap();
    let b: Value = joined.await_output().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(order(&seen), [7], "one run");
    assert_eq!(manager.stats("sync").await.unwrap().runs, 1, "counted once");

    // The key is free again once the run ended.
    let again = manager.call_with("sync", call()).await.unwrap();
    assert_ne!(again.id(), first_id);
    again.await_result().await.unwrap();
    assert_eq!(manager.stats("sync").await.unwrap().runs, 2);
}

#[tokio::test(start_paused = true)]
async fn a_handle_that_joins_before_the_start_gets_every_message_and_the_error() {
    let manager = WorkerManager::new();
    manager
        .register("fails", |ctx| async move {
            ctx.emit(json!(1))?;
            Err(Error::permanent("no such account"))
        })
        .await
        .unwrap();
    let call = || Call::new().key("a").delay(ms(50));
    let first = manager.call_with("fails", call()).await.unwrap();
    let mut joined = manager.call_with("fails", call()).await.unwrap();
    assert_eq!(joined.recv().await, Some(json!(1)));
    assert_eq!(joined.recv().await, None);
    let error = joined.await_result().await.unwrap_err();
    assert!(error.is_permanent() && error.to_string().contains("no such account"));
    assert!(first.await_result().await.unwrap_err().is_permanent());
    let stats = manager.stats("fails").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (1, 1));
    // A failed run frees its key too.
    let next = manager.call_with("fails", call()).await.unwrap();
    assert!(next.await_result().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn replace_is_a_debounce_until_the_run_starts_then_a_join() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "index", WorkerOptions::new(), ms(100)).await;
    let call = |n: i64| {
        Call::new()
            .payload(json!({"n": n}))
            .key("doc:1")
            .delay(ms(200))
            .on_duplicate(Duplicate::Replace)
    };
    let asked = Instant::now();
    let first = manager.call_with("index", call(1)).await.unwrap();
    tokio::time::sleep(ms(150)).await;
    let second = manager.call_with("index", call(2)).await.unwrap();
    assert_eq!(second.id(), first.id(), "the same run, kept");
    tokio::time::sleep(ms(150)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "the time moved with the replacement"
    );
    let output: Value = first.await_output().await.unwrap();
    assert_eq!(output, json!({"n": 2}), "the payload was replaced");
    let started = seen.lock().unwrap()[0].1;
    assert!(started - asked >= ms(350), "{:?}", started - asked);

    // Started: a Replace joins and changes nothing.
    let running = manager
        .call_with("index", call(3).delay(ms(0)))
        .await
        .unwrap();
    tokio::time::sleep(ms(10)).await;
    let late = manager.call_with("index", call(4)).await.unwrap();
    assert_eq!(late.id(), running.id());
    let output: Value = late.await_output().await.unwrap();
    assert_eq!(output, json!({"n": 3}));
    assert_eq!(order(&seen), [2, 3]);
    assert_eq!(manager.stats("index").await.unwrap().runs, 2);
}

#[tokio::test(start_paused = true)]
async fn reject_fails_the_call_naming_the_run_with_the_key() {
    let manager = WorkerManager::new();
    recorder(&manager, "sync", WorkerOptions::new(), ms(100)).await;
    let first = manager
        .call_with("sync", Call::new().key("k"))
        .await
        .unwrap();
    let error = manager
        .call_with("sync", Call::new().key("k").on_duplicate(Duplicate::Reject))
        .await
        .unwrap_err();
    assert!(error.is_duplicate(), "{error}");
    assert!(error.to_string().contains(first.id()), "{error}");
    assert!(error.to_string().contains("'sync'"), "{error}");
    first.await_result().await.unwrap();
    assert_eq!(manager.stats("sync").await.unwrap().runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_with_one_key_store_one_run() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "sync", WorkerOptions::new(), ms(50)).await;
    let calls = (0..100).map(|n| {
        let manager = manager.clone();
        tokio::spawn(async move {
            manager
                .call_with("sync", Call::new().payload(json!({"n": n})).key("one"))
                .await
                .unwrap()
        })
    });
    let handles = futures_join(calls).await;
    let id = handles[0].id().to_owned();
    assert!(handles.iter().all(|h| h.id() == id));
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(manager.stats("sync").await.unwrap().runs, 1);
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_unique_worker_keys_each_call_by_its_payload_field() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().unique("user_id");
    let seen = recorder(&manager, "sync-user", options, ms(100)).await;
    let a = manager
        .call_with(
            "sync-user",
            Call::new().payload(json!({"user_id": 1, "n": 1})),
        )
        .await
        .unwrap();
    let b = manager
        .call_with(
            "sync-user",
            Call::new().payload(json!({"user_id": 1, "n": 2})),
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
    // Call::key overrides the field.
    let d = manager
        .call_with(
            "sync-user",
            Call::new()
                .payload(json!({"user_id": 1, "n": 4}))
                .key("other"),
        )
        .await
        .unwrap();
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    assert_ne!(a.id(), d.id());
    // A plain call() of a unique worker is keyed too: it joins c.
    let e = manager
        .call("sync-user", None, Some(json!({"user_id": 2, "n": 5})))
        .await
        .unwrap();
    assert_eq!(e.id(), c.id());
    for handle in [a, b, c, d, e] {
        handle.await_result().await.unwrap();
    }
    let mut started = order(&seen);
    started.sort();
    assert_eq!(started, [1, 3, 4]);

    let missing = manager
        .call_with("sync-user", Call::new().payload(json!({"n": 1})))
        .await
        .unwrap_err();
    assert!(missing.is_validation() && missing.to_string().contains("user_id"));
}

#[tokio::test(start_paused = true)]
async fn waiting_runs_start_by_priority_then_first_come() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().concurrency(1).priority(5);
    let seen = recorder(&manager, "render", options, ms(10)).await;
    let mut handles = vec![
        manager
            .call_with("render", Call::new().payload(json!({"n": 0})))
            .await
            .unwrap(),
    ];
    for (n, priority) in [
        (1, Some(0)),
        (2, Some(10)),
        (3, None),
        (4, Some(10)),
        (5, Some(-3)),
    ] {
        let mut call = Call::new().payload(json!({"n": n}));
        if let Some(priority) = priority {
            call = call.priority(priority);
        }
        handles.push(manager.call_with("render", call).await.unwrap());
    }
    // Also a delayed run that comes due while others wait.
    handles.push(
        manager
            .call_with(
                "render",
                Call::new()
                    .payload(json!({"n": 6}))
                    .priority(7)
                    .delay(ms(5)),
            )
            .await
            .unwrap(),
    );
    let stats = manager.stats("render").await.unwrap();
    assert_eq!((stats.running, stats.queued, stats.scheduled), (1, 5, 1));
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    // 3 has the worker's priority (5).
    assert_eq!(order(&seen), [0, 2, 4, 6, 3, 1, 5]);
}

#[tokio::test(start_paused = true)]
async fn call_many_stores_all_in_order_with_keys_resolved_as_single_calls() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "email", WorkerOptions::new(), ms(10)).await;
    let calls = vec![
        Call::new().payload(json!({"n": 0})),
        Call::new().payload(json!({"n": 1})).key("x"),
        Call::new().payload(json!({"n": 2})).key("x"),
        Call::new().payload(json!({"n": 3})).delay(ms(50)),
    ];
    let ids = manager.call_many("email", calls).await.unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[1], ids[2], "a duplicate within the batch joins");
    assert_eq!(
        manager.scheduled(Some("email")).await.unwrap(),
        [ids[3].clone()]
    );
    tokio::time::sleep(ms(100)).await;
    let mut started = order(&seen);
    started.sort();
    assert_eq!(started, [0, 1, 3]);

    // Reject within the batch, or against a stored run: nothing stored.
    let before = manager.stats("email").await.unwrap();
    let bad = vec![
        Call::new().payload(json!({"n": 9})),
        Call::new().key("y"),
        Call::new().key("y").on_duplicate(Duplicate::Reject),
    ];
    assert!(
        manager
            .call_many("email", bad)
            .await
            .unwrap_err()
            .is_duplicate()
    );
    let mut no_json = std::collections::HashMap::new();
    no_json.insert((1, 2), 3); // a map with non-string keys has no JSON form
    let invalid = vec![Call::new(), Call::new().payload(no_json)];
    assert!(
        manager
            .call_many("email", invalid)
            .await
            .unwrap_err()
            .is_validation()
    );
    tokio::time::sleep(ms(100)).await;
    let after = manager.stats("email").await.unwrap();
    assert_eq!(
        after.runs, before.runs,
        "nothing of either batch was stored"
    );
    assert!(
        manager
            .call_many("nope", [Call::new()])
            .await
            .unwrap_err()
            .is_not_registered()
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_worker_accepts_calls_holds_them_and_resume_starts_them() {
    let manager = WorkerManager::new();
    let seen = recorder(&manager, "email", WorkerOptions::new(), ms(100)).await;
    let executing = manager
        .call_with("email", Call::new().payload(json!({"n": 0})))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    manager.pause("email").await.unwrap();
    assert!(manager.is_paused("email").await.unwrap());
    let waiting = manager
        .call_with("email", Call::new().payload(json!({"n": 1})))
        .await
        .unwrap();
    let due = manager
        .call_with("email", Call::new().payload(json!({"n": 2})).delay(ms(50)))
        .await
        .unwrap();
    executing.await_result().await.unwrap(); // runs already executing go on
    tokio::time::sleep(ms(500)).await;
    assert_eq!(order(&seen), [0]);
    let stats = manager.stats("email").await.unwrap();
    assert_eq!((stats.queued, stats.scheduled, stats.paused), (2, 0, true));
    assert_eq!(stats.running, 0, "waiting runs are queued, not running");

    manager.resume("email").await.unwrap();
    assert!(!manager.is_paused("email").await.unwrap());
    waiting.await_result().await.unwrap();
    due.await_result().await.unwrap();
    let stats = manager.stats("email").await.unwrap();
    assert_eq!((stats.runs, stats.queued, stats.paused), (3, 0, false));
    assert!(manager.pause("nope").await.unwrap_err().is_not_registered());
}

#[tokio::test(start_paused = true)]
async fn a_paused_schedule_skips_its_ticks_and_counts_them() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().every(ms(100));
    let seen = recorder(&manager, "tick", options, ms(0)).await;
    manager.pause("tick").await.unwrap();
    tokio::time::sleep(ms(350)).await;
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(manager.stats("tick").await.unwrap().skipped, 3);
    manager.resume("tick").await.unwrap();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    manager.shutdown().await.unwrap();
}
