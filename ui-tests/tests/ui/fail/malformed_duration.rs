use worker_core::prelude::*;

#[worker("slow", timeout = "5x")]
async fn slow(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("slower", timeout = "30s1m")]
async fn slower(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
