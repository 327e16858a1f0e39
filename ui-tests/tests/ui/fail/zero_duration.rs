use worker_core::prelude::*;

#[worker("instant", timeout = "0ms")]
async fn instant(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
