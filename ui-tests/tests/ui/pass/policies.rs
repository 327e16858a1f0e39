//! Every run-policy key, and a typed output read back with `await_output`.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use worker_core::prelude::*;

static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct SyncReport {
    synced: u32,
    attempt: u32,
}

#[worker("sync-crm",
    timeout = "30s",
    retries = 3,
    backoff = "1ms",
    backoff_max = "5ms",
    concurrency = 4,
    queue_limit = 100,
)]
async fn sync_crm(ctx: WorkerContext, synced: u32) -> Result<SyncReport> {
    FLAKY_ATTEMPTS.fetch_add(1, SeqCst);
    if ctx.attempt() < 3 {
        return Err(Error::msg("the CRM is busy"));
    }
    Ok(SyncReport {
        synced,
        attempt: ctx.attempt(),
    })
}

#[worker(blocking, retries = 1, backoff = "1ms")]
fn count_rows(ctx: WorkerContext) -> Result<usize> {
    if ctx.attempt() == 1 {
        panic!("the first attempt panics");
    }
    Ok(7)
}

#[tokio::main]
async fn main() {
    let options = WorkerManager::global().options("sync-crm").unwrap();
    assert_eq!(options.get_timeout(), Some(Duration::from_secs(30)));
    assert_eq!(options.get_retries(), 3);
    assert_eq!(options.get_backoff(), Duration::from_millis(1));
    assert_eq!(options.get_backoff_max(), Duration::from_millis(5));
    assert_eq!(options.get_concurrency(), Some(4));
    assert_eq!(options.get_queue_limit(), Some(100));

    let handle = WORKER::call("sync-crm", None, Some(json!(12))).await.unwrap();
    let report: SyncReport = handle.await_output().await.unwrap();
    assert_eq!(report, SyncReport { synced: 12, attempt: 3 });
    assert_eq!(FLAKY_ATTEMPTS.load(SeqCst), 3);
    let stats = WORKER::stats("sync-crm").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (1, 0, 2));

    let rows = WORKER::call("count-rows", None, None).await.unwrap();
    assert_eq!(rows.await_output::<usize>().await.unwrap(), 7);
}
