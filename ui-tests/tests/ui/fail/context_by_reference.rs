use worker_core::prelude::*;

#[worker]
async fn borrowed(ctx: &WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
