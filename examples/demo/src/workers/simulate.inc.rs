// Included by worker files (`include!("simulate.inc.rs")`); discovery skips
// `*.inc.rs`, so it is never a module of its own.

/// Stands in for a slow external call; stops early if the run is cancelled.
async fn simulate_work(ctx: &WorkerContext, duration: Duration) -> Result<()> {
    ctx.sleep(duration).await;
    if ctx.is_cancelled() {
        ctx.warn("cancelled: stopping early");
    }
    Ok(())
}
