//! `blocking` runs a plain fn with a typed payload on tokio's blocking pool.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct Resize {
    width: u32,
    height: u32,
}

static RESIZED: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

#[worker("resize-image", blocking, timeout = "2s")]
fn resize(ctx: WorkerContext, job: Resize) -> Result<()> {
    assert_eq!(ctx.worker_name(), "resize-image");
    // Blocking is allowed here: this is a thread of the blocking pool.
    std::thread::sleep(Duration::from_millis(20));
    RESIZED.lock().unwrap().push((job.width, job.height));
    Ok(())
}

#[worker(blocking = true)]
fn checksum(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Err(Error::msg("checksum mismatch"))
}

#[worker("still-async", blocking = false)]
async fn still_async(ctx: WorkerContext) -> Result<()> {
    let _ = ctx;
    Ok(())
}

#[tokio::main]
async fn main() {
    let manager = WorkerManager::global();
    assert_eq!(
        manager.default_timeout("resize-image"),
        Some(Duration::from_secs(2))
    );

    WORKER::run("resize-image", Some(json!({"width": 640, "height": 480})))
        .await
        .unwrap();
    assert_eq!(*RESIZED.lock().unwrap(), [(640, 480)]);

    // The payload is checked before the fn is sent to a thread.
    let err = WORKER::run("resize-image", Some(json!({"width": "wide"})))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");
    assert_eq!(RESIZED.lock().unwrap().len(), 1);

    // The fn's own error is the run's.
    let err = WORKER::run("checksum", None).await.unwrap_err();
    assert_eq!(err.to_string(), "checksum mismatch");

    WORKER::run("still-async", None).await.unwrap();

    // The function is still an ordinary (non-async) function.
    let _direct: fn(WorkerContext, Resize) -> Result<()> = resize;
}
