//! Load, back-pressure and memory: shutdown under 10,000 runs, messages
//! nobody reads, runs started and cancelled by the hundred thousand.
//!
//! Memory is measured exactly: this test binary counts live heap bytes
//! through a wrapping global allocator. `RELIABILITY_SCALE=10` multiplies the
//! run counts for a soak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use worker_core::DEFAULT_MESSAGE_BUFFER;
use worker_core::prelude::*;

/// The system allocator, counting the bytes it has handed out and not yet
/// got back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments
// unchanged; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Relaxed)
}

fn scale(n: usize) -> usize {
    let factor: usize = std::env::var("RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    n * factor
}

/// Waits until every run has ended and its task is freed (fire-and-forget
/// runs may still be queued), so memory is read at rest.
async fn settle(manager: &WorkerManager) {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..60_000 {
        if manager.in_flight() == 0 && metrics.num_alive_tasks() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "runs never settled: {} in flight, {} tasks alive",
        manager.in_flight(),
        metrics.num_alive_tasks()
    );
}

/// What a finished run may leave behind, amortized: capacity the runtime
/// and allocator keep (timer wheel, task lists). A run that leaked even one
/// allocation would leave 16 bytes or more.
const RETAINED_PER_RUN: isize = 4;

/// The byte counter is process-wide: tests that read it run one at a time.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn measuring() -> tokio::sync::MutexGuard<'static, ()> {
    MEASURING.lock().await
}

#[tokio::test(start_paused = true)]
async fn shutdown_under_load_returns_within_the_grace_period() {
    let _measuring = measuring().await;
    let manager = WorkerManager::new();
    let grace = Duration::from_millis(300);
    manager.set_grace_period(grace);
    manager
        .register("cooperative", |ctx| async move {
            ctx.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    manager
        .register("stubborn", |_ctx| async move {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..10_000 {
        let name = if i % 2 == 0 {
            "cooperative"
        } else {
            "stubborn"
        };
        handles.push(manager.call(name, None, None).await.unwrap());
    }
    tokio::task::yield_now().await;
    assert_eq!(manager.in_flight(), 10_000);

    let began = tokio::time::Instant::now();
    manager.shutdown().await.unwrap();
    // Virtual time: exact. The stubborn half is dropped at the end of the
    // grace period, and shutdown returns then, not later.
    assert_eq!(began.elapsed(), grace);
    assert_eq!(manager.in_flight(), 0);
    for handle in handles {
        assert!(
            handle.await_result().await.unwrap_err().is_cancelled(),
            "every handle resolves, cancelled"
        );
    }
    assert!(
        manager
            .call("cooperative", None, None)
            .await
            .unwrap_err()
            .is_shutdown()
    );
    assert!(
        manager
            .run("stubborn", None)
            .await
            .unwrap_err()
            .is_shutdown()
    );
    manager.shutdown().await.unwrap(); // harmless
    let (a, b) = (
        manager.stats("cooperative").await.unwrap(),
        manager.stats("stubborn").await.unwrap(),
    );
    assert_eq!(
        (a.cancelled, b.cancelled, a.runs + b.runs),
        (5_000, 5_000, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_nobody_reads_cost_nothing_over_a_million_runs() {
    let _measuring = measuring().await;
    let manager = WorkerManager::new();
    manager
        .register("chatty", |ctx| async move {
            for i in 0..10 {
                ctx.emit(json!({"i": i, "padding": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    manager.run("chatty", None).await.unwrap(); // warm-up: lazily built statics
    settle(&manager).await;
    let before = live_bytes();
    let runs = scale(1_000_000);
    for i in 0..runs {
        if i % 2 == 0 {
            manager.run("chatty", None).await.unwrap();
        } else {
            // A handle that is dropped unread.
            drop(manager.call("chatty", None, None).await.unwrap());
        }
    }
    settle(&manager).await;
    let grown = live_bytes() - before;
    eprintln!("{runs} runs with unread messages: {grown} bytes held afterwards");
    assert!(
        grown < 64 * 1024 + RETAINED_PER_RUN * runs as isize,
        "{grown} bytes still held after {runs} runs"
    );
    assert_eq!(manager.stats("chatty").await.unwrap().runs, runs as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_runs_started_and_cancelled_leave_nothing_behind() {
    let _measuring = measuring().await;
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(5));
    manager
        .register("sleeper", |ctx| async move {
            ctx.set_state("held", json!("per-run state")).await?;
            ctx.emit(json!("started"))?;
            ctx.sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    // Warm-up, so lazily built statics don't count: one run, timed out.
    let _ = manager
        .call("sleeper", Some(Duration::from_millis(1)), None)
        .await
        .unwrap()
        .await_result()
        .await;
    settle(&manager).await;
    let before = live_bytes();

    let total = scale(100_000);
    let mut handles = Vec::with_capacity(total);
    for _ in 0..total {
        handles.push(manager.call("sleeper", None, None).await.unwrap());
    }
    let peak = live_bytes() - before;
    // Half by handle, half by id, a thousand at a time.
    for (batch, chunk) in handles.chunks(1_000).enumerate() {
        let cancels = chunk.iter().map(|handle| {
            let manager = manager.clone();
            async move {
                if batch % 2 == 0 {
                    handle.cancel().await
                } else {
                    manager.cancel(handle.id()).await
                }
            }
        });
        for result in futures::future::join_all(cancels).await {
            result.unwrap();
        }
    }
    drop(handles);
    settle(&manager).await;
    let left = live_bytes() - before;
    eprintln!(
        "{total} runs started then cancelled: peak {peak} bytes, {left} bytes held afterwards"
    );
    assert!(
        peak > 100 * total as isize,
        "the runs were really in flight ({peak} bytes)"
    );
    assert!(
        left < 64 * 1024 + RETAINED_PER_RUN * total as isize,
        "{left} bytes still held after {total} cancelled runs (peak {peak})"
    );
    let stats = manager.stats("sleeper").await.unwrap();
    assert_eq!((stats.cancelled, stats.running), (total as u64, 0));
    assert!(manager.running().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_everything_and_slows_the_worker_down() {
    let _measuring = measuring().await;
    let manager = WorkerManager::new();
    manager.set_message_buffer(32);
    manager
        .register("producer", |ctx| async move {
            let waiting = ctx
                .payload()
                .and_then(|p| p["wait"].as_bool())
                .unwrap_or(false);
            for i in 0..5_000u64 {
                if waiting {
                    ctx.send(json!(i)).await?;
                } else {
                    ctx.emit(json!(i))?;
                    if i % 8 == 7 {
                        // A wait: where a full buffer holds the worker.
                        tokio::task::yield_now().await;
                    }
                }
            }
            Ok(())
        })
        .await
        .unwrap();

    for wait in [true, false] {
        let mut handle = manager
            .call("producer", None, Some(json!({"wait": wait})))
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(message) = handle.recv().await {
            got.push(message.as_u64().unwrap());
            if got.len() % 64 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await; // a slow reader
            }
        }
        let expected: Vec<u64> = (0..5_000).collect();
        assert_eq!(got, expected, "wait={wait}: in order, once, no gaps");
        handle.await_result().await.unwrap();
    }
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
    let _measuring = measuring().await;
    let manager = WorkerManager::new();
    let emitted = Arc::new(AtomicU64::new(0));
    chunked(&manager, emitted.clone()).await;
    let baseline = live_bytes();

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
    let held = live_bytes() - baseline;
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

/// Heap bytes per run while `runs` runs of `worker` sleep, each polled once.
async fn sleeping_bytes(worker: &'static str, runs: usize) -> isize {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(1));
    let polled = Arc::new(AtomicU64::new(0));
    manager
        .register(worker, {
            let polled = polled.clone();
            move |ctx| {
                let polled = polled.clone();
                async move {
                    polled.fetch_add(1, SeqCst);
                    if ctx.payload().is_none() {
                        return Ok(()); // the warm-up run
                    }
                    if worker == "ctx-sleep" {
                        ctx.sleep(Duration::from_secs(3600)).await;
                    } else {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    // Warm up this thread's view of the manager and the running set.
    manager.run(worker, None).await.unwrap();
    let mut handles = Vec::with_capacity(runs);
    let payload = Some(json!(1));
    let before = live_bytes();
    for _ in 0..runs {
        handles.push(manager.call(worker, None, payload.clone()).await.unwrap());
    }
    while polled.load(SeqCst) < runs as u64 + 1 {
        tokio::task::yield_now().await;
    }
    let per_run = (live_bytes() - before) / runs as isize;
    manager.shutdown().await.unwrap();
    drop(handles);
    settle(&manager).await;
    per_run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctx_sleep_costs_a_run_no_more_than_tokio_sleep() {
    let _measuring = measuring().await;
    let runs = 2_000;
    // Twice each, alternating, so that one-off growth of a shared structure
    // (the timer wheel, the runtime's task list) is seen by both.
    let mut ctx_sleep = isize::MAX;
    let mut tokio_sleep = isize::MAX;
    for _ in 0..2 {
        ctx_sleep = ctx_sleep.min(sleeping_bytes("ctx-sleep", runs).await);
        tokio_sleep = tokio_sleep.min(sleeping_bytes("tokio-sleep", runs).await);
    }
    // A run whose ctx.sleep registered a cancel waiter would carry a Notify
    // and a boxed waiter: 100 bytes or more.
    assert!(
        ctx_sleep <= tokio_sleep + 16,
        "a run sleeping in ctx.sleep holds {ctx_sleep} B, in tokio::time::sleep {tokio_sleep} B"
    );
}
