//! `name = "…"` names the worker like the leading literal does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use worker_core::prelude::*;

static RAN: AtomicBool = AtomicBool::new(false);

#[worker(timeout = "2s", name = "generate-report")]
async fn report(ctx: WorkerContext, user_id: u64) -> Result<()> {
    assert_eq!(user_id, 7);
    assert_eq!(ctx.timeout(), Some(Duration::from_secs(2)));
    RAN.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::main]
async fn main() {
    WORKER::run("generate-report", Some(json!(7)))
        .await
        .unwrap();
    assert!(RAN.load(Ordering::SeqCst));
    assert!(
        WORKER::run("report", None)
            .await
            .unwrap_err()
            .is_not_registered()
    );
}
