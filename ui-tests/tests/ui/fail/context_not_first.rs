use worker_core::prelude::*;

#[worker]
async fn payload_first(email: String, ctx: WorkerContext) -> Result<()> {
    let _ = (email, ctx);
    Ok(())
}

fn main() {}
