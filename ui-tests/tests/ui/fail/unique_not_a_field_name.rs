use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct Email {
    user_id: u64,
}

#[worker("send-email", unique = "")]
async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    let _ = (ctx, email.user_id);
    Ok(())
}

#[worker("send-receipt", unique = "user id")]
async fn send_receipt(ctx: WorkerContext, email: Email) -> Result<()> {
    let _ = (ctx, email.user_id);
    Ok(())
}

fn main() {}
