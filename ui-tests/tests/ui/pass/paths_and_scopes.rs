//! Full paths instead of the prelude, awkward function names, and workers
//! declared in a nested module and inside a function body.

use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

mod jobs {
    use super::*;

    /// A function named like the shim's locals still resolves to itself.
    #[worker_core::worker("ctx-named")]
    pub(crate) async fn ctx(
        mut ctx: worker_core::WorkerContext,
        payload: (u8, String),
    ) -> worker_core::Result<()> {
        let _ = &mut ctx;
        assert_eq!(payload, (1, "one".to_owned()));
        RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    #[worker_core::worker]
    async fn payload(_: worker_core::WorkerContext) -> worker_core::Result<()> {
        RUNS.fetch_add(10, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    #[worker_core::worker("local")]
    async fn local(_ctx: worker_core::WorkerContext) -> worker_core::Result<()> {
        RUNS.fetch_add(100, Ordering::SeqCst);
        Ok(())
    }

    use serde_json::json;
    use worker_core::WORKER;
    WORKER::run("ctx-named", Some(json!([1, "one"])))
        .await
        .unwrap();
    WORKER::run("payload", None).await.unwrap();
    WORKER::run("local", None).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst), 111);
}
