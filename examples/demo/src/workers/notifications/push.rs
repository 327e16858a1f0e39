//! "Multiple Workers Per File": an `install()` may register several.

use std::time::Duration;

use worker_core::prelude::*;

pub async fn install() -> Result<()> {
    WORKER::register("notify-push", |ctx| async move {
        ctx.info("Sending push notification");
        ctx.sleep(Duration::from_millis(30)).await;
        Ok(())
    })
    .await?;
    WORKER::register("notify-push-silent", |ctx| async move {
        ctx.debug("Sending silent push (badge update)");
        Ok(())
    })
    .await?;
    Ok(())
}
