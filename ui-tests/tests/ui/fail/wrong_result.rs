use worker_core::prelude::*;

#[worker]
async fn returns_a_number(ctx: WorkerContext) -> Result<u32> {
    let _ = ctx;
    Ok(7)
}

fn main() {}
