//! Without a name, the worker is named after its function in kebab-case.

use std::sync::atomic::{AtomicUsize, Ordering};

use worker_core::prelude::*;

static CLEANED: AtomicUsize = AtomicUsize::new(0);
static TYPED: AtomicUsize = AtomicUsize::new(0);

#[worker]
async fn cleanup_temp_files(ctx: WorkerContext) -> Result<()> {
    assert!(ctx.payload().is_none_or(Value::is_null));
    CLEANED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[worker]
async fn __type_check_(_ctx: WorkerContext) -> Result<()> {
    TYPED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[worker]
async fn r#type(_ctx: WorkerContext) -> Result<()> {
    TYPED.fetch_add(10, Ordering::SeqCst);
    Ok(())
}

#[tokio::main]
async fn main() {
    WORKER::run("cleanup-temp-files", None).await.unwrap();
    WORKER::run("cleanup-temp-files", Some(json!(null)))
        .await
        .unwrap();
    assert_eq!(CLEANED.load(Ordering::SeqCst), 2);

    WORKER::run("type-check", None).await.unwrap();
    WORKER::run("type", None).await.unwrap();
    assert_eq!(TYPED.load(Ordering::SeqCst), 11);

    let names = WORKER::definitions().await.unwrap();
    assert_eq!(names, ["cleanup-temp-files", "type", "type-check"]);
}
