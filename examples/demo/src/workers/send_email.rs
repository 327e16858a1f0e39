//! Example 1 of the seed: sending an email, here as a typed `#[worker]`.
//! The payload is checked before the body runs: a call without `to` fails
//! with "invalid payload for worker 'send-email': missing field `to`".

use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct Email {
    pub to: String,
    #[serde(default = "no_subject")]
    pub subject: String,
    #[serde(default)]
    pub body: String,
}

fn no_subject() -> String {
    "No Subject".to_owned()
}

#[worker("send-email", timeout = "5s")]
pub async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    if !email.to.contains('@') {
        return Err(Error::validation(format!("'{}' is not an email address", email.to)));
    }
    ctx.info(&format!("Sending email to: {}", email.to));
    if ctx.is_development() {
        ctx.debug(&format!("DEV MODE - email to {} with subject: {}", email.to, email.subject));
    }
    // The SMTP round trip, simulated.
    ctx.sleep(Duration::from_millis(150)).await;
    ctx.emit(json!({"status": "sent", "to": email.to, "subject": email.subject, "bytes": email.body.len()}))?;
    ctx.info("Email sent successfully");
    Ok(())
}
