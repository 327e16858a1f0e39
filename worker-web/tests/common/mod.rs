//! What the test binaries share: a dashboard over its own manager with
//! test workers, mounted under a prefix (`/ops/workers`) of an axum app on
//! `127.0.0.1:0`; an HTTP client; a small `text/event-stream` reader; and
//! workflows over the test workers.

#![allow(dead_code)] // each test binary uses some of it

mod http;
mod sse;
pub mod workflows;
pub use http::*;
pub use sse::*;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use worker_core::prelude::*;
use worker_web::Dashboard;
use worker_web::journal::Journal;
use worker_web::payloads::{Payload, validator};

/// Where the tests mount the dashboard: not the root, so that every path
/// the page and the API use is checked to work under a prefix.
pub const PREFIX: &str = "/ops/workers";

/// A served dashboard.
pub struct Server {
    /// The API at `http://127.0.0.1:PORT/ops/workers`.
    pub http: Http,
    pub manager: WorkerManager,
    pub journal: Arc<Journal>,
}

/// `email`'s payload: `{"to": "a@b.c"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub to: String,
}

impl Payload for Email {
    fn check(&self) -> Result<(), String> {
        match self.to.split_once('@') {
            Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(()),
            _ => Err(format!("`to` must be an email address, not {:?}", self.to)),
        }
    }
}

/// A manager with the test workers:
/// - `report`: 11 messages `{"progress": 0..=100}`, `step_ms` apart (payload
///   `{"step_ms": n}`, default 5); timeout 10 s;
/// - `email`: validated by the dashboard; one message; timeout 5 s;
/// - `slow`: a message per 100 ms for a minute, until cancelled;
/// - `flaky`: ends as its payload says: `{"outcome": "error" | "panic" |
///   "timeout" | "ok"}`; timeout 1 s;
/// - `fails-once`: retried once after 10 ms, fails its first attempt;
/// - `checks-late`: no validator: fails its run as a validation error.
pub async fn manager() -> WorkerManager {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(50));
    manager
        .register_with(
            "report",
            WorkerOptions::new().timeout(Duration::from_secs(10)),
            |ctx| async move {
                let step = ctx
                    .payload()
                    .and_then(|p| p["step_ms"].as_u64())
                    .unwrap_or(5);
                for progress in (0..=100).step_by(10) {
                    if progress > 0 {
                        ctx.sleep(Duration::from_millis(step)).await;
                    }
                    ctx.send(json!({"progress": progress})).await?;
                }
                Ok(json!({"url": "/reports/1.pdf"}))
            },
        )
        .await
        .unwrap();
    manager
        .register_with(
            "email",
            WorkerOptions::new().timeout(Duration::from_secs(5)),
            |ctx| async move {
                ctx.emit(json!({"sent_to": ctx.payload().map(|p| p["to"].clone())}))?;
                Ok(())
            },
        )
        .await
        .unwrap();
    manager
        .register("slow", |ctx| async move {
            for progress in 0..600 {
                ctx.send(json!({"progress": progress})).await?;
                ctx.sleep(Duration::from_millis(100)).await;
                if ctx.is_cancelled() {
                    break;
                }
            }
            Ok(())
        })
        .await
        .unwrap();
    manager
        .register_with(
            "flaky",
            WorkerOptions::new().timeout(Duration::from_secs(1)),
            |ctx| async move {
                let asked = ctx
                    .payload()
                    .and_then(|p| p["outcome"].as_str().map(str::to_owned));
                ctx.send(json!({"progress": 0})).await?;
                match asked.as_deref() {
                    Some("error") => Err(Error::msg("flaky failed, as asked")),
                    Some("panic") => panic!("flaky panicked, as asked"),
                    Some("timeout") => {
                        ctx.sleep(Duration::from_secs(60)).await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            },
        )
        .await
        .unwrap();
    manager
        .register_with(
            "fails-once",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(10)),
            |ctx| async move {
                ctx.emit(json!({"attempt": ctx.attempt()}))?;
                if ctx.attempt() == 1 {
                    return Err(Error::msg("first attempt fails"));
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    manager
        .register("checks-late", |_ctx| async {
            Err::<(), _>(Error::validation("'amount' must be positive"))
        })
        .await
        .unwrap();
    manager
}

/// The worker [`register_limited`] adds.
pub const LIMITED: &str = "limited";

/// Registers [`LIMITED`] on `manager`: at most 2 attempts at once and 100
/// starts a minute, 1 at once per `account` of its payload. Each run
/// waits until the returned sender says `true`, so that a test sees the
/// limits in use for as long as it needs.
pub async fn register_limited(manager: &WorkerManager) -> watch::Sender<bool> {
    let (release, released) = watch::channel(false);
    manager
        .register_with(
            LIMITED,
            WorkerOptions::new()
                .global_concurrency(2)
                .rate("100/1m")
                .limit_by("account")
                .key_concurrency(1),
            move |_ctx| {
                let mut released = released.clone();
                async move {
                    // An error only if the test dropped the sender: done too.
                    let _ = released.wait_for(|released| *released).await;
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
    release
}

/// The dashboard the tests serve by default.
pub fn dashboard(manager: WorkerManager) -> Dashboard {
    Dashboard::new(manager).validator("email", validator::<Email>())
}

/// Serves the default dashboard over a fresh [`manager`].
pub async fn start_default() -> Server {
    start(dashboard(manager().await)).await
}

/// Serves `dashboard` under [`PREFIX`] on a free port of 127.0.0.1 until
/// the test's runtime ends.
pub async fn start(dashboard: Dashboard) -> Server {
    let manager = dashboard.manager().clone();
    let (router, journal) = dashboard.into_parts();
    let app = worker_web::mount(axum::Router::new(), PREFIX, router);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}{PREFIX}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        http: Http::new(base),
        manager,
        journal,
    }
}

impl std::ops::Deref for Server {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}
