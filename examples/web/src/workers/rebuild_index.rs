//! A slow, cooperative worker: rebuilds a (pretend) search index for
//! `seconds`, reporting each percent, and stops as soon as it is cancelled.
//! With no payload it takes 30 s: long enough to cancel from the page.

use std::time::Duration;

use worker_core::prelude::*;

use crate::payloads::{Payload, Rebuild, invalid};

#[worker("rebuild-index", timeout = "15m")]
pub async fn rebuild_index(ctx: WorkerContext, request: Option<Rebuild>) -> Result<()> {
    request
        .check()
        .map_err(|detail| Error::validation(invalid(ctx.worker_name(), &detail)))?;
    let seconds = request.map_or(30, |r| r.seconds);
    let step = Duration::from_millis(seconds * 10); // 100 steps
    ctx.info(&format!("Rebuilding the index ({seconds}s)"));
    for progress in 0..=100u64 {
        ctx.send(json!({"stage": "indexing", "progress": progress}))
            .await?;
        if progress < 100 {
            ctx.sleep(step).await; // returns early on cancel
        }
        if ctx.is_cancelled() {
            ctx.warn(&format!("cancelled at {progress}%"));
            return Ok(()); // the run ends as cancelled either way
        }
    }
    ctx.info("Index rebuilt");
    Ok(())
}
