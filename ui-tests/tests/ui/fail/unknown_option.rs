use worker_core::prelude::*;

#[worker("send-email", retries = 3)]
async fn send_email(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
