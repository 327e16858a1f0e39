//! Sending an email, as a typed `#[worker]`: `to` is required, and must look
//! like an address.

use std::time::Duration;

use worker_core::prelude::*;

use crate::payloads::{Email, Payload, invalid};

#[worker("send-email", timeout = "5s")]
pub async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    email
        .check()
        .map_err(|detail| Error::validation(invalid(ctx.worker_name(), &detail)))?;
    ctx.info(&format!("Sending email to: {}", email.to));
    ctx.send(json!({"status": "connecting", "progress": 0}))
        .await?;
    // The SMTP round trip, simulated.
    ctx.sleep(Duration::from_millis(200)).await;
    if ctx.is_cancelled() {
        return Ok(());
    }
    ctx.send(json!({
        "status": "sent",
        "progress": 100,
        "to": email.to,
        "subject": email.subject,
        "bytes": email.body.len(),
    }))
    .await?;
    ctx.info("Email sent successfully");
    Ok(())
}
