use worker_core::prelude::*;

#[worker("resize-image", blocking = "yes")]
fn resize(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
