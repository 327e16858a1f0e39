//! Example 5 of the seed: a batch worker that reports progress per item,
//! and `process-item`, one item on its own, for callers that fan out.

use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct Batch {
    pub items: Vec<Value>,
}

#[worker("batch-processor", timeout = "30s")]
pub async fn batch_processor(ctx: WorkerContext, batch: Batch) -> Result<()> {
    let total = batch.items.len();
    ctx.info(&format!("Processing {total} items"));
    for (index, item) in batch.items.iter().enumerate() {
        let progress = ((index + 1) as f64 / total as f64 * 100.0) as u64;
        ctx.emit(json!({"current": index + 1, "total": total, "progress": progress, "item": item}))?;
        // Small delay to avoid overwhelming external APIs.
        ctx.sleep(Duration::from_millis(40)).await;
        if ctx.is_cancelled() {
            ctx.warn(&format!("cancelled after {} of {total} items", index + 1));
            return Ok(()); // the run ends as cancelled; nothing more to undo
        }
    }
    ctx.info(&format!("Processed {total} items"));
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct Item {
    pub id: u64,
}

#[worker("process-item", timeout = "2s")]
pub async fn process_item(ctx: WorkerContext, item: Item) -> Result<()> {
    // Items take a little longer the larger their id, like real ones.
    ctx.sleep(Duration::from_millis(60 + item.id % 5 * 20)).await;
    ctx.emit(json!({"id": item.id, "done": true}))?;
    Ok(())
}
