//! What the test binaries share: a dashboard over its own manager with
//! test workers, mounted under a prefix (`/ops/workers`) of an axum app on
//! `127.0.0.1:0`; an HTTP client; and a small `text/event-stream` reader.

#![allow(dead_code)] // each test binary uses some of it

mod sse;
pub use sse::*;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use worker_core::prelude::*;
use worker_web::Dashboard;
use worker_web::journal::Journal;
use worker_web::payloads::{Payload, validator};

/// Where the tests mount the dashboard: not the root, so that every path
/// the page and the API use is checked to work under a prefix.
pub const PREFIX: &str = "/ops/workers";

/// A served dashboard.
pub struct Server {
    /// `http://127.0.0.1:PORT/ops/workers`.
    pub base: String,
    pub manager: WorkerManager,
    pub journal: Arc<Journal>,
    pub client: reqwest::Client,
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
        base,
        manager,
        journal,
        client: client(),
    }
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    /// POSTs `body` as JSON (nothing for `None`) to start `worker`.
    pub async fn post_run(&self, worker: &str, body: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/workers/{worker}/runs")));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        request.send().await.unwrap()
    }

    /// Starts a run that must be accepted; returns its id.
    pub async fn start_run(&self, worker: &str, body: Option<&str>) -> String {
        let response = self.post_run(worker, body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "POST /workers/{worker}/runs: {json}");
        json["run_id"].as_str().unwrap().to_owned()
    }

    /// Opens the run's event stream.
    pub async fn events(&self, run_id: &str) -> SseStream {
        let response = self.get(&format!("/runs/{run_id}/events")).await;
        assert_eq!(response.status(), 200, "GET /runs/{run_id}/events");
        SseStream::new(response)
    }

    /// The run's whole event stream, from the start to the end.
    pub async fn all_events(&self, run_id: &str) -> Vec<SseEvent> {
        self.events(run_id).await.collect().await
    }

    /// The `GET /workers` entry of `worker`.
    pub async fn worker_stats(&self, worker: &str) -> Value {
        let workers = self.get_json("/workers").await;
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == worker)
            .unwrap_or_else(|| panic!("{worker} in {workers}"))
            .clone()
    }
}
