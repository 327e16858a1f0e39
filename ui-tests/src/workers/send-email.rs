//! A dash in the file name: declared as module `send_email`.

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
pub struct Email {
    pub to: String,
}

#[worker("fixture-send-email")]
async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    ctx.emit(json!({ "module": module_path!(), "to": email.to }))?;
    Ok(())
}

/// Registers a second worker by hand.
pub async fn install() -> Result<()> {
    WORKER::register("fixture-installed-by-send-email", |ctx| async move {
        ctx.emit(json!({ "module": module_path!() }))?;
        Ok(())
    })
    .await
}
