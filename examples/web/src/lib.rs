//! worker-core behind HTTP: start runs, follow them as Server-Sent Events,
//! cancel them and watch the statistics, with axum and tokio.
//!
//! ```text
//! POST   /workers/{name}/runs   start a run (JSON body = payload)   → 202 {"run_id", "worker", "events_url"}
//! GET    /runs/{id}/events      the run's messages, then its outcome, as SSE
//! DELETE /runs/{id}             cancel a run                         → 200 {"cancelled": id}
//! GET    /workers               definitions and their statistics
//! GET    /runs                  runs in flight
//! GET    /                      the dashboard
//! ```
//!
//! The binary (`src/main.rs`) is a thin shell around [`start_workers`],
//! [`AppState`] and [`serve`]; tests run the same server on `127.0.0.1:0`:
//!
//! ```no_run
//! # async fn doc() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let state = web::AppState::new(web::Config::default());
//! web::serve(listener, state, std::future::pending()).await
//! # }
//! ```

#![warn(missing_docs)]

pub mod errors;
pub mod feeds;
pub mod page;
pub mod payloads;
pub mod routes;

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use worker_core::{WorkerManager, Workers, auto_discover};

use crate::feeds::{DEFAULT_FEED_CAPACITY, DEFAULT_FEED_RETENTION, Feeds};
use crate::payloads::{Validator, demo_validators};

/// The largest request body `POST /workers/{name}/runs` accepts by default: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest payload accepted, in bytes; larger ones get `413`.
    pub body_limit: usize,
    /// How many messages of one run are kept for its SSE clients; older
    /// ones are dropped (and counted).
    pub feed_capacity: usize,
    /// How long a run's events stay available after it ended.
    pub feed_retention: Duration,
}

impl Default for Config {
    /// 64 KiB bodies, 1,000 messages per run, kept 60 s after the run.
    fn default() -> Self {
        Config {
            body_limit: DEFAULT_BODY_LIMIT,
            feed_capacity: DEFAULT_FEED_CAPACITY,
            feed_retention: DEFAULT_FEED_RETENTION,
        }
    }
}

/// What every request handler shares: the worker manager, the settings,
/// the runs' event feeds and the payload validators. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    manager: WorkerManager,
    config: Arc<Config>,
    feeds: Feeds,
    validators: Arc<HashMap<String, Validator>>,
}

impl AppState {
    /// State over the process-global manager, the one behind `WORKER::`
    /// (`WORKER::call(..)` is `WorkerManager::global().call(..)`), with the
    /// demo workers' validators.
    pub fn new(config: Config) -> Self {
        Self::with_manager(WorkerManager::global().clone(), config)
    }

    /// State over any manager, e.g. an independent `WorkerManager::new()`
    /// in a test, with the demo workers' validators.
    pub fn with_manager(manager: WorkerManager, config: Config) -> Self {
        let validators = demo_validators()
            .into_iter()
            .map(|(name, validator)| (name.to_owned(), validator))
            .collect();
        AppState {
            manager,
            feeds: Feeds::new(config.feed_capacity, config.feed_retention),
            config: Arc::new(config),
            validators: Arc::new(validators),
        }
    }

    /// Validates `worker`'s payloads with `validator` before starting runs
    /// (replacing any validator it had). Build one with
    /// [`payloads::validator`].
    pub fn with_validator(mut self, worker: impl Into<String>, validator: Validator) -> Self {
        Arc::make_mut(&mut self.validators).insert(worker.into(), validator);
        self
    }

    /// The worker manager runs are started on.
    pub fn manager(&self) -> &WorkerManager {
        &self.manager
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The event feeds of the runs started over HTTP.
    pub fn feeds(&self) -> &Feeds {
        &self.feeds
    }

    /// The validator of `worker`'s payloads, if it has one.
    pub fn validator(&self, worker: &str) -> Option<Validator> {
        self.validators.get(worker).copied()
    }
}

/// Loads the workers of `src/workers/` (found at compile time by
/// `#[auto_discover]`) into the global manager and returns it.
#[auto_discover]
pub async fn start_workers() -> worker_core::Result<WorkerManager> {
    Workers::new().auto_load().start().await
}

/// The application: every route, over `state`.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then shuts down
/// gracefully: no new connections; the state's manager is shut down (new
/// runs refused, runs in flight cancelled), which ends every SSE stream with
/// its run's outcome; requests in flight finish; then the feeds are
/// released. Returns once all of that is done.
///
/// Shutting down the global manager is for good: use a `shutdown` future
/// that never resolves (`std::future::pending()`) where the process goes on.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let manager = state.manager().clone();
    let feeds = state.feeds().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
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
    feeds.close();
    served
}
