use worker_core::prelude::*;

#[worker("send email")]
async fn send_email(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
