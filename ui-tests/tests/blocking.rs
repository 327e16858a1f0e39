//! `#[worker(blocking)]` on a two-thread runtime: a blocking fn's run ends at
//! its deadline even though its thread sleeps on, and the async workers
//! around it keep their timeouts and cancellation meanwhile.
//!
//! Only the global manager is used, and it is never shut down: it is shared
//! by every test in this binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use worker_core::prelude::*;

/// Set by a blocking fn when its two-second sleep is over.
static SLEPT_TO_THE_END: AtomicBool = AtomicBool::new(false);
static STARTED_BEFORE_CANCEL: AtomicBool = AtomicBool::new(false);
static SLEPT_THROUGH_CANCEL: AtomicBool = AtomicBool::new(false);

#[worker("sleeps-past-its-deadline", blocking, timeout = "100ms")]
fn sleeps_past_its_deadline(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    std::thread::sleep(Duration::from_secs(2));
    SLEPT_TO_THE_END.store(true, Ordering::SeqCst);
    Ok(())
}

#[worker("sleeps-through-cancel", blocking)]
fn sleeps_through_cancel(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    STARTED_BEFORE_CANCEL.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    SLEPT_THROUGH_CANCEL.store(true, Ordering::SeqCst);
    Ok(())
}

#[worker("panics-on-its-thread", blocking)]
fn panics_on_its_thread(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    panic!("corrupt image");
}

#[worker("async-with-a-deadline", timeout = "50ms")]
async fn async_with_a_deadline(ctx: WorkerContext) -> Result<()> {
    ctx.sleep(Duration::from_secs(30)).await;
    Ok(())
}

#[worker("waits-to-be-cancelled")]
async fn waits_to_be_cancelled(ctx: WorkerContext) -> Result<()> {
    ctx.cancelled().await;
    Ok(())
}

/// Waits (at most ten seconds) for a blocking fn to set `flag`.
async fn eventually(flag: &AtomicBool) -> bool {
    for _ in 0..1000 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_run_times_out_while_its_thread_sleeps_and_async_runs_go_on() {
    let blocking = tokio::spawn(WORKER::run("sleeps-past-its-deadline", None));

    // While the blocking fn sleeps, an async run still times out...
    let err = WORKER::run("async-with-a-deadline", None)
        .await
        .expect_err("the async run should time out");
    assert!(err.is_timeout(), "{err}");

    // ...and another can be cancelled.
    let handle = WORKER::call("waits-to-be-cancelled", None, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    handle.cancel().await.unwrap_or_else(|err| panic!("{err}"));
    let err = handle
        .await_result()
        .await
        .expect_err("the cancelled run should fail");
    assert!(err.is_cancelled(), "{err}");

    // The blocking run timed out at its deadline, not when its fn returned.
    let err = match blocking.await {
        Ok(result) => result.expect_err("the blocking run should time out"),
        Err(join_error) => panic!("{join_error}"),
    };
    assert!(err.is_timeout(), "{err}");
    assert!(
        !SLEPT_TO_THE_END.load(Ordering::SeqCst),
        "the run should end before the fn's two-second sleep does"
    );
    let listed = WORKER::running_for("sleeps-past-its-deadline")
        .await
        .unwrap_or_default();
    assert!(listed.is_empty(), "still listed: {listed:?}");

    // The fn itself goes on to its end in the background.
    assert!(eventually(&SLEPT_TO_THE_END).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_blocking_run_ends_without_waiting_for_its_fn() {
    let handle = WORKER::call("sleeps-through-cancel", None, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    // A run cancelled before it starts never calls its fn at all.
    assert!(eventually(&STARTED_BEFORE_CANCEL).await);
    handle.cancel().await.unwrap_or_else(|err| panic!("{err}"));
    let err = handle
        .await_result()
        .await
        .expect_err("the cancelled run should fail");
    assert!(err.is_cancelled(), "{err}");
    assert!(
        !SLEPT_THROUGH_CANCEL.load(Ordering::SeqCst),
        "the run should end before the fn's two-second sleep does"
    );
    assert!(eventually(&SLEPT_THROUGH_CANCEL).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_blocking_thread_fails_the_run_as_a_panic() {
    let err = WORKER::run("panics-on-its-thread", None)
        .await
        .expect_err("the run should fail");
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.panic_message(), Some("corrupt image"));
}
