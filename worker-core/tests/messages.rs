//! Progress messages never fail a run: a reader that falls behind holds the
//! worker back instead, nothing is dropped, order is kept, and unread
//! messages stay bounded. Memory is measured with a counting allocator, so
//! this file is its own test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use worker_core::DEFAULT_MESSAGE_BUFFER;
use worker_core::prelude::*;

/// Counts live heap bytes, to measure what a held run keeps.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

/// A worker that waits between chunks of messages: where the hold applies.
async fn chunked(manager: &WorkerManager, emitted: Arc<AtomicU64>) {
    manager
        .register("chunked", move |ctx| {
            let emitted = emitted.clone();
            async move {
                for i in 0..200_000u64 {
                    // About 200 bytes each on the heap: a map and a string.
                    ctx.emit(json!({"i": i, "note": "x".repeat(100)}))?;
                    emitted.fetch_add(1, SeqCst);
                    if i % 10 == 9 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(())
            }
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_halfway_holds_a_bounded_backlog() {
    let manager = WorkerManager::new();
    let emitted = Arc::new(AtomicU64::new(0));
    chunked(&manager, emitted.clone()).await;
    let baseline = LIVE.load(SeqCst);

    let mut handle = manager.call("chunked", None, None).await.unwrap();
    let mut read = 0u64;
    while read < 50_000 {
        let message = handle.recv().await.unwrap();
        assert_eq!(message["i"], read);
        read += 1;
    }
    // The reader stops. Wait until the worker has stopped too.
    let mut last = emitted.load(SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = emitted.load(SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    let ahead = last - read;
    let buffer = DEFAULT_MESSAGE_BUFFER as u64;
    // The buffer, what the reader had taken but not yet handed out (at most
    // one buffer), and one chunk between two waits.
    assert!(
        ahead <= 2 * buffer + 10,
        "the worker ran {ahead} messages ahead of a reader that stopped"
    );
    let held = LIVE.load(SeqCst) - baseline;
    // 2,058 messages of about 250 bytes, and the run itself; an unbounded
    // buffer would hold 150,000 of them, over 30 MB.
    assert!(
        held < 2 << 20,
        "a stopped reader holds {held} bytes of messages"
    );
    assert!(!handle.is_finished(), "held back, not failed");

    // Awaiting the result detaches the reader: the worker goes on and ends.
    handle.await_result().await.unwrap();
    assert_eq!(emitted.load(SeqCst), 200_000);
    let stats = manager.stats("chunked").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (1, 0));
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
