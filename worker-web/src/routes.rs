//! The HTTP API: one handler per route, each answering JSON (or SSE), and
//! every failure as a JSON [`ApiError`]. Paths in answers (`events_url`)
//! are relative to where the router is mounted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use worker_core::backend::{History, HistoryQuery};
use worker_core::observe::Outcome;
use worker_core::{
    Call, Error, RunId, WorkerManager, WorkflowId, WorkflowState, WorkflowStatus, format_duration,
};

use crate::clock::unix_ms;
use crate::errors::ApiError;
use crate::journal::{Journal, RunEvent};
use crate::page;
use crate::payloads::{Validator, invalid};
use crate::source::RunSource;
use crate::timeline::{BUCKET, BUCKETS};
use crate::views::{
    NodesView, RunDetail, RunSummary, ScheduledView, TimelineView, WorkflowDetail, WorkflowSummary,
};

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Web {
    pub(crate) manager: WorkerManager,
    pub(crate) journal: Arc<Journal>,
    /// Where runs are read: the journal, and the backend in durable mode.
    pub(crate) runs: RunSource,
    pub(crate) read_only: bool,
    pub(crate) body_limit: usize,
    pub(crate) validators: Arc<HashMap<String, Validator>>,
}

impl Web {
    /// `403` on a read-only dashboard.
    fn writable(&self, what: &str) -> Result<(), ApiError> {
        if self.read_only {
            return Err(ApiError::forbidden(format!(
                "this dashboard is read-only: it can't {what}; mount worker_web::router instead of router_read_only to allow it"
            )));
        }
        Ok(())
    }
}

pub(crate) fn router(state: Web) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/", get(page::index))
        .route("/workers", get(list_workers))
        .route(
            "/workers/{name}/runs",
            post(start_run).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/workers/{name}/pause", post(pause_worker))
        .route("/workers/{name}/resume", post(resume_worker))
        .route("/runs", get(list_runs))
        .route("/runs/recent", get(recent_runs))
        .route("/runs/scheduled", get(scheduled_runs))
        .route("/runs/retry-failed", post(retry_failed))
        .route("/runs/{id}", get(run_detail).delete(cancel_run))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/retry", post(retry_run))
        .route("/timeline", get(timeline))
        .route("/nodes", get(nodes))
        .route("/workflows", get(list_workflows))
        .route(
            "/workflows/{id}",
            get(workflow_detail).delete(cancel_workflow),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// `POST /workers/{name}/runs`: checks everything first (the worker, the
/// body's size, that it is JSON, the payload's validator), so a request
/// turned away starts nothing; then starts the run and answers
/// `202 {"run_id", "worker", "events_url"}`.
async fn start_run(
    State(state): State<Web>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.writable("start runs")?;
    let manager = &state.manager;
    if manager.stats(&name).await.is_none() {
        return Err(Error::NotRegistered(name).into());
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the payload for worker '{name}' is larger than the limit of {} bytes",
                state.body_limit
            ))
        } else {
            ApiError::bad_request(format!(
                "can't read the payload for worker '{name}': {rejection}"
            ))
        }
    })?;
    let payload = parse_payload(&name, &headers, &body)?;
    if let Some(validate) = state.validators.get(&name) {
        validate(payload.as_ref())
            .map_err(|detail| ApiError::unprocessable(invalid(&name, &detail)))?;
    }
    started(&state, &name, payload).await
}

/// Starts a run and answers `202`. The handle is let go: the journal sees
/// the run's messages and outcome, and the run goes on without a reader.
async fn started(state: &Web, name: &str, payload: Option<Value>) -> Result<Response, ApiError> {
    let handle = state.manager.call(name, None, payload).await?;
    let run_id = handle.id().to_owned();
    log::info!(target: "worker_web", "started {name} run {run_id}");
    let events_url = format!("/runs/{run_id}/events");
    let body = json!({"run_id": run_id, "worker": name, "events_url": events_url});
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, events_url)],
        Json(body),
    )
        .into_response())
}

/// The payload of a request body: none for an empty body, else its JSON.
/// A body with a `Content-Type` must say JSON (so a browser form or a
/// cross-site `text/plain` post can't start runs); one without is read as
/// JSON, for `curl -d`-style clients that say nothing.
fn parse_payload(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("?");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::unsupported_media_type(format!(
                "the payload for worker '{name}' must be JSON sent as Content-Type: application/json, not {content_type}"
            )));
        }
    }
    serde_json::from_slice(body).map(Some).map_err(|err| {
        ApiError::bad_request(format!(
            "malformed JSON in the payload for worker '{name}': {err}"
        ))
    })
}

/// `GET /workers`: `{"read_only", "node", "workers": [...]}`, every
/// definition with its statistics and options, sorted by name.
///
/// A worker's cluster-wide limits are in two places, named as in Rust:
/// what it declares, in `options` (`global_concurrency`, `rate` as
/// `"100/1m"`, `limit_by`, `key_concurrency`, `key_rate`; `null` when not
/// declared), and their use now, in `limits` (a [`LimitUse`]: `running`,
/// `global_concurrency`, `started` within the `rate` period, `rate`, and
/// the busiest `keys`, each `{"key", "running", "started", "queued"}`),
/// `null` for a worker without limits. In-process the use is this
/// process's; over a durable backend, the cluster's.
///
/// [`LimitUse`]: worker_core::LimitUse
async fn list_workers(State(state): State<Web>) -> Result<Json<Value>, ApiError> {
    let manager = &state.manager;
    let mut workers = Vec::new();
    for name in manager.definitions().await? {
        let (Some(stats), Some(options)) = (manager.stats(&name).await, manager.options(&name))
        else {
            continue;
        };
        let timeout = options.get_timeout();
        let schedule = match (options.get_every(), options.get_cron()) {
            (Some(every), _) => Some(format!("every {}", format_duration(every))),
            (None, Some(cron)) => Some(match options.get_tz() {
                Some(tz) => format!("cron {cron} ({tz})"),
                None => format!("cron {cron} (UTC)"),
            }),
            (None, None) => None,
        };
        workers.push(json!({
            "name": name,
            "default_timeout": timeout.map(format_duration),
            "default_timeout_ms": timeout.map(|t| t.as_millis() as u64),
            "validated": state.validators.contains_key(&name),
            "total_runs": stats.runs,
            "errors": stats.errors,
            "cancelled": stats.cancelled,
            "timeouts": stats.timeouts,
            "panics": stats.panics,
            "retries": stats.retries,
            "skipped": stats.skipped,
            // None before the first run: 0 % would read as "all failed".
            "success_rate": (stats.runs > 0).then(|| stats.success_rate()),
            "average_duration_ms": (stats.average_ms() * 10.0).round() / 10.0,
            "p50_ms": stats.p50_ms,
            "p95_ms": stats.p95_ms,
            "p99_ms": stats.p99_ms,
            "wait_p50_ms": stats.wait_p50_ms,
            "wait_p99_ms": stats.wait_p99_ms,
            "last_run_ms": stats.last_run_ms,
            "running": stats.running,
            "queued": stats.queued,
            "scheduled": stats.scheduled,
            "paused": stats.paused,
            "limits": stats.limits,
            "options": {
                "priority": options.get_priority(),
                "unique": options.get_unique(),
                "timeout": timeout.map(format_duration),
                "retries": options.get_retries(),
                "backoff": format_duration(options.get_backoff()),
                "concurrency": options.get_concurrency(),
                "queue_limit": options.get_queue_limit(),
                "global_concurrency": options.get_global_concurrency(),
                "rate": options.get_rate(),
                "limit_by": options.get_limit_by(),
                "key_concurrency": options.get_key_concurrency(),
                "key_rate": options.get_key_rate(),
                "schedule": schedule,
                "next_tick_ms": manager.next_tick(&name).map(unix_ms),
            },
        }));
    }
    Ok(Json(json!({
        "read_only": state.read_only,
        "node": state.journal.node(),
        "workers": workers,
    })))
}

/// `POST /workers/{name}/pause`: its queued runs wait, calls are still
/// accepted (in durable mode, on every node); `{"worker", "paused": true}`.
async fn pause_worker(
    State(state): State<Web>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.writable("pause workers")?;
    state.manager.pause(&name).await?;
    log::info!(target: "worker_web", "paused {name}");
    Ok(Json(json!({"worker": name, "paused": true})))
}

/// `POST /workers/{name}/resume`: its waiting runs start;
/// `{"worker", "paused": false}`.
async fn resume_worker(
    State(state): State<Web>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.writable("resume workers")?;
    state.manager.resume(&name).await?;
    log::info!(target: "worker_web", "resumed {name}");
    Ok(Json(json!({"worker": name, "paused": false})))
}

#[derive(Debug, Deserialize)]
struct WorkerQuery {
    worker: Option<String>,
}

/// `GET /runs/scheduled`: `{"runs": [...]}`, the runs waiting for their
/// start time, soonest first, each with its worker, time, key and
/// priority; of one `worker` if given.
async fn scheduled_runs(
    State(state): State<Web>,
    query: Result<Query<WorkerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("bad query for GET /runs/scheduled: {rejection}"))
    })?;
    let worker = query.worker.filter(|w| !w.is_empty());
    let runs = state.manager.scheduled_runs(worker.as_deref()).await?;
    let runs: Vec<ScheduledView> = runs.iter().map(ScheduledView::of).collect();
    Ok(Json(json!({"runs": runs})))
}

/// `POST /runs/retry-failed?worker=…&outcome=…`: every run of `worker`
/// that the recent-runs list shows with that filter and that didn't
/// succeed, started again with its payload, in one `call_many`;
/// `{"worker", "retried": n, "run_ids": [...]}`.
async fn retry_failed(
    State(state): State<Web>,
    query: Result<Query<RecentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.writable("retry runs")?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!(
            "bad query for POST /runs/retry-failed: {rejection}"
        ))
    })?;
    let Some(worker) = query.worker.clone().filter(|w| !w.is_empty()) else {
        return Err(ApiError::bad_request(
            "POST /runs/retry-failed needs ?worker=NAME: runs are retried one worker at a time",
        ));
    };
    if state.manager.stats(&worker).await.is_none() {
        return Err(Error::NotRegistered(worker).into());
    }
    let history = recent_query(query)?;
    let failed: Vec<_> = state
        .runs
        .recent(HistoryQuery {
            limit: history.limit.min(state.journal.capacity()),
            ..history
        })
        .await?
        .into_iter()
        .filter(|run| {
            run.outcome()
                .is_some_and(|outcome| outcome != Outcome::Succeeded)
        })
        .collect();
    let calls = failed.iter().map(|run| match &run.payload {
        Some(payload) => Call::new().payload(payload),
        None => Call::new(),
    });
    let run_ids = state.manager.call_many(&worker, calls).await?;
    for (run, retry) in failed.iter().zip(&run_ids) {
        state.journal.retried(run.run_id, retry);
    }
    log::info!(target: "worker_web", "retried {} failed runs of {worker}", run_ids.len());
    Ok(Json(
        json!({"worker": worker, "retried": run_ids.len(), "run_ids": run_ids}),
    ))
}

/// The workers of the runs in flight, by run id.
async fn running_workers(manager: &WorkerManager) -> Result<HashMap<String, String>, ApiError> {
    let mut worker_of = HashMap::new();
    for name in manager.definitions().await? {
        for id in manager.running_for(&name).await.unwrap_or_default() {
            worker_of.insert(id, name.clone());
        }
    }
    Ok(worker_of)
}

/// `GET /runs`: `{"runs": [...]}`, the runs in flight, oldest first, each
/// with its worker, its last `progress`, when it started and where to
/// follow it (`null` for a run that started before the dashboard).
async fn list_runs(State(state): State<Web>) -> Result<Json<Value>, ApiError> {
    let manager = &state.manager;
    let mut worker_of = running_workers(manager).await?;
    let runs: Vec<Value> = manager
        .running()
        .await?
        .into_iter()
        .filter_map(|id| {
            // A run that started between the two listings is left for the
            // next poll.
            let worker = worker_of.remove(&id)?;
            let record = id.parse().ok().and_then(|id| state.journal.get(id));
            let run = record.as_ref().map(|record| record.stored_run());
            Some(json!({
                "run_id": id,
                "worker": worker,
                "progress": run.as_ref().and_then(|run| run.progress.clone()),
                "started_at_ms": run.as_ref().and_then(|run| run.started_at).map(unix_ms),
                "attempt": run.as_ref().map(|run| run.attempt),
                "events_url": record.map(|_| format!("/runs/{id}/events")),
            }))
        })
        .collect();
    Ok(Json(json!({"runs": runs})))
}

#[derive(Debug, Deserialize)]
struct RecentQuery {
    worker: Option<String>,
    outcome: Option<String>,
    failed_first: Option<String>,
    limit: Option<usize>,
}

/// `GET /runs/recent`: the ended runs kept, newest first, filtered by
/// `worker` and `outcome`; with `failed_first=1` failures come first.
async fn recent_runs(
    State(state): State<Web>,
    query: Result<Query<RecentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("bad query for GET /runs/recent: {rejection}"))
    })?;
    let kept = state.journal.capacity();
    let history = recent_query(query)?;
    let runs = state
        .runs
        .recent(HistoryQuery {
            limit: history.limit.min(kept),
            ..history
        })
        .await?;
    let runs: Vec<RunSummary> = runs.iter().map(RunSummary::of).collect();
    Ok(Json(json!({"runs": runs, "kept": kept})))
}

/// The recent-runs filter of a query string.
fn recent_query(query: RecentQuery) -> Result<HistoryQuery, ApiError> {
    let worker = query.worker.filter(|w| !w.is_empty());
    let outcome = match query.outcome.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<Outcome>()
                .map_err(|err| ApiError::bad_request(format!("outcome: {err}")))?,
        ),
    };
    let failed_first = match query.failed_first.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "failed_first must be 1 or 0, not {other:?}"
            )));
        }
    };
    Ok(HistoryQuery {
        worker,
        outcome,
        failed_first,
        limit: query.limit.unwrap_or(usize::MAX),
    })
}

/// The run id of a path: one that isn't a run id is an unknown run.
fn run_id(state: &Web, id: &str) -> Result<RunId, ApiError> {
    id.parse().map_err(|_| unknown_run(state, id))
}

fn unknown_run(state: &Web, id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Run '{id}' is unknown: it never existed, started before the dashboard was mounted, or is older than the last {} ended runs kept",
        state.journal.capacity()
    ))
}

/// `GET /runs/{id}`: one run, in flight or recently ended.
async fn run_detail(
    State(state): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run_id = run_id(&state, &id)?;
    match state.runs.run(run_id).await? {
        Some(run) => Ok(Json(RunDetail::of(&run, state.journal.retried_as(run_id)))),
        None => Err(unknown_run(&state, &id)),
    }
}

/// `DELETE /runs/{id}`: cancels the run and waits until it has ended (at
/// most the grace period); `404` if it is unknown or already finished.
async fn cancel_run(
    State(state): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.writable("cancel runs")?;
    state.manager.cancel(&id).await?;
    log::info!(target: "worker_web", "cancelled run {id}");
    Ok(Json(json!({"cancelled": id})))
}

/// `POST /runs/{id}/retry`: a new run of the same worker with the same
/// payload, for a run that ended without succeeding (`409` otherwise).
async fn retry_run(State(state): State<Web>, Path(id): Path<String>) -> Result<Response, ApiError> {
    state.writable("retry runs")?;
    let run_id = run_id(&state, &id)?;
    let Some(run) = state.runs.run(run_id).await? else {
        return Err(unknown_run(&state, &id));
    };
    let (worker, outcome, payload) = (run.worker.clone(), run.outcome(), run.payload);
    match outcome {
        None => {
            return Err(ApiError::conflict(format!(
                "Run '{id}' of worker '{worker}' is still running: cancel it or wait for it to end before retrying it"
            )));
        }
        Some(Outcome::Succeeded) => {
            return Err(ApiError::conflict(format!(
                "Run '{id}' of worker '{worker}' succeeded; only a run that failed, timed out, panicked, stalled or was cancelled can be retried"
            )));
        }
        Some(
            Outcome::Failed
            | Outcome::TimedOut
            | Outcome::Panicked
            | Outcome::Cancelled
            | Outcome::Stalled,
        ) => {}
    }
    let response = started(&state, &worker, payload).await?;
    if let Some(Ok(retry)) = response.headers().get(header::LOCATION).map(|l| l.to_str()) {
        let retry_id = retry
            .trim_start_matches("/runs/")
            .trim_end_matches("/events");
        state.journal.retried(run_id, retry_id);
    }
    Ok(response)
}

/// `GET /runs/{id}/events`: the run's messages as `event: message` (id =
/// sequence number, data = the JSON), from the first one kept, then live;
/// `event: dropped` (`{"dropped": n}`) if some were dropped before this
/// client read them; finally `event: outcome` and the end of the stream. A
/// `Last-Event-ID` header resumes after that message.
async fn run_events(
    State(state): State<Web>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after: Option<u64> = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let run_id = run_id(&state, &id)?;
    let Some(events) = state.runs.events(run_id, after).await? else {
        return Err(unknown_run(&state, &id));
    };
    let stream = futures::StreamExt::map(events, |event| Ok(sse_event(event)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(event: RunEvent) -> Event {
    match event {
        RunEvent::Message { seq, data } => Event::default()
            .event("message")
            .id(seq.to_string())
            .data(data.to_string()),
        RunEvent::Dropped(count) => Event::default()
            .event("dropped")
            .data(json!({"dropped": count}).to_string()),
        RunEvent::Outcome(outcome) => Event::default().event("outcome").data(outcome.to_string()),
    }
}

/// `GET /timeline`: runs per outcome and p95 duration, per 5 seconds, for
/// the last 15 minutes.
async fn timeline(State(state): State<Web>) -> Result<Json<TimelineView>, ApiError> {
    let window = BUCKET * BUCKETS as u32;
    let buckets = state.runs.timeline(window, BUCKET).await?;
    Ok(Json(TimelineView::of(
        &buckets,
        BUCKET,
        BUCKETS,
        SystemTime::now(),
    )))
}

/// How many stalls `/nodes` lists.
const RECENT_STALLS: usize = 20;

/// `GET /nodes`: the processes that run this manager's workers, their
/// heartbeats and runs: every node sharing the backend in durable mode,
/// with the latest stalls (attempts whose node stopped renewing);
/// in-process, this one, alive as it answers.
async fn nodes(State(state): State<Web>) -> Result<Json<NodesView>, ApiError> {
    let nodes = state.runs.nodes().await?;
    let stalls = state.runs.stalls(RECENT_STALLS).await?;
    Ok(Json(NodesView::of(
        state.manager.is_durable(),
        &nodes,
        &stalls,
    )))
}

/// How many workflows `GET /workflows` lists without a `?limit=`.
const WORKFLOWS_SHOWN: usize = 100;

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /workflows?limit=`: `{"workflows": [...]}`, the running ones
/// (newest first), then the latest ended, at most `limit` (100 by
/// default), each with its state, how many of its steps have ended and
/// its failed step and error.
async fn list_workflows(
    State(state): State<Web>,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("bad query for GET /workflows: {rejection}"))
    })?;
    let limit = query.limit.unwrap_or(WORKFLOWS_SHOWN);
    let flows = state.manager.workflows(limit).await?;
    let flows: Vec<WorkflowSummary> = flows.iter().map(WorkflowSummary::of).collect();
    Ok(Json(json!({"workflows": flows})))
}

/// The workflow of a path, or a `404` that says why there is none: an id
/// that isn't one is as unknown as one that never ran, but the sentence
/// tells the two apart.
async fn find_workflow(state: &Web, id: &str) -> Result<WorkflowStatus, ApiError> {
    if let Err(why) = id.parse::<WorkflowId>() {
        return Err(ApiError::not_found(format!(
            "Workflow '{id}' is unknown: {why}"
        )));
    }
    state.manager.workflow(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Workflow '{id}' is unknown: it never ran here, or ended before the latest ended workflows kept"
        ))
    })
}

/// `GET /workflows/{id}`: one workflow, running or kept after it ended,
/// with its steps (`name`, `worker`, `run_id`, `parents`, `state`) in the
/// order they were declared.
async fn workflow_detail(
    State(state): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let flow = find_workflow(&state, &id).await?;
    Ok(Json(WorkflowDetail::of(&flow)))
}

/// `DELETE /workflows/{id}`: cancels every step not yet ended and waits
/// until all have ended; `{"cancelled": id}`. `404` for an unknown
/// workflow, `409` for one that has already ended (nothing to cancel:
/// its page shows how it ended).
async fn cancel_workflow(
    State(state): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.writable("cancel workflows")?;
    let flow = find_workflow(&state, &id).await?;
    if flow.state != WorkflowState::Running {
        return Err(ApiError::conflict(format!(
            "Workflow '{id}' ({}) has already ended ({}); only a running workflow can be cancelled",
            flow.name,
            flow.state.as_str()
        )));
    }
    state.manager.cancel_workflow(&id).await?;
    log::info!(target: "worker_web", "cancelled workflow {} ({id})", flow.name);
    Ok(Json(json!({"cancelled": id})))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("there is no route {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}
