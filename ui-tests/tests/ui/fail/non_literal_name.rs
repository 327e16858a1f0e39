use worker_core::prelude::*;

const NAME: &str = "send-email";

#[worker(send_email)]
async fn send_email(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[worker(NAME)]
async fn send_email_too(ctx: WorkerContext) -> Result<()> {
    let _ = (ctx, NAME);
    Ok(())
}

fn main() {}
