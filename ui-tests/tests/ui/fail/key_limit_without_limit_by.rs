use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct SyncJob {
    account_id: String,
}

#[worker("sync-crm", key_concurrency = 1, key_rate = "10/1m")]
async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> {
    let _ = (ctx, job.account_id);
    Ok(())
}

fn main() {}
