//! Example 3 of the seed: removing stale temporary files. `#[worker]` with
//! no name: the fn name gives it, `cleanup-temp-files`. The seed runs it
//! from a hand-written `loop { sleep(3600s); WORKER::run(..) }`; here
//! `every` declares the schedule (short, so that the tour sees it tick),
//! with no overlap and no catching up after a stall.

use std::time::{Duration, SystemTime};

use worker_core::prelude::*;

/// Files older than this are removed (`cleanup.max_age_secs` in the config).
const DEFAULT_MAX_AGE_SECS: u64 = 24 * 3600;

#[worker(every = "1s")]
pub async fn cleanup_temp_files(ctx: WorkerContext) -> Result<()> {
    let dir = ctx
        .config()
        .get::<String>("cleanup.dir")
        .ok_or_else(|| Error::validation("config has no cleanup.dir"))?;
    let max_age = Duration::from_secs(
        ctx.config()
            .get::<u64>("cleanup.max_age_secs")
            .unwrap_or(DEFAULT_MAX_AGE_SECS),
    );
    ctx.info(&format!("Starting cleanup of {dir}"));

    let cutoff = SystemTime::now() - max_age;
    let mut removed = 0;
    let mut entries = tokio::fs::read_dir(&dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let meta = entry.metadata().await?;
        if meta.is_file() && meta.modified()? <= cutoff {
            tokio::fs::remove_file(entry.path()).await?;
            removed += 1;
        }
    }
    ctx.emit(json!({"files_removed": removed, "directory": dir}))?;
    ctx.info(&format!("Cleanup complete: {removed} files removed"));
    Ok(())
}
