//! An axum app with background workers: its `src/workers/`, the
//! `worker-web` dashboard mounted at `/`, and the workers' metrics in the
//! Prometheus text format at `/metrics`.
//!
//! Everything about runs over HTTP (starting, following, cancelling,
//! retrying, the page) is `worker_web::router`; this crate only chooses the
//! workers, their payload validators and what else the app serves:
//!
//! ```no_run
//! # async fn doc() -> std::io::Result<()> {
//! let manager = web::start_workers(None).await.expect("workers");
//! let metrics = web::install_metrics().ok();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = web::app(manager.clone(), metrics);
//! web::serve(listener, app, manager, std::future::pending()).await
//! # }
//! ```

#![warn(missing_docs)]

pub mod payloads;

use std::future::{Future, IntoFuture};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use worker_core::{WorkerManager, Workers, auto_discover};
use worker_web::Dashboard;

use crate::payloads::demo_validators;

/// Loads the workers of `src/workers/` (found at compile time by
/// `#[auto_discover]`) into the global manager and returns it. Given a
/// PostgreSQL URL, runs them durably there: every process started with the
/// same URL shares them.
#[auto_discover]
pub async fn start_workers(postgres: Option<String>) -> worker_core::Result<WorkerManager> {
    let workers = Workers::new().auto_load();
    match postgres {
        Some(url) => {
            workers
                .backend(worker_postgres::Postgres::new(url))
                .start()
                .await
        }
        None => workers.start().await,
    }
}

/// The dashboard over `manager`, with the demo workers' validators.
pub fn dashboard(manager: WorkerManager) -> Dashboard {
    demo_validators()
        .into_iter()
        .fold(Dashboard::new(manager), |dashboard, (worker, validator)| {
            dashboard.validator(worker, validator)
        })
}

/// Installs the process's `metrics` recorder: a Prometheus one, whose
/// handle renders everything recorded so far. Once per process: a second
/// call is an error.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .install_recorder()
        .map_err(|err| format!("can't install the Prometheus recorder: {err}"))
}

/// The application: the dashboard at `/` and, given a recorder's handle,
/// the metrics at `/metrics`.
pub fn app(manager: WorkerManager, metrics: Option<PrometheusHandle>) -> Router {
    let mut app = dashboard(manager).router();
    if let Some(metrics) = metrics {
        app = app.route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        );
    }
    app
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down
/// gracefully: no new connections; `manager` is shut down (new runs
/// refused, runs in flight cancelled), which ends every SSE stream with its
/// run's outcome; requests in flight finish. Returns once all of that is
/// done.
///
/// Shutting down the global manager is for good: use a `shutdown` future
/// that never resolves (`std::future::pending()`) where the process goes on.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    manager: WorkerManager,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        log::info!(target: "web", "shutting down: cancelling runs in flight, finishing requests");
        let _ = stop.send(());
    });
    let workers = async move {
        // `Err`: the server ended without a shutdown signal; leave the
        // manager alone.
        if stopped.await.is_ok() {
            if let Err(error) = manager.shutdown().await {
                log::error!(target: "web", "worker shutdown: {error}");
            }
            log::info!(target: "web", "workers stopped");
        }
    };
    let (served, ()) = tokio::join!(server.into_future(), workers);
    served
}
