//! Graceful shutdown of the server and the global manager, as `main` does
//! it: a binary of its own, because shutting `WORKER::` down is for good.

mod common;

use std::time::Duration;

use common::{PATIENCE, start_until};
use serde_json::json;
use worker_core::prelude::*;

#[tokio::test]
async fn shutdown_cancels_runs_ends_streams_and_stops_serving() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = start_until(async move {
        let _ = stopped.await;
    })
    .await;
    let run_id = server
        .start_run("rebuild-index", Some(r#"{"seconds": 300}"#))
        .await;
    let mut events = server.events(&run_id).await;
    assert_eq!(events.next().await.unwrap().json()["progress"], 0);

    stop.send(()).unwrap();

    // The open stream ends with the run's outcome: cancelled by shutdown.
    let rest = events.collect().await;
    let outcome = rest.last().unwrap();
    assert_eq!(outcome.event, "outcome");
    assert_eq!(
        outcome.json(),
        json!({
            "ok": false,
            "outcome": "cancelled",
            "kind": "cancelled",
            "error": format!("Worker 'rebuild-index' run {run_id} was cancelled"),
            "output": null,
        })
    );
    // serve() returns once everything has stopped.
    let served = tokio::time::timeout(PATIENCE, server.task)
        .await
        .expect("serve() returns after shutdown")
        .unwrap();
    served.unwrap();
    assert!(WORKER::running().await.unwrap().is_empty());
    assert!(
        WORKER::call("send-email", None, Some(json!({"to": "a@b.c"})))
            .await
            .unwrap_err()
            .is_shutdown()
    );
    // Nobody listens any more.
    let refused = common::client()
        .get(format!("{}/workers", server.http.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}
