use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct Email {
    to: String,
    user_id: u64,
}

#[worker("send-email", unique = "no_such_field")]
async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    let _ = (ctx, email.to, email.user_id);
    Ok(())
}

fn main() {}
