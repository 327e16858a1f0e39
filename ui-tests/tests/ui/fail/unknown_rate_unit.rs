use worker_core::prelude::*;

#[worker("daily-digest", rate = "10/1d")]
async fn daily_digest(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
