//! `timeout = "…"` becomes the worker's default timeout.

use std::time::Duration;

use worker_core::prelude::*;

#[worker("quick", timeout = "1m30s")]
async fn quick(ctx: WorkerContext) -> Result<()> {
    assert_eq!(ctx.timeout(), Some(Duration::from_secs(90)));
    Ok(())
}

#[worker("precise", timeout = "1s500ms")]
async fn precise(ctx: WorkerContext) -> Result<()> {
    assert_eq!(ctx.timeout(), Some(Duration::from_millis(1500)));
    Ok(())
}

#[worker("slow", timeout = "50ms")]
async fn slow(ctx: WorkerContext) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    let _ = ctx;
    Ok(())
}

#[worker("untimed")]
async fn untimed(ctx: WorkerContext) -> Result<()> {
    assert_eq!(ctx.timeout(), None);
    Ok(())
}

#[tokio::main]
async fn main() {
    let manager = WorkerManager::global();
    assert_eq!(
        manager.default_timeout("quick"),
        Some(Duration::from_secs(90))
    );
    assert_eq!(manager.default_timeout("untimed"), None);

    WORKER::run("quick", None).await.unwrap();
    WORKER::run("precise", None).await.unwrap();
    WORKER::run("untimed", None).await.unwrap();

    let started = std::time::Instant::now();
    let err = WORKER::run("slow", None).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
