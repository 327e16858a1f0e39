use worker_core::prelude::*;

#[worker("cleanup", unique = "user_id")]
async fn cleanup(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
