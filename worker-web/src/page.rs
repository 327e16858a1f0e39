//! `GET /`: the dashboard, one HTML page with its CSS and vanilla JS inline,
//! embedded in the binary (no build step, nothing fetched from elsewhere).
//!
//! It works under any prefix: it calls the API relative to its own path,
//! and switches views with the URL's hash (`#/` the overview, `#/runs` the
//! recent runs, `#/run/{id}` a run's page, `#/workflows` the workflows,
//! `#/workflows/{id}` a workflow's page with its graph of steps).
//!
//! Stable hooks for tests:
//! - `#status` (`live`/`offline`), `#action-error`, `a#nav-overview`,
//!   `a#nav-runs`, `a#nav-workflows`;
//! - overview: `#stats tr[data-worker]` with `td.runs td.errors td.retries
//!   td.running td.success td.p50 td.p95 td.p99 td.timeout td.schedule`;
//!   `select#worker`, `input#payload`, `button#start`, `button#start-demo`;
//!   `#running .run[data-run-id][data-worker]` with `button.cancel`;
//!   `svg#chart-throughput` and `svg#chart-latency` (`data-drawn="1"` once
//!   drawn); `#nodes .node[data-node]`; `#stalls .stall[data-run-id]`
//!   (durable mode);
//! - recent runs: `select#filter-worker`, `select#filter-outcome`,
//!   `input#failed-first`, `#recent tr.recent-run[data-run-id][data-outcome]`
//!   with `td.error`;
//! - a run: `#view-run[data-run-id][data-state][data-outcome]`,
//!   `pre#run-payload`, `pre#run-output`, `#run-attempts li.attempt`,
//!   `#run-messages li.message`, `button#run-cancel`, `button#run-retry`;
//! - workflows: `#workflows tr.workflow[data-workflow-id][data-state]` with
//!   `td.name a`, `td.steps span.done` (`done/total`), `td.failed`,
//!   `td.error`;
//! - a workflow: `#view-workflow[data-workflow-id][data-state]`,
//!   `#workflow-progress`, `button#workflow-cancel`, `#workflow-failure`
//!   with `a#workflow-failed-step` and `#workflow-error`;
//!   `svg#workflow-dag` (`data-drawn="1"` once drawn) with one
//!   `a.step[data-step][data-state][data-run-id][href]` per step and one
//!   `path.edge[data-from][data-to]` per parent;
//!   `#workflow-steps tr.step-row[data-step][data-state]`.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page's source.
pub const INDEX_HTML: &str = include_str!("page.html");

/// Serves [`INDEX_HTML`], never cached (it changes with the binary).
pub async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX_HTML))
}
