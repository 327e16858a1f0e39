//! Progress messages never fail a run: a reader that falls behind holds the
//! worker back instead, nothing is dropped and order is kept. (That unread
//! messages stay bounded is measured in `reliability.rs`, which counts heap
//! bytes.)

use std::time::Duration;

use worker_core::prelude::*;

/// The seed's batch processor without its `sleep` between items: one
/// progress message per item, no wait at all.
async fn batch(manager: &WorkerManager) {
    manager
        .register("batch", |ctx| async move {
            let items = ctx.payload().and_then(|p| p["items"].as_u64()).unwrap_or(0);
            for i in 0..items {
                ctx.emit(json!({"current": i + 1, "total": items}))?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

async fn read_batch(manager: &WorkerManager, items: u64, slow: bool) {
    let mut handle = manager
        .call("batch", None, Some(json!({"items": items})))
        .await
        .unwrap();
    let mut next = 1;
    while let Some(message) = handle.recv().await {
        assert_eq!(message["current"], next, "in order, once");
        next += 1;
        if slow && next % 1000 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(next - 1, items, "every message arrived");
    handle.await_result().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_batch_pattern_succeeds_with_a_reader_keeping_up() {
    let manager = WorkerManager::new();
    batch(&manager).await;
    read_batch(&manager, 100_000, false).await;
    let stats = manager.stats("batch").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_batch_pattern_succeeds_with_a_slow_reader() {
    let manager = WorkerManager::new();
    batch(&manager).await;
    read_batch(&manager, 100_000, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_from_a_spawned_task_with_a_clone_of_the_context() {
    let manager = WorkerManager::new();
    manager
        .register("fan-out", |ctx| async move {
            let helper = tokio::spawn({
                let ctx = ctx.clone();
                async move {
                    for i in 0..20_000u64 {
                        ctx.emit(json!(i))?;
                        if i % 100 == 99 {
                            tokio::task::yield_now().await;
                        }
                    }
                    Ok::<_, Error>(())
                }
            });
            helper.await.map_err(Error::other)??;
            ctx.emit(json!("done"))?;
            Ok(())
        })
        .await
        .unwrap();
    let mut handle = manager.call("fan-out", None, None).await.unwrap();
    let mut got = Vec::new();
    while let Some(message) = handle.recv().await {
        got.push(message);
        if got.len() % 5_000 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut expected: Vec<Value> = (0..20_000u64).map(|i| json!(i)).collect();
    expected.push(json!("done"));
    assert_eq!(got, expected, "every message once, in order");
    handle.await_result().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_run_still_times_out_and_can_be_cancelled() {
    let manager = WorkerManager::new();
    manager.set_message_buffer(4);
    manager
        .register("chatty", |ctx| async move {
            loop {
                ctx.emit(json!("tick"))?;
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();

    let timed = manager
        .call("chatty", Some(Duration::from_millis(50)), None)
        .await
        .unwrap();
    let mut cancelled = manager.call("chatty", None, None).await.unwrap();
    // Neither handle reads: both runs are held on a full buffer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(timed.is_finished(), "the deadline runs while held");
    assert!(!cancelled.is_finished());
    cancelled.cancel().await.unwrap();
    let mut got = 0;
    while cancelled.recv().await.is_some() {
        got += 1;
    }
    assert_eq!(got, 4, "what was emitted before the hold still arrives");
    assert!(cancelled.await_result().await.unwrap_err().is_cancelled());
    assert!(timed.await_result().await.unwrap_err().is_timeout());
    assert_eq!(manager.in_flight(), 0);
}
