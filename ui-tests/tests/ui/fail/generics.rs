use worker_core::prelude::*;

#[worker]
async fn generic<T: serde::de::DeserializeOwned>(ctx: WorkerContext, payload: T) -> Result<()> {
    let _ = (ctx, payload);
    Ok(())
}

fn main() {}
