//! `WORKER::`, the process-global API, used the way the seed uses it: from
//! many tests, each on its own runtime, in one binary.

use std::time::Duration;

use worker_core::__private::{BoxFuture, InstallRegistration, run_installs};
use worker_core::prelude::*;

// The seed's "Testing Workers" examples, with worker_core names.
#[tokio::test]
async fn test_email_worker() {
    WORKER::register("test-email", |ctx| async move {
        let payload = ctx.payload().unwrap();
        assert!(payload["to"].as_str().is_some());
        Ok(())
    })
    .await
    .unwrap();

    let result = WORKER::run("test-email", Some(json!({"to": "test@example.com"}))).await;
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn test_worker_timeout() {
    WORKER::register("slow", |_ctx| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(())
    })
    .await
    .unwrap();

    let handle = WORKER::call("slow", Some(Duration::from_secs(1)), None)
        .await
        .unwrap();
    let result = handle.await_result().await;
    assert!(result.is_err()); // Should timeout
    assert!(result.unwrap_err().is_timeout());
}

#[test]
fn the_global_manager_outlives_the_runtime_that_first_used_it() {
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        WORKER::register("survivor", |ctx| async move {
            ctx.sleep(Duration::from_millis(1)).await;
            ctx.emit(json!("hi"))?;
            Ok(())
        })
        .await
        .unwrap();
        WORKER::run("survivor", None).await.unwrap();
    });
    drop(first);

    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let mut handle = WORKER::call("survivor", Some(Duration::from_secs(5)), None)
            .await
            .unwrap();
        assert_eq!(handle.recv().await, Some(json!("hi")));
        handle.await_result().await.unwrap();
    });
    drop(second);

    let third = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    third.block_on(async { WORKER::run("survivor", None).await.unwrap() });
    let stats = third.block_on(WORKER::stats("survivor")).unwrap();
    assert_eq!(stats.runs, 3);
}

#[test]
fn a_run_whose_runtime_is_dropped_still_ends_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = runtime.block_on(async {
        WORKER::register("orphan", |ctx| async move {
            ctx.sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
        let handle = WORKER::call("orphan", None, None).await.unwrap();
        handle.id().to_owned()
    });
    drop(runtime); // drops the run's task mid-flight
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        assert!(!WORKER::running().await.unwrap().contains(&id));
        assert_eq!(WORKER::stats("orphan").await.unwrap().cancelled, 1);
    });
}

#[tokio::test]
async fn call_outside_tokio_is_a_clear_error() {
    WORKER::register("anywhere", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    let err = std::thread::spawn(|| futures_lite_block_on(WORKER::call("anywhere", None, None)))
        .join()
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("must run inside a tokio runtime"),
        "{err}"
    );
}

/// A minimal executor that is not tokio.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn the_seeds_listing_and_stats_calls() {
    WORKER::register("listed-a", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    WORKER::register("listed-b", |_ctx| async { Err(Error::validation("nope")) })
        .await
        .unwrap();
    WORKER::run("listed-a", None).await.unwrap();
    assert!(WORKER::run("listed-b", None).await.is_err());

    let definitions = WORKER::definitions().await.unwrap();
    assert!(definitions.contains(&"listed-a".to_owned()));
    let mut sorted = definitions.clone();
    sorted.sort();
    assert_eq!(definitions, sorted);
    let _running = WORKER::running().await.unwrap();
    assert!(WORKER::running_for("listed-a").await.unwrap().is_empty());

    let stats = WORKER::stats("listed-b").await.unwrap();
    let success_rate = (stats.runs - stats.errors) as f64 / stats.runs as f64 * 100.0;
    assert_eq!(success_rate, 0.0);
    assert!(WORKER::stats("never-registered").await.is_none());
}

fn failing_install() -> BoxFuture {
    Box::pin(async { Err(Error::validation("SMTP host missing from config")) })
}
fn good_install() -> BoxFuture {
    Box::pin(async { WORKER::register("installed-ok", |_ctx| async { Ok(()) }).await })
}
fn panicking_install() -> BoxFuture {
    Box::pin(async { panic!("install exploded") })
}
static INSTALLS: [InstallRegistration; 3] = [
    InstallRegistration {
        file: "src/workers/a_broken.rs",
        path: "/x/src/workers/a_broken.rs",
        install: failing_install,
    },
    InstallRegistration {
        file: "src/workers/b_good.rs",
        path: "/x/src/workers/b_good.rs",
        install: good_install,
    },
    InstallRegistration {
        file: "src/workers/c_panics.rs",
        path: "/x/src/workers/c_panics.rs",
        install: panicking_install,
    },
];

#[tokio::test]
async fn start_installs_every_file_and_lists_each_failure() {
    let err = Workers::new()
        .config(AppConfig::from_value(json!({"smtp": {}})))
        .workers_from(|manager| run_installs(manager, &INSTALLS))
        .workers_from(|_manager| async {
            WORKER::register("from-closure", |ctx| async move {
                assert_eq!(ctx.config().get::<Value>("smtp"), Some(json!({})));
                Ok(())
            })
            .await
        })
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 worker file(s) failed to install:\n  src/workers/a_broken.rs: SMTP host missing from config\n  src/workers/c_panics.rs: install() panicked: install exploded"
    );
    // The good file and the closure after the failures were still installed.
    WORKER::run("installed-ok", None).await.unwrap();
    WORKER::run("from-closure", None).await.unwrap();
    // Each file installs once per process, however often it is asked.
    run_installs(WorkerManager::global().clone(), &INSTALLS)
        .await
        .unwrap();
}
