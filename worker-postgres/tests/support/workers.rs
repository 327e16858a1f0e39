//! The workers of the PostgreSQL tests, registered the same way in the
//! test process (which calls) and in the node processes (which execute):
//! the same code on every machine.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use worker_core::prelude::*;

/// Where `counted` writes a line per start, if set: `STARTS_FILE` in a
/// node process, a file of the test's in the test process.
pub static STARTS: OnceLock<std::fs::File> = OnceLock::new();

/// Registers them all on `manager`.
pub async fn register(manager: &WorkerManager) {
    // {"n": 3, "ms": 0}: n messages {"i": 0..n}, ms apart; output {"n": n}.
    manager
        .register_with("echo", WorkerOptions::new(), |ctx| async move {
            let n = ctx.payload().and_then(|p| p["n"].as_u64()).unwrap_or(0);
            let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
            for i in 0..n {
                ctx.send(json!({"i": i})).await?;
                if ms > 0 {
                    ctx.sleep(Duration::from_millis(ms)).await;
                }
            }
            Ok(json!({"n": n, "attempt": ctx.attempt()}))
        })
        .await
        .unwrap();
    // Nothing at all: for throughput and counting.
    manager
        .register("noop", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    // Appends `<run id> <attempt> <pid>` to STARTS as it starts (one
    // write to a file opened for appending: lines from many processes
    // never mix), then sleeps {"ms": n} if asked: for counting starts.
    manager
        .register("counted", |ctx| async move {
            record_start(&ctx);
            let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
            if ms > 0 {
                ctx.sleep(Duration::from_millis(ms)).await;
            }
            Ok(())
        })
        .await
        .unwrap();
    // {"ms": 5000}: says it started (with its attempt), sleeps (a cancel
    // ends the sleep early), says it is done; output its attempt.
    manager
        .register_with("slow", WorkerOptions::new(), |ctx| async move {
            let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(5000);
            ctx.send(json!({"started": ctx.attempt()})).await?;
            ctx.sleep(Duration::from_millis(ms)).await;
            ctx.send(json!({"done": ctx.attempt()})).await?;
            Ok(json!({"attempt": ctx.attempt()}))
        })
        .await
        .unwrap();
    // A workflow's step that reads its parents: {"parents": ["a", "b"],
    // "ms": n}; records its start as `counted` does, sleeps ms, and gives
    // {"step": its name, "got": the parents' outputs in that order}.
    manager
        .register_with("join", WorkerOptions::new(), |ctx| async move {
            record_start(&ctx);
            let parents: Vec<String> = ctx
                .payload()
                .and_then(|p| serde_json::from_value(p["parents"].clone()).ok())
                .unwrap_or_default();
            let mut got = Vec::new();
            for parent in &parents {
                got.push(ctx.parent_output::<serde_json::Value>(parent)?);
            }
            let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
            if ms > 0 {
                ctx.sleep(Duration::from_millis(ms)).await;
            }
            Ok(json!({"step": ctx.step(), "workflow": ctx.workflow_id(), "got": got}))
        })
        .await
        .unwrap();
    // Kills its whole process, every attempt.
    manager
        .register("abort", |ctx| async move {
            ctx.send(json!({"aborting": ctx.attempt()})).await?;
            // Give the outbox a moment to write the message.
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::process::abort();
            #[allow(unreachable_code)]
            Ok(())
        })
        .await
        .unwrap();
    // Fails its first attempt; retried once after 200 ms.
    manager
        .register_with(
            "fails-once",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(200)),
            |ctx| async move {
                ctx.emit(json!({"attempt": ctx.attempt()}))?;
                if ctx.attempt() == 1 {
                    return Err(Error::msg("the first attempt fails"));
                }
                Ok(json!({"attempt": ctx.attempt()}))
            },
        )
        .await
        .unwrap();
    // Every way to fail: {"how": "error" | "panic" | "timeout" | "validation" | "permanent"}.
    manager
        .register_with(
            "fails",
            WorkerOptions::new().timeout(Duration::from_millis(300)),
            |ctx| async move {
                let how = ctx
                    .payload()
                    .and_then(|p| p["how"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                match how.as_str() {
                    "panic" => panic!("it panicked, as asked"),
                    "timeout" => {
                        ctx.sleep(Duration::from_secs(60)).await;
                        Ok(())
                    }
                    "validation" => Err(Error::validation("'amount' must be positive")),
                    "permanent" => Err(Error::permanent("account closed")),
                    _ => Err(Error::msg("it failed, as asked")),
                }
            },
        )
        .await
        .unwrap();
    // One at a time per process, one more waiting: the rest go back to the
    // queue for a moment.
    manager
        .register_with(
            "one-at-a-time",
            WorkerOptions::new().concurrency(1).queue_limit(1),
            |ctx| async move {
                ctx.sleep(Duration::from_millis(100)).await;
                Ok(json!({"attempt": ctx.attempt()}))
            },
        )
        .await
        .unwrap();
    // Cluster-wide limits, for tests/limits.rs. Each sleeps {"ms": n}.
    // At most 16 at once in the cluster, 8 per process, 1 per account.
    manager
        .register_with(
            "limited-slots",
            WorkerOptions::new()
                .concurrency(8)
                .global_concurrency(16)
                .limit_by("account")
                .key_concurrency(1),
            sleep_ms,
        )
        .await
        .unwrap();
    // At most 40 starts a second in the cluster, 5 per account.
    manager
        .register_with(
            "limited-rate",
            WorkerOptions::new()
                .rate("40/1s")
                .limit_by("account")
                .key_rate("5/1s"),
            sleep_ms,
        )
        .await
        .unwrap();
    // At most 2 at once in the cluster; {"fail": true} fails the first
    // attempt, retried after 1.5 s.
    manager
        .register_with(
            "limited-whole",
            WorkerOptions::new()
                .global_concurrency(2)
                .retries(1)
                .backoff(Duration::from_millis(1500)),
            |ctx| async move {
                let fail = ctx.payload().is_some_and(|p| p["fail"] == true);
                if fail && ctx.attempt() == 1 {
                    return Err(Error::msg("the first attempt fails"));
                }
                sleep_ms(ctx).await
            },
        )
        .await
        .unwrap();
    // Never goes through the backend.
    manager
        .register_with("in-process", WorkerOptions::new().local(), |_ctx| async {
            Ok(json!({"pid": std::process::id()}))
        })
        .await
        .unwrap();
}

/// A diamond named `name` whose every step is a `join` that reads its
/// parents and sleeps `ms`: profile → (avatar, page) → welcome.
pub fn diamond(name: &str, ms: u64) -> Workflow {
    let join = |parents: &[&str]| Call::new().payload(json!({"parents": parents, "ms": ms}));
    Workflow::new(name)
        .step("profile", "join", join(&[]))
        .step("avatar", "join", join(&["profile"]))
        .after(["profile"])
        .step("page", "join", join(&["profile"]))
        .after(["profile"])
        .step("welcome", "join", join(&["avatar", "page"]))
        .after(["avatar", "page"])
}

/// Appends `<run id> <attempt> <pid>` to STARTS, if set: one write to a
/// file opened for appending, so lines from many processes never mix.
fn record_start(ctx: &WorkerContext) {
    if let Some(mut file) = STARTS.get() {
        use std::io::Write;
        let line = format!(
            "{} {} {}\n",
            ctx.run_id(),
            ctx.attempt(),
            std::process::id()
        );
        file.write_all(line.as_bytes()).expect("record the start");
    }
}

/// Sleeps the payload's `ms`.
async fn sleep_ms(ctx: WorkerContext) -> Result<()> {
    let ms = ctx.payload().and_then(|p| p["ms"].as_u64()).unwrap_or(0);
    ctx.sleep(Duration::from_millis(ms)).await;
    Ok(())
}

/// `tick`, which runs every second: only the nodes that test schedules
/// have it. Registered after the backend started, so that it ticks through
/// the backend.
pub async fn register_ticks(manager: &WorkerManager) {
    manager
        .register_with(
            "tick",
            WorkerOptions::new().every(Duration::from_secs(1)),
            |_ctx| async { Ok(()) },
        )
        .await
        .unwrap();
}
