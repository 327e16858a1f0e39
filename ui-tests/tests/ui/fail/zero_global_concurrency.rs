use worker_core::prelude::*;

#[worker("sync", global_concurrency = 0)]
async fn sync(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
