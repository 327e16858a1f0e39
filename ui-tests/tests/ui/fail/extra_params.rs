use worker_core::prelude::*;

#[worker]
async fn too_many(ctx: WorkerContext, to: String, subject: String) -> Result<()> {
    let _ = (ctx, to, subject);
    Ok(())
}

fn main() {}
