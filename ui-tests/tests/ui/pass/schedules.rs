//! `every`, `cron` with `tz`, and `local`: the timers start with
//! `Workers::start()`, on the runtime that calls it.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use worker_core::prelude::*;

static CLEANUPS: AtomicU32 = AtomicU32::new(0);

#[worker("cleanup", every = "20ms", local)]
async fn cleanup(ctx: WorkerContext) -> Result<()> {
    assert_eq!(ctx.payload(), None);
    CLEANUPS.fetch_add(1, SeqCst);
    Ok(())
}

#[worker("nightly-report", cron = "0 3 * * *", tz = "Europe/Berlin")]
async fn nightly_report(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[tokio::main]
async fn main() {
    let manager = Workers::new().start().await.unwrap();
    let options = manager.options("nightly-report").unwrap();
    assert_eq!(options.get_cron(), Some("0 3 * * *"));
    assert_eq!(options.get_tz(), Some("Europe/Berlin"));
    let cleanup = manager.options("cleanup").unwrap();
    assert_eq!(cleanup.get_every(), Some(Duration::from_millis(20)));
    assert!(cleanup.is_local());

    // The timer ticks by itself (waited for, not timed: CI machines stall).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while CLEANUPS.load(SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the timer never ticked 3 times");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.shutdown().await.unwrap();
    let after = CLEANUPS.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(CLEANUPS.load(SeqCst), after, "shutdown stopped the timer");
}
