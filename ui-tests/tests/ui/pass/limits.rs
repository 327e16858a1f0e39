//! Every cluster-wide limit reaches the worker's options exactly as the
//! builder would set it, and `limit_by` compiles because the payload has
//! the field it names.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct SyncJob {
    account_id: String,
    contacts: u32,
}

static SYNCED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

#[worker("sync-crm",
    concurrency = 4,
    global_concurrency = 16,
    rate = "100/1m",
    limit_by = "account_id",
    key_concurrency = 1,
    key_rate = "10/1m",
)]
async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> {
    let _ = ctx;
    SYNCED.lock().unwrap().push((job.account_id, job.contacts));
    Ok(())
}

// A blocking worker, a rate with only a per-key limit, and periods written
// in other units: the runtime gets the same rates.
#[worker(blocking, rate = "100/60s", limit_by = "account_id", key_rate = "2/1500µs")]
fn export_contacts(ctx: WorkerContext, job: SyncJob) -> Result<()> {
    let _ = (ctx, job.account_id, job.contacts);
    Ok(())
}

#[tokio::main]
async fn main() {
    let sync = WorkerManager::global().options("sync-crm").unwrap();
    assert_eq!(
        sync,
        WorkerOptions::new()
            .concurrency(4)
            .global_concurrency(16)
            .rate("100/1m")
            .limit_by("account_id")
            .key_concurrency(1)
            .key_rate("10/1m")
    );
    assert_eq!(sync.get_global_concurrency(), Some(16));
    assert_eq!(sync.get_rate(), Some(Rate::new(100, Duration::from_secs(60)).unwrap()));
    assert_eq!(sync.get_limit_by(), Some("account_id"));
    assert_eq!(sync.get_key_concurrency(), Some(1));
    assert_eq!(sync.get_key_rate(), Some(Rate::new(10, Duration::from_secs(60)).unwrap()));

    let export = WorkerManager::global().options("export-contacts").unwrap();
    assert_eq!(export.get_rate(), Some(Rate::new(100, Duration::from_secs(60)).unwrap()));
    assert_eq!(export.get_key_rate(), Some(Rate::new(2, Duration::from_micros(1500)).unwrap()));
    assert_eq!(export.get_global_concurrency(), None);
    assert_eq!(export.get_key_concurrency(), None);

    WORKER::run("sync-crm", Some(json!({"account_id": "acme", "contacts": 3})))
        .await
        .unwrap();
    assert_eq!(*SYNCED.lock().unwrap(), [("acme".to_owned(), 3)]);
}
