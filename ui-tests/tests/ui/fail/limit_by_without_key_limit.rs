use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct SyncJob {
    account_id: String,
}

#[worker("sync-crm", limit_by = "account_id", global_concurrency = 4)]
async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> {
    let _ = (ctx, job.account_id);
    Ok(())
}

fn main() {}
