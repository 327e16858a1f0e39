//! A typed call with the wrong payload type is refused where it is made,
//! naming the worker and the type it takes.

use worker_core::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    to: String,
}

#[worker("send-email", timeout = "5s")]
async fn send_email(_ctx: WorkerContext, email: Email) -> Result<()> {
    let _ = email.to;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    send_email::call(42).await?;
    Ok(())
}
