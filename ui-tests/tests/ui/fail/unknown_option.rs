use worker_core::prelude::*;

#[worker("send-email", retry = 3)]
async fn send_email(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {}
