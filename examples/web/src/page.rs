//! `GET /`: the dashboard, one HTML page with its CSS and vanilla JS inline,
//! embedded in the binary (no build step, nothing fetched from elsewhere).
//!
//! It lists the workers with their statistics (polling `GET /workers` every
//! 500 ms), shows the runs in flight (`GET /runs`) with progress bars fed by
//! each run's SSE stream, and starts runs: `#start-demo` starts a
//! `generate-report` run; the form starts any worker with a JSON payload.
//!
//! Stable hooks for tests: `#start-demo`, `#runs .run[data-run-id]`
//! (with `data-worker`, `data-state` = `running|ok|failed|cancelled|gone`,
//! and a `progress` element), `#stats tr[data-worker=NAME]` with cells
//! `td.runs td.errors td.cancelled td.success td.avg td.last td.running
//! td.timeout`, `#start-error`.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page's source.
pub const INDEX_HTML: &str = include_str!("page.html");

/// Serves [`INDEX_HTML`], never cached (it changes with the binary).
pub async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX_HTML))
}
