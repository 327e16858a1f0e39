//! Example 4 of the seed: a report built in stages, each reported to the
//! caller as progress.

use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct ReportRequest {
    pub user_id: i64,
    #[serde(rename = "type", default = "monthly")]
    pub kind: String,
}

fn monthly() -> String {
    "monthly".to_owned()
}

#[worker("generate-report", timeout = "10s")]
pub async fn generate_report(ctx: WorkerContext, request: ReportRequest) -> Result<()> {
    ctx.info(&format!("Generating {} report for user {}", request.kind, request.user_id));
    let stages = [
        ("fetching_data", 10),
        ("processing", 40),
        ("generating_pdf", 70),
        ("uploading", 90),
    ];
    let mut rows = Vec::new();
    for (stage, progress) in stages {
        ctx.emit(json!({"stage": stage, "progress": progress}))?;
        ctx.sleep(Duration::from_millis(150)).await;
        if ctx.is_cancelled() {
            return Ok(()); // the run ends as cancelled either way
        }
        rows.push(format!("{stage}: done"));
    }
    let dir = ctx.config().get::<String>("reports.dir").unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let path = std::path::Path::new(&dir).join(format!("report-{}-{}.txt", request.user_id, request.kind));
    tokio::fs::write(&path, rows.join("\n")).await?;
    let url = format!("file://{}", path.display());
    ctx.emit(json!({"stage": "complete", "progress": 100, "url": url}))?;
    ctx.info(&format!("Report generated: {url}"));
    Ok(())
}
