//! The seed's code blocks from "Executing Workers", "Worker Context" and
//! "Advanced Features", in the seed's order, adapted to `worker_core` names.
//! Where a block calls an outside service, a local stand-in replaces it.
//! "Graceful Shutdown" is in `global_shutdown.rs` (it stops the global manager).

// The seed's code is kept as the seed writes it.
#![allow(clippy::manual_checked_ops)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use worker_core::prelude::*;

async fn register_send_email() {
    let _ = WORKER::register("send-email", |ctx| async move {
        let to = ctx
            .payload()
            .and_then(|p| p["to"].as_str())
            .unwrap_or("nobody@example.com");
        ctx.info(&format!("Sending email to: {to}"));
        Ok(())
    })
    .await;
}

// ── Executing Workers ──────────────────────────────────────────────────

#[tokio::test]
async fn method_1_call_and_await() -> Result<()> {
    register_send_email().await;
    // Simple execution
    WORKER::run("send-email", None).await?;

    // With payload
    let payload = json!({
        "to": "user@example.com",
        "subject": "Welcome!"
    });
    WORKER::run("send-email", Some(payload)).await?;
    Ok(())
}

#[tokio::test]
async fn method_2_call_with_handle() -> Result<()> {
    WORKER::register("worker-name", |ctx| async move {
        ctx.emit(json!({"progress": 50}))?;
        ctx.emit(json!({"progress": 100}))?;
        Ok(())
    })
    .await?;
    let payload = json!({"job": 1});
    let mut handle = WORKER::call("worker-name", None, Some(payload)).await?;

    let mut received = Vec::new();
    // Receive messages while worker runs
    while let Some(message) = handle.recv().await {
        println!("Progress: {}", message);
        received.push(message);
    }
    // Wait for final result
    handle.await_result().await?;
    assert_eq!(
        received,
        [json!({"progress": 50}), json!({"progress": 100})]
    );
    Ok(())
}

#[tokio::test]
async fn method_3_fire_and_forget() -> Result<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = Arc::new(Mutex::new(Some(done_tx)));
    WORKER::register("cleanup", move |_ctx| {
        let done_tx = done_tx.clone();
        async move {
            if let Some(tx) = done_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            Ok(())
        }
    })
    .await?;

    tokio::spawn(async move {
        let _ = WORKER::run("cleanup", None).await;
    });
    done_rx.await.expect("the worker ran in the background");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeout_support() -> Result<()> {
    WORKER::register("slow-worker", |_ctx| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    })
    .await?;
    let payload = json!({});
    // Worker will be cancelled if it exceeds 5 seconds
    let handle = WORKER::call(
        "slow-worker",
        Some(Duration::from_secs(5)), // Timeout
        Some(payload),
    )
    .await?;

    let outcome = match handle.await_result().await {
        Ok(_) => "Completed successfully".to_owned(),
        Err(e) => format!("Timeout or error: {}", e),
    };
    assert_eq!(
        outcome,
        "Timeout or error: Worker 'slow-worker' timed out after 5s"
    );
    Ok(())
}

#[tokio::test]
async fn passing_payloads() -> Result<()> {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    // Worker code
    WORKER::register("process-file", move |ctx| {
        let seen = s.clone();
        async move {
            let payload = ctx
                .payload()
                .ok_or_else(|| Error::validation("Payload required"))?;
            let user_id = payload["user_id"].as_i64().unwrap();
            let file_path = payload["file_path"].as_str().unwrap();
            ctx.info(&format!("Processing file for user {}", user_id));
            *seen.lock().unwrap() = Some((user_id, file_path.to_owned()));
            Ok(())
        }
    })
    .await?;

    // Calling code
    let payload = json!({
        "user_id": 123,
        "action": "process_upload",
        "file_path": "/tmp/upload.pdf"
    });
    WORKER::run("process-file", Some(payload)).await?;
    assert_eq!(
        *seen.lock().unwrap(),
        Some((123, "/tmp/upload.pdf".to_owned()))
    );

    let err = WORKER::run("process-file", None).await.unwrap_err();
    assert!(err.is_validation());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execution() -> Result<()> {
    use futures::future::join_all;
    WORKER::register("process-item", |ctx| async move {
        let id = ctx
            .payload()
            .and_then(|p| p["id"].as_i64())
            .ok_or_else(|| Error::validation("id required"))?;
        ctx.emit(json!({"processed": id}))?;
        Ok(())
    })
    .await?;

    let items = vec![json!({"id": 1}), json!({"id": 2}), json!({"id": 3})];

    // Launch all workers concurrently
    let futures: Vec<_> = items
        .into_iter()
        .map(|item| WORKER::call("process-item", None, Some(item)))
        .collect();

    let handles = join_all(futures).await;

    // Wait for all to complete
    for handle in handles {
        handle?.await_result().await?;
    }
    assert_eq!(WORKER::stats("process-item").await.unwrap().runs, 3);
    Ok(())
}

// ── Worker Context ─────────────────────────────────────────────────────

#[tokio::test]
async fn identity_and_metadata() -> Result<()> {
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    WORKER::register("example", move |ctx| {
        let seen = s.clone();
        async move {
            // Unique identifier for this execution
            let run_id = ctx.run_id(); // "550e8400-e29b-41d4-a716-446655440000"
            // Worker definition name
            let name = ctx.worker_name(); // "example"
            ctx.info(&format!("Execution {} of {}", run_id, name));
            *seen.lock().unwrap() = format!("{name} {run_id}");
            Ok(())
        }
    })
    .await?;
    let handle = WORKER::call("example", None, None).await?;
    let id = handle.id().to_owned();
    handle.await_result().await?;
    assert_eq!(*seen.lock().unwrap(), format!("example {id}"));
    Ok(())
}

#[tokio::test]
async fn logging() -> Result<()> {
    WORKER::register("logger-demo", |ctx| async move {
        ctx.info("Informational message");
        ctx.warn("Warning message");
        ctx.error("Error message");
        ctx.debug("Debug message (only in development)");

        // Generic logging with custom level
        ctx.log(log::Level::Info, "Custom log");

        Ok(())
    })
    .await?;
    // The line format is asserted in tests/context.rs with a capturing logger.
    WORKER::run("logger-demo", None).await
}

#[tokio::test]
async fn environment_detection() -> Result<()> {
    WORKER::register("env-aware", |ctx| async move {
        if ctx.is_development() {
            ctx.info("Running in development - verbose logging enabled");
        }
        if ctx.is_production() {
            ctx.info("Running in production - using live services");
        }
        assert_ne!(ctx.is_development(), ctx.is_production());
        Ok(())
    })
    .await?;
    WORKER::run("env-aware", None).await
}

#[tokio::test]
async fn configuration_access() -> Result<()> {
    let manager = WorkerManager::new(); // its own config, not the global one
    manager.set_config(AppConfig::from_value(
        json!({"api": {"base_url": "https://api.example.com"}}),
    ));
    let used = Arc::new(Mutex::new(String::new()));
    let u = used.clone();
    manager
        .register("config-example", move |ctx| {
            let used = u.clone();
            async move {
                let config = ctx.config();

                // Use configuration values
                let base_url = config
                    .get::<String>("api.base_url")
                    .unwrap_or_else(|| "http://localhost".to_string());

                ctx.info(&format!("Using API: {}", base_url));
                *used.lock().unwrap() = base_url;
                Ok(())
            }
        })
        .await?;
    manager.run("config-example", None).await?;
    assert_eq!(*used.lock().unwrap(), "https://api.example.com");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn state_management() -> Result<()> {
    WORKER::register("stateful", |ctx| async move {
        // Set state values
        ctx.set_state("progress", json!(0)).await?;
        ctx.set_state("items_processed", json!([])).await?;

        for i in 1..=5 {
            // Update state
            ctx.set_state("progress", json!(i * 20)).await?;

            // Read state
            if let Some(progress) = ctx.get_state("progress").await {
                ctx.info(&format!("Progress: {}%", progress));
                ctx.emit(progress)?;
            }

            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // Clear all state
        ctx.clear_state().await?;
        assert_eq!(ctx.get_state("items_processed").await, None);
        Ok(())
    })
    .await?;
    let mut handle = WORKER::call("stateful", None, None).await?;
    let mut progress = Vec::new();
    while let Some(p) = handle.recv().await {
        progress.push(p);
    }
    handle.await_result().await?;
    assert_eq!(
        progress,
        [json!(20), json!(40), json!(60), json!(80), json!(100)]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn message_emission() -> Result<()> {
    // Worker code
    WORKER::register("progress-reporter", |ctx| async move {
        for i in 1..=10 {
            // Emit progress updates
            ctx.emit(json!({
                "progress": i * 10,
                "message": format!("Processing item {}/10", i)
            }))?;

            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        ctx.emit(json!({"status": "complete"}))?;
        Ok(())
    })
    .await?;

    // Calling code
    let mut handle = WORKER::call("progress-reporter", None, None).await?;

    let mut printed = Vec::new();
    // Receive progress updates
    while let Some(message) = handle.recv().await {
        let progress = message["progress"].as_i64().unwrap_or(0);
        printed.push(format!("Progress: {}%", progress));
    }

    handle.await_result().await?;
    assert_eq!(printed.len(), 11);
    assert_eq!(printed[9], "Progress: 100%");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn utilities() -> Result<()> {
    WORKER::register("utilities", |ctx| async move {
        // Sleep/delay
        ctx.sleep(Duration::from_secs(1)).await;

        // Access payload
        if let Some(payload) = ctx.payload() {
            ctx.info(&format!("Received: {}", payload));
        }

        Ok(())
    })
    .await?;
    WORKER::run("utilities", Some(json!({"k": "v"}))).await
}

// ── Advanced Features ──────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn cancellation() -> Result<()> {
    WORKER::register("cancelable-slow-worker", |ctx| async move {
        ctx.sleep(Duration::from_secs(60)).await;
        Ok(())
    })
    .await?;

    // Start long-running worker
    let handle = WORKER::call("cancelable-slow-worker", None, None).await?;
    let run_id = handle.id().to_string();

    // Start cancellation timer
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Cancel after 3 seconds
        if let Err(e) = WORKER::cancel(&run_id).await {
            eprintln!("Failed to cancel: {}", e);
        }
    });

    // Try to await result
    let status = match handle.await_result().await {
        Ok(_) => json!({"status": "completed"}),
        Err(_) => json!({"status": "cancelled"}),
    };
    assert_eq!(status, json!({"status": "cancelled"}));
    Ok(())
}

#[tokio::test]
async fn listing_workers() -> Result<()> {
    register_send_email().await;
    // List all registered worker definitions
    let definitions = WORKER::definitions().await?;

    // List all currently running worker run IDs
    let running = WORKER::running().await?;

    // List runs for a specific worker
    let email_runs = WORKER::running_for("send-email").await?;

    let dashboard = json!({
        "definitions": definitions,
        "running_count": running.len(),
        "email_worker_runs": email_runs.len()
    });
    assert!(
        dashboard["definitions"]
            .as_array()
            .unwrap()
            .contains(&json!("send-email"))
    );
    Ok(())
}

#[tokio::test]
async fn statistics_and_monitoring() -> Result<()> {
    WORKER::register("monitored", |ctx| async move {
        match ctx.payload() {
            Some(_) => Err(Error::validation("bad")),
            None => Ok(()),
        }
    })
    .await?;
    WORKER::run("monitored", None).await?;
    let _ = WORKER::run("monitored", Some(json!(1))).await;

    let definitions = WORKER::definitions().await?;
    let mut stats_map = serde_json::Map::new();

    for name in definitions {
        if let Some(stats) = WORKER::stats(&name).await {
            let avg_ms = if stats.runs > 0 {
                stats.total_runtime_ms / stats.runs
            } else {
                0
            };

            stats_map.insert(
                name,
                json!({
                    "total_runs": stats.runs,
                    "errors": stats.errors,
                    "success_rate": if stats.runs > 0 {
                        (stats.runs - stats.errors) as f64 / stats.runs as f64 * 100.0
                    } else {
                        0.0
                    },
                    "average_duration_ms": avg_ms,
                    "last_run_ms": stats.last_run_ms
                }),
            );
        }
    }
    assert_eq!(stats_map["monitored"]["total_runs"], 2);
    assert_eq!(stats_map["monitored"]["success_rate"], 50.0);
    Ok(())
}

#[tokio::test]
async fn error_handling_patterns() -> Result<()> {
    // Stand-ins for the seed's fetch_user / process_user.
    async fn fetch_user(user_id: i64) -> Result<String> {
        Ok(format!("user-{user_id}"))
    }
    async fn process_user(user: &str) -> Result<()> {
        if user.ends_with("-0") {
            return Err(Error::validation("user 0 is reserved"));
        }
        Ok(())
    }

    WORKER::register("robust-worker", |ctx| async move {
        // Validate input early
        let payload = ctx
            .payload()
            .ok_or_else(|| Error::validation("Payload required"))?;

        let user_id = payload["user_id"]
            .as_i64()
            .ok_or_else(|| Error::validation("user_id is required"))?;

        // Use Result propagation
        let user = fetch_user(user_id).await?;

        // Handle specific errors
        match process_user(&user).await {
            Ok(_) => {
                ctx.info("User processed successfully");
                Ok(())
            }
            Err(e) if e.is_validation() => {
                ctx.warn(&format!("Validation failed: {}", e));
                Err(e)
            }
            Err(e) => {
                ctx.error(&format!("Processing failed: {}", e));
                Err(e)
            }
        }
    })
    .await?;

    WORKER::run("robust-worker", Some(json!({"user_id": 7}))).await?;
    let err = WORKER::run("robust-worker", Some(json!({"user_id": 0})))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "user 0 is reserved");
    let err = WORKER::run("robust-worker", Some(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "user_id is required");
    Ok(())
}
