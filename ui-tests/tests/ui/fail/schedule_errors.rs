use worker_core::prelude::*;

// An hour that doesn't exist, and a zone that doesn't.
#[worker("nightly", cron = "0 25 * * *")]
async fn nightly(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("report", cron = "0 3 * * *", tz = "Europe/Atlantis")]
async fn report(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

// Two schedules, and a zone without a cron expression.
#[worker("cleanup", every = "15m", cron = "0 * * * *")]
async fn cleanup(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("digest", every = "1h", tz = "Europe/Berlin")]
async fn digest(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
