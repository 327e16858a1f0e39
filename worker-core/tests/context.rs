//! What a worker sees and sends: messages, state, environment, config, logs.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use worker_core::prelude::*;

#[tokio::test]
async fn every_emit_arrives_once_in_order() {
    let manager = WorkerManager::new();
    manager
        .register("progress-reporter", |ctx| async move {
            for i in 1..=10 {
                ctx.emit(
                    json!({"progress": i * 10, "message": format!("Processing item {i}/10")}),
                )?;
                tokio::task::yield_now().await;
            }
            ctx.emit(json!({"status": "complete"}))?;
            Ok(())
        })
        .await
        .unwrap();

    let mut handle = manager.call("progress-reporter", None, None).await.unwrap();
    let mut progress = Vec::new();
    while let Some(message) = handle.recv().await {
        progress.push(message["progress"].as_i64().unwrap_or(0));
    }
    assert_eq!(progress, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 0]);
    assert_eq!(handle.recv().await, None, "None again once drained");
    handle.await_result().await.unwrap();
}

#[tokio::test]
async fn messages_wait_for_a_reader_who_comes_after_the_run_ended() {
    let manager = WorkerManager::new();
    manager
        .register("early", |ctx| async move {
            for i in 0..100 {
                ctx.emit(json!(i))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let mut handle = manager.call("early", None, None).await.unwrap();
    while !handle.is_finished() {
        tokio::task::yield_now().await;
    }
    assert_eq!(manager.in_flight(), 0);
    let mut got = Vec::new();
    while let Some(message) = handle.recv().await {
        got.push(message.as_i64().unwrap());
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    handle.await_result().await.unwrap();
}

#[tokio::test]
async fn emit_never_fails_because_nobody_listens() {
    let manager = WorkerManager::new();
    manager
        .register("chatty", |ctx| async move {
            for i in 0..5000 {
                ctx.emit(json!(i))?; // far more than the buffer holds
            }
            Ok(())
        })
        .await
        .unwrap();
    manager.set_message_buffer(16);
    // run(): there is no handle at all.
    manager.run("chatty", None).await.unwrap();
    // call() with the handle dropped at once.
    drop(manager.call("chatty", None, None).await.unwrap());
    // call() then await_result without reading.
    let handle = manager.call("chatty", None, None).await.unwrap();
    handle.await_result().await.unwrap();
    while manager.in_flight() > 0 {
        tokio::task::yield_now().await;
    }
    let stats = manager.stats("chatty").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (3, 0));
}

#[tokio::test]
async fn an_unread_buffer_holds_the_worker_instead_of_failing_it() {
    let manager = WorkerManager::new();
    manager.set_message_buffer(8);
    let emitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    manager
        .register("flood", {
            let emitted = emitted.clone();
            move |ctx| {
                let emitted = emitted.clone();
                async move {
                    for i in 0..100 {
                        ctx.emit(json!(i))?;
                        emitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    let mut handle = manager.call("flood", None, None).await.unwrap();
    // Nobody reads: the worker gets exactly one buffer ahead, then waits.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    assert_eq!(emitted.load(std::sync::atomic::Ordering::SeqCst), 8);
    assert!(!handle.is_finished(), "held, not failed");
    let mut got = Vec::new();
    while let Some(message) = handle.recv().await {
        got.push(message.as_u64().unwrap());
    }
    assert_eq!(
        got,
        (0..100).collect::<Vec<u64>>(),
        "nothing dropped, in order"
    );
    handle.await_result().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_for_a_slow_reader_and_loses_nothing() {
    let manager = WorkerManager::new();
    manager.set_message_buffer(4);
    manager
        .register("patient", |ctx| async move {
            for i in 0..1000 {
                ctx.send(json!(i)).await?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let mut handle = manager.call("patient", None, None).await.unwrap();
    let mut got = Vec::new();
    while let Some(message) = handle.recv().await {
        got.push(message.as_i64().unwrap());
        if got.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    handle.await_result().await.unwrap();
}

#[tokio::test]
async fn try_recv_takes_what_is_there_without_waiting() {
    let manager = WorkerManager::new();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    manager
        .register("two-step", move |ctx| {
            let gate = g.clone();
            async move {
                ctx.emit(json!("first"))?;
                let _permit = gate.acquire().await.map_err(Error::other)?;
                ctx.emit(json!("second"))?;
                Ok(())
            }
        })
        .await
        .unwrap();
    let mut handle = manager.call("two-step", None, None).await.unwrap();
    assert_eq!(handle.recv().await, Some(json!("first")));
    assert_eq!(handle.try_recv(), None);
    gate.add_permits(1);
    assert_eq!(handle.recv().await, Some(json!("second")));
    assert_eq!(handle.recv().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_private_to_each_run() {
    let manager = WorkerManager::new();
    let both_set = Arc::new(tokio::sync::Barrier::new(2));
    let b = both_set.clone();
    manager
        .register("stateful", move |ctx| {
            let both_set = b.clone();
            async move {
                let mine = ctx.payload().cloned().unwrap_or_default();
                assert_eq!(
                    ctx.get_state("who").await,
                    None,
                    "a run starts with empty state"
                );
                ctx.set_state("who", mine.clone()).await?;
                both_set.wait().await;
                assert_eq!(ctx.get_state("who").await, Some(mine));
                ctx.clear_state().await?;
                assert_eq!(ctx.get_state("who").await, None);
                Ok(())
            }
        })
        .await
        .unwrap();
    let a = manager
        .call("stateful", None, Some(json!("a")))
        .await
        .unwrap();
    let b = manager
        .call("stateful", None, Some(json!("b")))
        .await
        .unwrap();
    a.await_result().await.unwrap();
    b.await_result().await.unwrap();
}

#[tokio::test]
async fn identity_payload_and_config_reach_the_worker() {
    let manager = WorkerManager::new();
    manager.set_config(AppConfig::from_value(
        json!({"api": {"base_url": "http://api.test"}}),
    ));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    manager
        .register("example", move |ctx| {
            let seen = s.clone();
            async move {
                let base_url = ctx
                    .config()
                    .get::<String>("api.base_url")
                    .unwrap_or_else(|| "http://localhost".to_string());
                let mut seen = seen.lock().unwrap();
                seen.push(ctx.worker_name().to_owned());
                seen.push(ctx.run_id().to_owned());
                seen.push(base_url);
                seen.push(ctx.payload().map(|p| p.to_string()).unwrap_or_default());
                Ok(())
            }
        })
        .await
        .unwrap();
    let handle = manager
        .call("example", None, Some(json!({"k": 1})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    handle.await_result().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["example", &id, "http://api.test", r#"{"k":1}"#]
    );
}

/// Log lines captured by the test logger.
fn captured() -> &'static Mutex<Vec<(log::Level, String)>> {
    static LINES: OnceLock<Mutex<Vec<(log::Level, String)>>> = OnceLock::new();
    LINES.get_or_init(|| {
        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, record: &log::Record) {
                captured()
                    .lock()
                    .unwrap()
                    .push((record.level(), record.args().to_string()));
            }
            fn flush(&self) {}
        }
        static CAPTURE: Capture = Capture;
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        Mutex::new(Vec::new())
    })
}

async fn log_lines_of(manager: &WorkerManager, worker: &str) -> Vec<(log::Level, String)> {
    let handle = manager.call(worker, None, None).await.unwrap();
    let prefix = format!(
        "[Worker:{worker} run:{}] ",
        handle.id().parse::<worker_core::RunId>().unwrap().short()
    );
    handle.await_result().await.unwrap();
    captured()
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(level, line)| Some((*level, line.strip_prefix(&prefix)?.to_owned())))
        .collect()
}

#[tokio::test]
async fn log_lines_name_the_worker_and_run_and_debug_is_for_development() {
    captured();
    let register = |manager: WorkerManager| async move {
        manager
            .register("logger-demo", |ctx| async move {
                ctx.info("Informational message");
                ctx.warn("Warning message");
                ctx.error("Error message");
                ctx.debug("Debug message (only in development)");
                ctx.log(log::Level::Trace, "Custom log");
                Ok(())
            })
            .await
            .unwrap();
        manager
    };

    let development = register(WorkerManager::new()).await;
    development.set_environment(Environment::Development);
    let lines = log_lines_of(&development, "logger-demo").await;
    let messages: Vec<&str> = lines
        .iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| !m.starts_with("finished"))
        .collect();
    assert_eq!(
        messages,
        [
            "Informational message",
            "Warning message",
            "Error message",
            "Debug message (only in development)",
            "Custom log"
        ]
    );
    assert_eq!(lines[1].0, log::Level::Warn);

    let production = register(WorkerManager::new()).await;
    production.set_environment(Environment::Production);
    let lines = log_lines_of(&production, "logger-demo").await;
    assert!(
        lines.iter().all(|(_, m)| !m.starts_with("Debug message")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|(_, m)| m == "Informational message"));
}

#[tokio::test]
async fn the_environment_is_the_managers() {
    let manager = WorkerManager::new();
    manager
        .register("env-aware", |ctx| async move {
            let expected = ctx.payload().and_then(|p| p.as_str()).unwrap_or_default();
            assert_eq!(ctx.is_production(), expected == "production");
            assert_eq!(ctx.is_development(), expected == "development");
            Ok(())
        })
        .await
        .unwrap();
    manager.set_environment(Environment::Production);
    manager
        .run("env-aware", Some(json!("production")))
        .await
        .unwrap();
    manager.set_environment(Environment::Development);
    manager
        .run("env-aware", Some(json!("development")))
        .await
        .unwrap();
}

/// `ctx.sleep` and `ctx.cancelled()` register no waiter of their own when
/// the run's driver polls them; everywhere else they must still wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_reaches_every_place_a_worker_can_wait() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_secs(30));
    manager
        .register("waits", |ctx| async move {
            let place = ctx.payload().and_then(Value::as_str).unwrap_or_default();
            match place {
                // The run's own task, through select!.
                "own-task" => ctx.sleep(Duration::from_secs(3600)).await,
                // A combinator that polls each future with a waker of its own.
                "futures-unordered" => {
                    use futures::StreamExt;
                    let mut waits = futures::stream::FuturesUnordered::new();
                    waits.push(ctx.cancelled());
                    waits.next().await;
                }
                // Another task holding a clone of the context.
                "spawned-task" => {
                    let clone = ctx.clone();
                    tokio::spawn(async move { clone.sleep(Duration::from_secs(3600)).await })
                        .await
                        .unwrap();
                }
                other => panic!("unknown place {other}"),
            }
            ctx.emit(json!("saw the cancel"))?;
            Ok(())
        })
        .await
        .unwrap();
    for place in ["own-task", "futures-unordered", "spawned-task"] {
        let mut handle = manager
            .call("waits", None, Some(json!(place)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!handle.is_finished(), "{place}: still waiting");
        // Within the 30 s grace period only if the wait woke.
        tokio::time::timeout(Duration::from_secs(10), handle.cancel())
            .await
            .unwrap_or_else(|_| panic!("{place}: the cancel never reached the wait"))
            .unwrap();
        assert_eq!(
            handle.recv().await,
            Some(json!("saw the cancel")),
            "{place}"
        );
        assert!(handle.await_result().await.unwrap_err().is_cancelled());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nested_in_a_worker_is_cancelled_by_its_own_id() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_secs(30));
    manager
        .register("inner", |ctx| async move {
            ctx.sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    manager
        .register("outer", {
            let manager = manager.clone();
            move |ctx| {
                let manager = manager.clone();
                async move {
                    let inner = manager.run("inner", None).await;
                    ctx.emit(json!(inner.unwrap_err().is_cancelled()))?;
                    ctx.sleep(Duration::from_secs(3600)).await;
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    let mut outer = manager.call("outer", None, None).await.unwrap();
    let inner = loop {
        let ids = manager.running_for("inner").await.unwrap();
        if let Some(id) = ids.first() {
            break id.clone();
        }
        tokio::task::yield_now().await;
    };
    tokio::time::timeout(Duration::from_secs(10), manager.cancel(&inner))
        .await
        .expect("the inner run's ctx.sleep woke on its cancel")
        .unwrap();
    assert_eq!(
        outer.recv().await,
        Some(json!(true)),
        "the inner run ended cancelled"
    );
    assert!(!outer.is_finished(), "the outer run goes on");
    tokio::time::timeout(Duration::from_secs(10), outer.cancel())
        .await
        .expect("the outer run's ctx.sleep woke on its cancel")
        .unwrap();
    assert!(outer.await_result().await.unwrap_err().is_cancelled());
}
