use worker_core::prelude::*;

struct NotDeserialize;

#[worker]
async fn takes_anything(ctx: WorkerContext, payload: NotDeserialize) -> Result<()> {
    let _ = (ctx, payload);
    Ok(())
}

fn main() {}
