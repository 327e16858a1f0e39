use worker_core::prelude::*;

#[worker("no-slash", rate = "100")]
async fn no_slash(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("zero-count", rate = "0/1m")]
async fn zero_count(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("not-a-string", rate = 100)]
async fn not_a_string(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
