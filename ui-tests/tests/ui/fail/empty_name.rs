use worker_core::prelude::*;

#[worker("")]
async fn nameless(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
