//! A flaky upstream, declared with its policy: the CRM answers "busy" to
//! the first two attempts, and `retries = 3` with a doubling `backoff`
//! rides it out. The report it returns comes back typed through
//! `handle.await_output::<SyncReport>()`.

use serde::{Deserialize, Serialize};
use worker_core::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
pub struct SyncReport {
    pub contacts: u32,
    pub attempts: u32,
}

#[worker("sync-crm", timeout = "5s", retries = 3, backoff = "50ms", concurrency = 2)]
pub async fn sync_crm(ctx: WorkerContext) -> Result<SyncReport> {
    if ctx.attempt() < 3 {
        return Err(Error::msg(format!(
            "the CRM is busy (attempt {})",
            ctx.attempt()
        )));
    }
    ctx.info("CRM synced");
    Ok(SyncReport {
        contacts: 128,
        attempts: ctx.attempt(),
    })
}
