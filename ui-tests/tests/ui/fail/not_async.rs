use worker_core::prelude::*;

#[worker]
fn not_async(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
