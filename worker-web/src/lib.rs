//! A dashboard for worker-core that mounts into any axum app: the workers
//! with their statistics, options and use of their limits, the runs in
//! flight, the last 1,000 runs that ended with their errors, each run's
//! payload, messages (live), attempts and output, charts of the last 15
//! minutes, the nodes, and the workflows with their graph of steps; plus
//! the JSON API behind it, to start, follow, cancel and retry runs and to
//! cancel workflows.
//!
//! ```no_run
//! # async fn doc() -> worker_core::Result<()> {
//! use worker_core::Workers;
//!
//! let manager = Workers::new().start().await?;
//! // The page at /workers and /workers/, the API under /workers/.
//! let app = worker_web::mount(axum::Router::new(), "/workers", worker_web::router(manager.clone()));
//!     // .layer(my_auth_layer): access control is the app's own
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! [`router_read_only`] serves the same without the routes that start,
//! cancel or retry runs or cancel workflows (they answer `403`); [`Dashboard`] sets the rest
//! (payload validators, body limit, how much is kept).
//!
//! The routes, relative to where the router is mounted:
//!
//! ```text
//! GET    /                       the page (one file, no CDN; hash routes #/, #/runs, #/run/{id}, #/workflows, #/workflows/{id})
//! GET    /workers                definitions, statistics, options, next tick, limits and their use
//! POST   /workers/{name}/runs    start a run (JSON body = payload)   → 202 {"run_id", "worker", "events_url"}
//! GET    /runs                   runs in flight
//! GET    /runs/recent            ended runs: ?worker= &outcome= &failed_first=1 &limit=
//! GET    /runs/{id}              one run: payload, attempts, output, message counts
//! GET    /runs/{id}/events       its messages, then its outcome, as Server-Sent Events
//! DELETE /runs/{id}              cancel it                            → 200 {"cancelled": id}
//! POST   /runs/{id}/retry        a new run with its payload           → 202 {"run_id", …}
//! GET    /timeline               runs per outcome and p95 per 5 s, last 15 minutes
//! GET    /nodes                  the processes running workers, with their runs (durable: and the latest stalls)
//! GET    /workflows              running workflows, then the latest ended, with steps done/total: ?limit= (100)
//! GET    /workflows/{id}         one workflow: its state, failed step and error, its steps with their parents and runs
//! DELETE /workflows/{id}         cancel it, waiting until every step ended → 200 {"cancelled": id}; 409 if it ended
//! ```
//!
//! The dashboard sees every run of the manager, whoever started it: it
//! installs a [`Journal`] as the manager's
//! [`Observer`](worker_core::observe::Observer). Runs that ended before it
//! was mounted are not shown.
//!
//! Over a durable manager (`Workers::backend`), it reads runs, their
//! messages, the timeline and the nodes from the backend's
//! [`History`](worker_core::backend::History) instead, so it shows the
//! whole cluster's, whichever node ran them; runs of `local` workers, which
//! never reach the backend, still come from the journal, and the recent
//! runs list both. The journal is a `History` too: every view reads one
//! `History` and answers the same typed JSON in both modes.

#![warn(missing_docs)]

mod clock;
pub mod errors;
pub mod journal;
pub mod page;
pub mod payloads;
mod routes;
mod source;
pub mod timeline;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use worker_core::WorkerManager;

use crate::journal::{DEFAULT_MESSAGES_PER_RUN, DEFAULT_RECENT_RUNS, Journal};
use crate::payloads::Validator;

/// The largest request body `POST /workers/{name}/runs` accepts by default: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The whole dashboard and its JSON API, over `manager`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = axum::Router::new().nest("/workers", worker_web::router(worker_core::WorkerManager::new()));
/// # let _ = app;
/// # }
/// ```
pub fn router(manager: WorkerManager) -> Router {
    Dashboard::new(manager).router()
}

/// Mounts a dashboard router ([`router`], [`router_read_only`] or
/// [`Dashboard::router`]) on `app` under `prefix`, serving the page at both
/// `/ops` and `/ops/` (axum's `nest` alone routes only the first, and the
/// second is the address most people type).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = worker_core::WorkerManager::new();
/// let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(manager));
/// # let _ = app;
/// # }
/// ```
pub fn mount(app: Router, prefix: &str, dashboard: Router) -> Router {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return app.merge(dashboard);
    }
    app.nest(prefix, dashboard)
        .route(&format!("{prefix}/"), axum::routing::get(page::index))
}

/// The dashboard without the routes that start, cancel or retry runs or
/// cancel workflows: those answer `403`, and the page hides their buttons.
pub fn router_read_only(manager: WorkerManager) -> Router {
    Dashboard::new(manager).read_only(true).router()
}

/// The dashboard's settings; [`router`](Dashboard::router) makes it.
///
/// ```
/// use serde::Deserialize;
/// use worker_web::Dashboard;
/// use worker_web::payloads::{Payload, validator};
///
/// #[derive(Deserialize)]
/// struct Email { to: String }
/// impl Payload for Email {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = worker_core::WorkerManager::new();
/// let dashboard = Dashboard::new(manager)
///     .validator("send-email", validator::<Email>())  // 422 before a bad payload starts anything
///     .body_limit(16 * 1024)
///     .recent_runs(500);
/// let app = axum::Router::new().nest("/ops/workers", dashboard.router());
/// # let _ = app;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Dashboard {
    manager: WorkerManager,
    read_only: bool,
    body_limit: usize,
    recent_runs: usize,
    messages_per_run: usize,
    validators: HashMap<String, Validator>,
}

impl Dashboard {
    /// The dashboard of `manager`, with the defaults: read-write, 64 KiB
    /// bodies, the last 1,000 ended runs and 1,000 messages per run.
    pub fn new(manager: WorkerManager) -> Self {
        Dashboard {
            manager,
            read_only: false,
            body_limit: DEFAULT_BODY_LIMIT,
            recent_runs: DEFAULT_RECENT_RUNS,
            messages_per_run: DEFAULT_MESSAGES_PER_RUN,
            validators: HashMap::new(),
        }
    }

    /// `true`: no route starts, cancels or retries a run, or cancels a
    /// workflow (`403`).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The largest payload accepted, in bytes; larger ones get `413`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many ended runs are kept for the recent-runs view (at least 1).
    pub fn recent_runs(mut self, runs: usize) -> Self {
        self.recent_runs = runs.max(1);
        self
    }

    /// How many messages of one run are kept (the last ones; at least 1).
    pub fn messages_per_run(mut self, messages: usize) -> Self {
        self.messages_per_run = messages.max(1);
        self
    }

    /// Checks `worker`'s payloads with `validator` before starting runs
    /// over HTTP; a payload it turns away gets `422` and starts nothing.
    /// Build one with [`payloads::validator`].
    pub fn validator(mut self, worker: impl Into<String>, validator: Validator) -> Self {
        self.validators.insert(worker.into(), validator);
        self
    }

    /// The manager it shows.
    pub fn manager(&self) -> &WorkerManager {
        &self.manager
    }

    /// The router, and the journal it reads runs from (also the manager's
    /// observer from now on).
    pub fn into_parts(self) -> (Router, Arc<Journal>) {
        let journal = Arc::new(Journal::new(
            self.recent_runs,
            self.messages_per_run,
            worker_core::process_name(),
        ));
        self.manager.observe(journal.clone());
        let state = routes::Web {
            runs: source::RunSource::new(self.manager.clone(), journal.clone()),
            manager: self.manager,
            journal: journal.clone(),
            read_only: self.read_only,
            body_limit: self.body_limit,
            validators: Arc::new(self.validators),
        };
        (routes::router(state), journal)
    }

    /// The router: mount it anywhere with [`mount`] (or `Router::nest`,
    /// which leaves the prefix with a trailing slash unrouted).
    pub fn router(self) -> Router {
        self.into_parts().0
    }
}
