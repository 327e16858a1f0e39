use worker_core::prelude::*;

#[worker("high", priority = "high")]
async fn high(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("low", priority = -2147483649)]
async fn low(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("half", priority = 1.5)]
async fn half(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
