use worker_core::prelude::*;

#[worker]
// Any output that is Serialize will do, but the error must be worker_core's.
async fn returns_a_number(ctx: WorkerContext) -> std::result::Result<u32, String> {
    let _ = ctx;
    Ok(7)
}

fn main() {}
