//! Example 2 of the seed: processing an upload in four steps, registered the
//! seed's way, from an `install()` fn. The file name has a dash: discovery
//! turns it into a valid module name.

use std::path::PathBuf;
use std::time::Duration;

use worker_core::prelude::*;

include!("simulate.inc.rs");

pub async fn install() -> Result<()> {
    WORKER::register("process-upload", |ctx| async move {
        let payload = ctx
            .payload()
            .ok_or_else(|| Error::validation("Payload required"))?;
        let file_path = PathBuf::from(
            payload["file_path"]
                .as_str()
                .ok_or_else(|| Error::validation("file_path required"))?,
        );
        ctx.info(&format!("Processing file: {}", file_path.display()));

        let steps = ["validate", "process", "thumbnail", "save"];
        for (index, step) in steps.iter().enumerate() {
            ctx.emit(json!({"step": step, "progress": (index + 1) * 25}))?;
            match *step {
                "validate" => {
                    let size = tokio::fs::metadata(&file_path).await?.len();
                    if size == 0 {
                        return Err(Error::validation(format!("{} is empty", file_path.display())));
                    }
                }
                "process" => {
                    let text = tokio::fs::read_to_string(&file_path).await?;
                    let processed = file_path.with_extension("processed.txt");
                    tokio::fs::write(&processed, text.to_uppercase()).await?;
                }
                _ => {}
            }
            simulate_work(&ctx, Duration::from_millis(120)).await?;
        }
        ctx.info("File processing complete");
        Ok(())
    })
    .await?;
    Ok(())
}
