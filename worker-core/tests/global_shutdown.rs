//! Shutting the global manager down: its own binary, since it is for good.

use std::time::Duration;

use worker_core::prelude::*;

#[tokio::test]
async fn the_seeds_graceful_shutdown() {
    let manager = Workers::new()
        .grace_period(Duration::from_millis(50))
        .workers_from(|_manager| async move {
            WORKER::register("long-task", |ctx| async move {
                ctx.info("Long task started");
                tokio::time::sleep(Duration::from_secs(60)).await;
                ctx.info("Long task completed");
                Ok(())
            })
            .await?;
            Ok(())
        })
        .start()
        .await
        .unwrap();

    let handle = WORKER::call("long-task", None, None).await.unwrap();
    WORKER::shutdown().await.unwrap();
    // 1. All running workers are cancelled
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
    // 2. No new workers can be started
    assert!(
        WORKER::run("long-task", None)
            .await
            .unwrap_err()
            .is_shutdown()
    );
    // 3. Resources are cleaned up
    assert_eq!(manager.in_flight(), 0);
    assert!(WORKER::running().await.unwrap().is_empty());
    assert_eq!(WORKER::stats("long-task").await.unwrap().cancelled, 1);
}
