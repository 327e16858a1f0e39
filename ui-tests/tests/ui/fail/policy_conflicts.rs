use worker_core::prelude::*;

// queue_limit without concurrency, backoff without retries.
#[worker("import", queue_limit = 10, backoff = "1s")]
async fn import(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

// A cap shorter than the first delay.
#[worker("export", retries = 2, backoff = "1m", backoff_max = "10s")]
async fn export(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
