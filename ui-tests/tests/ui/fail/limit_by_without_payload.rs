use worker_core::prelude::*;

#[worker("sync-all", limit_by = "account_id", key_concurrency = 1)]
async fn sync_all(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
