//! The tour: every feature once, in under ten seconds.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use worker_core::prelude::*;

use crate::display::Progress;
use crate::sandbox::Sandbox;
use crate::took;

pub async fn run(manager: &WorkerManager, sandbox: &Sandbox) -> Result<()> {
    let definitions = WORKER::definitions().await?;
    println!(
        "worker-core demo: {} workers discovered in src/workers/",
        definitions.len()
    );
    println!("   {}", definitions.join(", "));

    call_and_await().await?;
    progress(sandbox).await?;
    fire_and_forget().await?;
    bounded_batch().await?;
    timeout().await?;
    cancellation().await?;
    invalid_payload().await?;
    policies().await?;
    limits().await?;
    workflow().await?;
    stats_table(&definitions).await?;
    graceful_shutdown(manager).await
}

fn step(title: &str, code: &str) {
    println!("\n▸ {title}\n   {code}");
}

async fn call_and_await() -> Result<()> {
    step(
        "Call and await",
        r#"WORKER::run("send-email", Some(json!({"to": "ada@example.com", ..}))).await?"#,
    );
    let started = Instant::now();
    WORKER::run(
        "send-email",
        Some(json!({"to": "ada@example.com", "subject": "Welcome!", "body": "Thanks for registering"})),
    )
    .await?;
    println!("   ✓ sent in {}", took(started));
    Ok(())
}

async fn progress(sandbox: &Sandbox) -> Result<()> {
    step(
        "Progress messages",
        r#"let mut handle = WORKER::call("generate-report", None, Some(payload)).await?; while let Some(progress) = handle.recv().await { .. }"#,
    );
    let display = Progress::new();
    let runs = [
        (
            "generate-report",
            json!({"user_id": 42, "type": "monthly"}),
            "stage",
        ),
        (
            "process-upload",
            json!({"file_path": sandbox.upload()}),
            "step",
        ),
        (
            "batch-processor",
            json!({"items": (1..=8).map(|i| json!({"sku": format!("A-{i}")})).collect::<Vec<_>>()}),
            "current",
        ),
    ];
    let mut watchers = Vec::new();
    for (worker, payload, note_field) in runs {
        let mut handle = WORKER::call(worker, Some(Duration::from_secs(10)), Some(payload)).await?;
        let tracker = display.track(worker);
        watchers.push(async move {
            while let Some(message) = handle.recv().await {
                let percent = message["progress"].as_u64().unwrap_or(0);
                let note = match &message[note_field] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => format!("item {other}/{}", message["total"]),
                };
                tracker.update(percent, &note);
            }
            let result = handle.await_result().await;
            tracker.finish(if result.is_ok() {
                "✓ done"
            } else {
                "✗ failed"
            });
            result
        });
    }
    let results = futures::future::join_all(watchers).await;
    drop(display);
    results.into_iter().collect()
}

async fn fire_and_forget() -> Result<()> {
    step(
        "Fire and forget",
        r#"tokio::spawn(async move { let _ = WORKER::run("cleanup-temp-files", None).await; })"#,
    );
    let cleanup = tokio::spawn(async move { WORKER::run("cleanup-temp-files", None).await });
    println!("   started; the caller goes on at once");
    // Only so the tour can show what it did; a real caller wouldn't wait.
    cleanup.await.map_err(Error::other)??;
    let stats = WORKER::stats("cleanup-temp-files")
        .await
        .unwrap_or_default();
    println!(
        "   ✓ it finished in the background ({} run, {}ms)",
        stats.runs,
        stats.last_run_ms.unwrap_or(0)
    );
    Ok(())
}

async fn bounded_batch() -> Result<()> {
    step(
        "A batch with bounded concurrency",
        r#"stream::iter(items).map(|item| WORKER::run("process-item", Some(item))).buffer_unordered(4)"#,
    );
    let started = Instant::now();
    let results: Vec<Result<()>> = stream::iter(1..=20)
        .map(|id| WORKER::run("process-item", Some(json!({"id": id}))))
        .buffer_unordered(4)
        .collect()
        .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!(
        "   ✓ {ok}/20 items, at most 4 at a time, in {}",
        took(started)
    );
    Ok(())
}

async fn timeout() -> Result<()> {
    step(
        "A timeout",
        r#"WORKER::call("generate-report", Some(Duration::from_millis(200)), Some(payload)).await?.await_result().await"#,
    );
    let handle = WORKER::call(
        "generate-report",
        Some(Duration::from_millis(200)),
        Some(json!({"user_id": 7})),
    )
    .await?;
    match handle.await_result().await {
        Err(err) if err.is_timeout() => println!("   ✓ err.is_timeout(): {err}"),
        other => return Err(Error::msg(format!("expected a timeout, got {other:?}"))),
    }
    Ok(())
}

async fn cancellation() -> Result<()> {
    step(
        "A cancellation",
        r#"WORKER::cancel(&run_id).await?   // or handle.cancel().await?"#,
    );
    let handle = WORKER::call(
        "generate-report",
        None,
        Some(json!({"user_id": 8, "type": "yearly"})),
    )
    .await?;
    let run_id = handle.id().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "   running: {:?}",
        WORKER::running_for("generate-report").await?
    );
    WORKER::cancel(&run_id).await?;
    match handle.await_result().await {
        Err(err) if err.is_cancelled() => println!("   ✓ err.is_cancelled(): {err}"),
        other => {
            return Err(Error::msg(format!(
                "expected a cancellation, got {other:?}"
            )));
        }
    }
    Ok(())
}

async fn invalid_payload() -> Result<()> {
    step(
        "An invalid payload, turned away",
        r#"WORKER::run("send-email", Some(json!({"subject": "no recipient"}))).await"#,
    );
    match WORKER::run("send-email", Some(json!({"subject": "no recipient"}))).await {
        Err(err) if err.is_validation() => println!("   ✓ err.is_validation(): {err}"),
        other => {
            return Err(Error::msg(format!(
                "expected a validation error, got {other:?}"
            )));
        }
    }
    Ok(())
}

async fn policies() -> Result<()> {
    step(
        "Retries and a schedule, declared on the worker",
        r#"#[worker("sync-crm", retries = 3, backoff = "50ms")] … handle.await_output::<SyncReport>().await?"#,
    );
    let handle = WORKER::call("sync-crm", None, None).await?;
    let report: Value = handle.await_output().await?;
    let stats = WORKER::stats("sync-crm").await.unwrap_or_default();
    println!(
        "   ✓ synced {} contacts on attempt {} ({} retries)",
        report["contacts"], report["attempts"], stats.retries
    );
    // The cleanup's timer started with the workers: wait for its first tick.
    let started = Instant::now();
    while WORKER::stats("cleanup-temp-files")
        .await
        .is_none_or(|s| s.runs < 2)
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "   ✓ #[worker(every = \"1s\")] cleanup-temp-files ran by itself too: {} runs so far",
        WORKER::stats("cleanup-temp-files")
            .await
            .unwrap_or_default()
            .runs
    );
    Ok(())
}

async fn limits() -> Result<()> {
    step(
        "Limits, declared on the worker",
        r#"#[worker("sync-account", global_concurrency = 4, rate = "50/1s", limit_by = "account", key_concurrency = 1)]"#,
    );
    // A backlog of 12 syncs of one account, then one each of 3 others.
    let mut accounts = vec!["acme"; 12];
    accounts.extend(["globex", "initech", "umbrella"]);
    let started = Instant::now();
    let mut handles = Vec::new();
    for account in accounts {
        let call = Call::new().payload(json!({ "account": account }));
        handles.push(WORKER::call_with("sync-account", call).await?);
    }
    let limits = WORKER::stats("sync-account")
        .await
        .and_then(|stats| stats.limits)
        .unwrap_or_default();
    println!(
        "   {}/{} running, {} started this second; busiest: {}",
        limits.running,
        limits.global_concurrency.unwrap_or(0),
        limits.started,
        limits
            .keys
            .iter()
            .take(2)
            .map(|key| format!(
                "{} ({} running, {} queued)",
                key.key, key.running, key.queued
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut most = 0;
    for handle in handles {
        most = most.max(handle.await_output::<usize>().await?);
    }
    println!(
        "   ✓ 15 syncs in {}, at most {} at once: acme one at a time, its backlog queued, the other accounts alongside",
        took(started),
        most
    );
    Ok(())
}

async fn workflow() -> Result<()> {
    step(
        "A workflow: steps that wait for steps",
        r#"Workflow::new("onboard-user").step("profile", "fetch-profile", ..).step("avatar", "resize-avatar", ..).after(["profile"]).step("page", ..).after(["profile"]).step("welcome", "send-welcome", ..).after(["avatar", "page"])"#,
    );
    let flow = Workflow::new("onboard-user")
        .step(
            "profile",
            "fetch-profile",
            Call::new().payload(json!({"user": 7})),
        )
        .step("avatar", "resize-avatar", Call::new())
        .after(["profile"])
        .step("page", "render-welcome", Call::new())
        .after(["profile"])
        .step("welcome", "send-welcome", Call::new())
        .after(["avatar", "page"]);
    let started = Instant::now();
    let mut flow_handle = WORKER::start_workflow(flow).await?;
    while let Some(event) = flow_handle.recv().await {
        match event {
            WorkflowEvent::Started { step, .. } => println!("   {step:<8} started"),
            WorkflowEvent::Message { step, message } => println!("   {step:<8} says {message}"),
            WorkflowEvent::Ended {
                step,
                outcome,
                error,
            } => println!(
                "   {step:<8} {outcome}{}",
                error.map(|error| format!(": {error}")).unwrap_or_default()
            ),
        }
    }
    flow_handle.await_result().await?;
    let sent: String = flow_handle.output("welcome").await?;
    println!(
        "   ✓ 4 steps in {}: avatar and page side by side, then welcome read both: {sent}",
        took(started)
    );
    Ok(())
}

async fn stats_table(definitions: &[String]) -> Result<()> {
    step("Statistics", r#"WORKER::stats("send-email").await"#);
    println!(
        "   {:<20} {:>5} {:>6} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "worker",
        "runs",
        "errors",
        "cancelled",
        "retries",
        "skipped",
        "success",
        "avg ms",
        "last ms"
    );
    for name in definitions {
        let Some(stats) = WORKER::stats(name).await else {
            continue;
        };
        if stats.runs + stats.cancelled == 0 {
            continue;
        }
        println!(
            "   {:<20} {:>5} {:>6} {:>9} {:>7} {:>7} {:>7.0}% {:>8.1} {:>8}",
            name,
            stats.runs,
            stats.errors,
            stats.cancelled,
            stats.retries,
            stats.skipped,
            stats.success_rate(),
            stats.average_ms(),
            stats
                .last_run_ms
                .map_or("-".to_owned(), |ms| ms.to_string()),
        );
    }
    Ok(())
}

async fn graceful_shutdown(manager: &WorkerManager) -> Result<()> {
    step(
        "Graceful shutdown",
        "manager.shutdown().await?   // or manager.shutdown_on_signal().await? for Ctrl+C",
    );
    let report = WORKER::call("generate-report", None, Some(json!({"user_id": 9}))).await?;
    let batch = WORKER::call(
        "batch-processor",
        None,
        Some(json!({"items": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]})),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("   {} runs in flight", manager.in_flight());
    let started = Instant::now();
    manager.shutdown().await?;
    let cancelled = [report.await_result().await, batch.await_result().await]
        .iter()
        .filter(|r| r.as_ref().is_err_and(Error::is_cancelled))
        .count();
    println!(
        "   ✓ {cancelled} runs cancelled, {} in flight, in {}",
        manager.in_flight(),
        took(started)
    );
    match WORKER::run("send-email", Some(json!({"to": "late@example.com"}))).await {
        Err(err) if err.is_shutdown() => println!("   ✓ new calls refused: {err}"),
        other => return Err(Error::msg(format!("expected a refusal, got {other:?}"))),
    }
    Ok(())
}
