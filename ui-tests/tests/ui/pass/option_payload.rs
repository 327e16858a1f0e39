//! An `Option<T>` payload accepts a run without one.

use std::sync::Mutex;

use worker_core::prelude::*;

static SEEN: Mutex<Vec<Option<u32>>> = Mutex::new(Vec::new());

#[worker("maybe-count")]
async fn maybe_count(_ctx: WorkerContext, count: Option<u32>) -> Result<()> {
    SEEN.lock().unwrap().push(count);
    Ok(())
}

#[tokio::main]
async fn main() {
    WORKER::run("maybe-count", None).await.unwrap();
    WORKER::run("maybe-count", Some(json!(7))).await.unwrap();
    WORKER::run("maybe-count", Some(Value::Null)).await.unwrap();
    assert!(
        WORKER::run("maybe-count", Some(json!("seven")))
            .await
            .unwrap_err()
            .is_validation()
    );
    assert_eq!(*SEEN.lock().unwrap(), [None, Some(7), None]);
}
