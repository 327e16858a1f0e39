//! A report built in stages, each reported to the caller as progress: the
//! run the dashboard's "Start demo run" button starts.

use std::time::Duration;

use worker_core::prelude::*;

use crate::payloads::{Payload, ReportRequest, invalid};

/// Stage names by progress, in order: ten steps of `step_ms` from 0 to 100.
const STAGES: [(u64, &str); 11] = [
    (0, "starting"),
    (10, "fetching_data"),
    (20, "fetching_data"),
    (30, "fetching_data"),
    (40, "processing"),
    (50, "processing"),
    (60, "processing"),
    (70, "rendering"),
    (80, "rendering"),
    (90, "uploading"),
    (100, "complete"),
];

#[worker("generate-report", timeout = "10s")]
pub async fn generate_report(ctx: WorkerContext, request: ReportRequest) -> Result<()> {
    request
        .check()
        .map_err(|detail| Error::validation(invalid(ctx.worker_name(), &detail)))?;
    ctx.info(&format!(
        "Generating {} report for user {}",
        request.kind, request.user_id
    ));
    for (index, (progress, stage)) in STAGES.into_iter().enumerate() {
        if index > 0 {
            ctx.sleep(Duration::from_millis(request.step_ms)).await;
            if ctx.is_cancelled() {
                ctx.warn(&format!("cancelled at {progress}%"));
                return Ok(()); // the run ends as cancelled either way
            }
        }
        let mut message = json!({"stage": stage, "progress": progress});
        if progress == 100 {
            message["url"] = json!(format!("/reports/{}-{}.pdf", request.user_id, request.kind));
        }
        ctx.send(message).await?;
    }
    ctx.info("Report generated");
    Ok(())
}
