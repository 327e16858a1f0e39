//! "Nested Directory Organization": notifications/{email,sms,push}.rs.

use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct Notification {
    pub user_id: u64,
    pub message: String,
}

#[worker("notify-email")]
pub async fn notify_email(ctx: WorkerContext, note: Notification) -> Result<()> {
    ctx.info(&format!("Sending email notification to user {}: {}", note.user_id, note.message));
    ctx.sleep(Duration::from_millis(30)).await;
    Ok(())
}
