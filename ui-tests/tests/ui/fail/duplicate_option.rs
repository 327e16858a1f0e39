use worker_core::prelude::*;

#[worker("send-email", timeout = "5s", timeout = "10s")]
async fn send_email(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker("report", name = "generate-report")]
async fn report(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
