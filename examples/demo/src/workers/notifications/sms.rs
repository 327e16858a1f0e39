//! An `install()` file: the seed's convention, beside the `#[worker]` ones.

use std::time::Duration;

use worker_core::prelude::*;

pub async fn install() -> Result<()> {
    WORKER::register("notify-sms", |ctx| async move {
        let phone = ctx
            .payload()
            .and_then(|p| p["phone"].as_str())
            .ok_or_else(|| Error::validation("notify-sms needs a \"phone\" field"))?
            .to_owned();
        ctx.info(&format!("Sending SMS notification to {phone}"));
        ctx.sleep(Duration::from_millis(30)).await;
        Ok(())
    })
    .await
}
