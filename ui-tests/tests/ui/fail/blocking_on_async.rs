use worker_core::prelude::*;

#[worker("resize-image", blocking)]
async fn resize(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
