use worker_core::prelude::*;

struct Opaque;

#[worker("opaque")]
async fn opaque(ctx: WorkerContext) -> Result<Opaque> {
    let _ = ctx;
    Ok(Opaque)
}

fn main() {}
