use worker_core::prelude::*;

#[worker("sync", retries = -1, backoff = "soon", backoff_max = 5, concurrency = 0, queue_limit = "ten")]
async fn sync(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
