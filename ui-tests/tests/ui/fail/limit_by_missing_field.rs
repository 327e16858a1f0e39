use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct SyncJob {
    account_id: String,
    contacts: u32,
}

#[worker("sync-crm", limit_by = "tenant_id", key_concurrency = 1)]
async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> {
    let _ = (ctx, job.account_id, job.contacts);
    Ok(())
}

fn main() {}
