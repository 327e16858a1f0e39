//! Limits declared on the worker: at most 4 syncs at once in the whole
//! cluster (in this demo, the process), at most one per account, and at
//! most 50 starts a second. Calls beyond them wait as `queued`, and an
//! account with a backlog doesn't hold back the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct AccountSync {
    pub account: String,
}

/// Syncs executing now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

#[worker(
    "sync-account",
    global_concurrency = 4,
    rate = "50/1s",
    limit_by = "account",
    key_concurrency = 1
)]
/// Returns how many syncs were executing when it started, itself included.
pub async fn sync_account(ctx: WorkerContext, job: AccountSync) -> Result<usize> {
    let at_once = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    ctx.sleep(Duration::from_millis(40)).await;
    ctx.debug(&format!("synced account {}", job.account));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(at_once)
}
