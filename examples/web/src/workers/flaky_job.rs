//! A job that ends the way its payload asks, to see every kind of failure
//! on the dashboard and in a run's `outcome` event.

use std::time::Duration;

use worker_core::prelude::*;

use crate::payloads::{FlakyJob, FlakyOutcome};

#[worker("flaky-job", timeout = "1s")]
pub async fn flaky_job(ctx: WorkerContext, job: Option<FlakyJob>) -> Result<()> {
    let outcome = job.map(|job| job.outcome).unwrap_or_default();
    ctx.send(json!({"progress": 0, "asked": format!("{outcome:?}").to_lowercase()}))
        .await?;
    match outcome {
        FlakyOutcome::Ok => {
            ctx.sleep(Duration::from_millis(100)).await;
            ctx.send(json!({"progress": 100})).await?;
            Ok(())
        }
        FlakyOutcome::Error => Err(Error::msg("flaky-job failed, as asked")),
        FlakyOutcome::Panic => panic!("flaky-job panicked, as asked"),
        FlakyOutcome::Timeout => {
            // Sleeps past the 1s timeout; the run is stopped there.
            ctx.sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    }
}
