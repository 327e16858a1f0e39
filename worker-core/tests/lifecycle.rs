//! A run's life: started, listed, timed, cancelled, panicking, counted, shut
//! down. Each test uses its own `WorkerManager` so tests don't see each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use worker_core::prelude::*;

/// A worker that waits until the test opens its gate.
async fn gated(manager: &WorkerManager, name: &str) -> Arc<Semaphore> {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    manager
        .register(name, move |_ctx| {
            let gate = g.clone();
            async move {
                let _permit = gate.acquire().await.map_err(Error::other)?;
                Ok(())
            }
        })
        .await
        .unwrap();
    gate
}

async fn sleeper(manager: &WorkerManager, name: &str, cooperative: bool) {
    manager
        .register(name, move |ctx| async move {
            if cooperative {
                ctx.sleep(Duration::from_secs(3600)).await;
            } else {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn call_starts_the_run_at_once_and_lists_it_before_returning() {
    let manager = WorkerManager::new();
    let gate = gated(&manager, "gated").await;

    let handle = manager.call("gated", None, None).await.unwrap();
    assert_eq!(manager.running().await.unwrap(), [handle.id()]);
    assert_eq!(manager.running_for("gated").await.unwrap(), [handle.id()]);
    assert_eq!(manager.stats("gated").await.unwrap().running, 1);

    gate.add_permits(1);
    handle.await_result().await.unwrap();
    assert!(manager.running().await.unwrap().is_empty());
    assert_eq!(manager.stats("gated").await.unwrap().running, 0);
}

#[tokio::test]
async fn run_executes_in_the_callers_task_and_is_listed_while_it_runs() {
    let manager = WorkerManager::new();
    let m = manager.clone();
    manager
        .register("self-aware", move |ctx| {
            let manager = m.clone();
            async move {
                let listed = manager.running_for("self-aware").await?;
                assert_eq!(listed, [ctx.run_id()]);
                Ok(())
            }
        })
        .await
        .unwrap();
    manager.run("self-aware", None).await.unwrap();
    assert!(manager.running().await.unwrap().is_empty());
    assert_eq!(manager.stats("self-aware").await.unwrap().runs, 1);
}

#[tokio::test]
async fn run_ids_are_distinct_uuids() {
    let manager = WorkerManager::new();
    manager
        .register("noop", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..1000 {
        let handle = manager.call("noop", None, None).await.unwrap();
        let id = handle.id().to_owned();
        assert_eq!(uuid_version(&id), Some('4'), "{id}");
        assert!(ids.insert(id));
        handle.await_result().await.unwrap();
    }
}

fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36 && id.as_bytes()[8] == b'-').then(|| id.as_bytes()[14] as char)
}

#[tokio::test]
async fn unknown_workers_are_a_clear_error_and_start_nothing() {
    let manager = WorkerManager::new();
    let err = manager.run("my-worker", None).await.unwrap_err();
    assert!(err.is_not_registered());
    assert_eq!(err.to_string(), "Worker 'my-worker' not registered");
    assert!(
        manager
            .call("my-worker", None, None)
            .await
            .unwrap_err()
            .is_not_registered()
    );
    assert!(
        manager
            .running_for("my-worker")
            .await
            .unwrap_err()
            .is_not_registered()
    );
    assert!(manager.stats("my-worker").await.is_none());
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_calls_timeout_wins_over_the_definitions() {
    let manager = WorkerManager::new();
    manager
        .register_with_timeout("slow-task", Some(Duration::from_secs(5)), |_ctx| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();

    let err = manager.run("slow-task", None).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.to_string(), "Worker 'slow-task' timed out after 5s");

    let handle = manager
        .call("slow-task", Some(Duration::from_millis(50)), None)
        .await
        .unwrap();
    let err = handle.await_result().await.unwrap_err();
    assert_eq!(err.to_string(), "Worker 'slow-task' timed out after 50ms");

    let handle = manager
        .call("slow-task", Some(Duration::from_secs(90)), None)
        .await
        .unwrap();
    let err = handle.await_result().await.unwrap_err();
    assert_eq!(err.to_string(), "Worker 'slow-task' timed out after 1m30s");

    let stats = manager.stats("slow-task").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.timeouts), (3, 3, 3));
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_any_timeout_a_run_takes_as_long_as_it_takes() {
    let manager = WorkerManager::new();
    manager
        .register("patient", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    manager.run("patient", None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancel_signals_the_worker_first_and_it_ends_cancelled() {
    let manager = WorkerManager::new();
    let saw_signal = Arc::new(AtomicBool::new(false));
    let saw = saw_signal.clone();
    manager
        .register("cooperative", move |ctx| {
            let saw = saw.clone();
            async move {
                ctx.cancelled().await;
                assert!(ctx.is_cancelled());
                saw.store(true, SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();

    let handle = manager.call("cooperative", None, None).await.unwrap();
    let id = handle.id().to_owned();
    tokio::task::yield_now().await;
    manager.cancel(&id).await.unwrap();
    assert!(
        saw_signal.load(SeqCst),
        "the worker saw ctx.cancelled() before it was dropped"
    );
    assert!(
        manager.running().await.unwrap().is_empty(),
        "cancel returns once the run has ended"
    );
    let err = handle.await_result().await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");

    let stats = manager.stats("cooperative").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.cancelled), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn ctx_sleep_returns_early_on_cancel() {
    let manager = WorkerManager::new();
    let slept = Arc::new(AtomicBool::new(false));
    let s = slept.clone();
    manager
        .register("sleepy", move |ctx| {
            let slept = s.clone();
            async move {
                let start = tokio::time::Instant::now();
                ctx.sleep(Duration::from_secs(3600)).await;
                slept.store(start.elapsed() < Duration::from_secs(3600), SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
    let handle = manager.call("sleepy", None, None).await.unwrap();
    tokio::task::yield_now().await;
    handle.cancel().await.unwrap();
    assert!(slept.load(SeqCst));
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_worker_ignoring_cancel_is_dropped_after_the_grace_period() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_secs(2));
    let dropped = Arc::new(AtomicBool::new(false));
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let d = dropped.clone();
    manager
        .register("stubborn", move |_ctx| {
            let guard = SetOnDrop(d.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    let handle = manager.call("stubborn", None, None).await.unwrap();
    tokio::task::yield_now().await;
    let before = tokio::time::Instant::now();
    handle.cancel().await.unwrap();
    assert_eq!(
        before.elapsed(),
        Duration::from_secs(2),
        "dropped exactly at the end of the grace period"
    );
    assert!(dropped.load(SeqCst), "the worker's future was dropped");
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test]
async fn cancelling_an_unknown_or_finished_run_is_a_clear_error() {
    let manager = WorkerManager::new();
    manager
        .register("quick", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let handle = manager.call("quick", None, None).await.unwrap();
    let id = handle.id().to_owned();
    while !handle.is_finished() {
        tokio::task::yield_now().await;
    }
    let err = handle.cancel().await.unwrap_err();
    assert!(err.is_run_not_found());
    assert_eq!(
        err.to_string(),
        format!("Run '{id}' is not running: it is unknown or has already finished")
    );
    assert!(manager.cancel(&id).await.unwrap_err().is_run_not_found());
    assert!(
        manager
            .cancel("not-a-uuid")
            .await
            .unwrap_err()
            .is_run_not_found()
    );
    handle.await_result().await.unwrap();
    assert_eq!(manager.stats("quick").await.unwrap().cancelled, 0);
}

#[tokio::test]
async fn a_panic_fails_the_run_and_leaves_nothing_behind() {
    let manager = WorkerManager::new();
    manager
        .register("panics", |ctx| async move {
            if ctx.payload().is_some() {
                let items: Vec<u32> = Vec::new();
                let _ = items[3];
            }
            panic!("boom");
        })
        .await
        .unwrap();
    manager
        .register("panics-early", |_ctx| -> std::future::Ready<Result<()>> {
            panic!("before the future")
        })
        .await
        .unwrap();

    let err = manager.run("panics", None).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom"));
    assert_eq!(err.to_string(), "Worker 'panics' panicked: boom");

    let handle = manager.call("panics", None, Some(json!(1))).await.unwrap();
    let err = handle.await_result().await.unwrap_err();
    assert!(
        err.panic_message().unwrap().contains("index out of bounds"),
        "{err}"
    );

    let err = manager.run("panics-early", None).await.unwrap_err();
    assert_eq!(err.panic_message(), Some("before the future"));

    let stats = manager.stats("panics").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.panics), (2, 2, 2));
    assert_eq!(manager.in_flight(), 0);
    // The manager is unharmed.
    manager
        .register("after", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    manager.run("after", None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn running_lists_exactly_the_runs_in_flight_whichever_way_they_end() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(10));
    manager
        .register("ok", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    manager
        .register("err", |_ctx| async { Err(Error::validation("no")) })
        .await
        .unwrap();
    manager
        .register("panic", |_ctx| async { panic!("p") })
        .await
        .unwrap();
    sleeper(&manager, "slow", false).await;

    for name in ["ok", "err", "panic"] {
        let handle = manager.call(name, None, None).await.unwrap();
        let _ = handle.await_result().await;
        assert!(manager.running().await.unwrap().is_empty(), "{name}");
    }
    let handle = manager
        .call("slow", Some(Duration::from_millis(5)), None)
        .await
        .unwrap();
    assert!(handle.await_result().await.unwrap_err().is_timeout());
    assert!(manager.running().await.unwrap().is_empty(), "timeout");

    let handle = manager.call("slow", None, None).await.unwrap();
    handle.cancel().await.unwrap();
    assert!(manager.running().await.unwrap().is_empty(), "cancel");

    let a = manager.call("slow", None, None).await.unwrap();
    let b = manager.call("ok", None, None).await.unwrap();
    assert!(!manager.running().await.unwrap().is_empty());
    manager.shutdown().await.unwrap();
    assert!(manager.running().await.unwrap().is_empty(), "shutdown");
    assert!(a.await_result().await.unwrap_err().is_cancelled());
    let _ = b.await_result().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_runs_at_once_are_all_listed_then_all_gone() {
    let manager = WorkerManager::new();
    let gate = gated(&manager, "gated").await;
    let calls = (0..10_000).map(|_| manager.call("gated", None, None));
    let handles: Vec<WorkerHandle> = futures_join_all(calls).await;

    let mut listed = manager.running().await.unwrap();
    let mut ids: Vec<String> = handles.iter().map(|h| h.id().to_owned()).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);

    gate.add_permits(10_000);
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    assert!(manager.running().await.unwrap().is_empty());
    assert_eq!(manager.in_flight(), 0);
    let stats = manager.stats("gated").await.unwrap();
    assert_eq!((stats.runs, stats.running), (10_000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_no_op_runs_end_counted_and_unlisted() {
    let manager = WorkerManager::new();
    manager
        .register("noop", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let mut handles = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        handles.push(manager.call("noop", None, None).await.unwrap());
    }
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    assert!(manager.running().await.unwrap().is_empty());
    assert_eq!(manager.stats("noop").await.unwrap().runs, 10_000);
}

/// Awaits every `call` future (they complete on their first poll).
async fn futures_join_all<F: std::future::Future<Output = Result<WorkerHandle>>>(
    calls: impl Iterator<Item = F>,
) -> Vec<WorkerHandle> {
    let mut handles = Vec::new();
    for call in calls {
        handles.push(call.await.unwrap());
    }
    handles
}

#[tokio::test]
async fn stats_are_recorded_before_await_result_returns() {
    let manager = WorkerManager::new();
    manager
        .register("maybe", |ctx| async move {
            match ctx.payload() {
                Some(_) => Err(Error::validation("payload refused")),
                None => Ok(()),
            }
        })
        .await
        .unwrap();
    assert_eq!(
        manager.stats("maybe").await.unwrap(),
        WorkerStats::default()
    );

    for i in 0..10 {
        let payload = (i % 3 == 0).then(|| json!(i));
        let handle = manager.call("maybe", None, payload).await.unwrap();
        let _ = handle.await_result().await;
        let stats = manager.stats("maybe").await.unwrap();
        assert_eq!(stats.runs, i + 1, "counted before await_result returned");
        assert!(stats.errors <= stats.runs);
        assert!(stats.last_run_ms.is_some());
    }
    let stats = manager.stats("maybe").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.cancelled), (10, 4, 0));
    assert_eq!(stats.success_rate(), 60.0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_calls_cancels_runs_and_waits_for_them() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(100));
    sleeper(&manager, "cooperative", true).await;
    sleeper(&manager, "stubborn", false).await;
    let cooperative_ended = Arc::new(AtomicUsize::new(0));

    let mut handles = Vec::new();
    for _ in 0..10 {
        handles.push(manager.call("cooperative", None, None).await.unwrap());
        handles.push(manager.call("stubborn", None, None).await.unwrap());
    }
    let started = Arc::new(Notify::new());
    let shutdown = tokio::spawn({
        let manager = manager.clone();
        let started = started.clone();
        async move {
            let shutting = manager.shutdown();
            started.notify_one();
            shutting.await
        }
    });
    started.notified().await;
    tokio::task::yield_now().await;
    assert!(manager.is_shutting_down());
    let err = manager.call("cooperative", None, None).await.unwrap_err();
    assert!(err.is_shutdown(), "refused from the moment shutdown begins");
    assert!(
        manager
            .run("cooperative", None)
            .await
            .unwrap_err()
            .is_shutdown()
    );

    shutdown.await.unwrap().unwrap();
    assert_eq!(
        manager.in_flight(),
        0,
        "shutdown returns once every run is gone"
    );
    for handle in handles {
        if handle.await_result().await.unwrap_err().is_cancelled() {
            cooperative_ended.fetch_add(1, SeqCst);
        }
    }
    assert_eq!(cooperative_ended.load(SeqCst), 20);
    assert_eq!(manager.stats("stubborn").await.unwrap().cancelled, 10);
    manager.shutdown().await.unwrap();
    assert!(
        manager
            .call("cooperative", None, None)
            .await
            .unwrap_err()
            .is_shutdown()
    );
}

#[tokio::test]
async fn names_are_validated_and_registered_once() {
    let manager = WorkerManager::new();
    for bad in ["", "send email", "tab\tname", "bell\u{7}"] {
        let err = manager
            .register(bad, |_ctx| async { Ok(()) })
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid worker name"), "{err}");
    }
    manager
        .register("send-email", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let err = manager
        .register("send-email", |_ctx| async { Ok(()) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Worker 'send-email' is already registered");
    assert_eq!(manager.definitions().await.unwrap(), ["send-email"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_blocks_nobody_else() {
    let manager = WorkerManager::new();
    let gate = gated(&manager, "long").await;
    manager
        .register("short", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let long = manager.call("long", None, None).await.unwrap();
    for _ in 0..100 {
        manager.run("short", None).await.unwrap();
        manager.definitions().await.unwrap();
        manager.running().await.unwrap();
        manager.stats("long").await.unwrap();
    }
    manager
        .register("late", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(manager.stats("short").await.unwrap().runs, 100);
    gate.add_permits(1);
    long.await_result().await.unwrap();
}

#[tokio::test]
async fn dropping_a_run_future_still_ends_the_run_once() {
    let manager = WorkerManager::new();
    let gate = gated(&manager, "gated").await;
    let run = manager.run("gated", None);
    let timed_out = tokio::time::timeout(Duration::from_millis(20), run).await;
    assert!(timed_out.is_err());
    assert_eq!(manager.in_flight(), 0);
    assert_eq!(manager.stats("gated").await.unwrap().cancelled, 1);
    drop(gate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_workers_and_settings_reach_every_thread_at_once() {
    let manager = WorkerManager::new();
    manager
        .register("config-reader", |ctx| async move {
            let expected = ctx.payload().cloned();
            let seen = ctx.config().get::<Value>("version");
            if seen == expected {
                Ok(())
            } else {
                Err(Error::validation(format!(
                    "saw {seen:?}, expected {expected:?}"
                )))
            }
        })
        .await
        .unwrap();
    // Every thread runs something first, so each holds a view of the manager.
    let everywhere = |version: Value| {
        let manager = manager.clone();
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (manager, version) = (manager.clone(), version.clone());
                    tokio::spawn(async move { manager.run("config-reader", Some(version)).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        }
    };
    manager.set_config(AppConfig::from_value(json!({"version": 1})));
    everywhere(json!(1)).await;

    manager.set_config(AppConfig::from_value(json!({"version": 2})));
    everywhere(json!(2)).await;

    // A worker registered now is found at once from every thread.
    manager
        .register("late", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.run("late", None).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(manager.stats("late").await.unwrap().runs, 8);
}
