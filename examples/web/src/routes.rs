//! The HTTP API: one handler per route, each answering JSON (or SSE), and
//! every failure as a JSON [`ApiError`].

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::Stream;
use serde_json::{Value, json};
use worker_core::{Error, format_duration};

use crate::AppState;
use crate::errors::ApiError;
use crate::feeds::{FeedEvent, FeedReader};
use crate::page;
use crate::payloads::invalid;

/// Every route over `state`, with the body limit of `state.config()`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config().body_limit;
    Router::new()
        .route("/", get(page::index))
        .route("/workers", get(list_workers))
        .route(
            "/workers/{name}/runs",
            post(start_run).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/runs", get(list_runs))
        .route("/runs/{id}", delete(cancel_run))
        .route("/runs/{id}/events", get(run_events))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// `POST /workers/{name}/runs`: checks everything first (the worker, the
/// body's size, that it is JSON, the payload's validator), so a request
/// turned away starts nothing; then starts the run, hands its handle to a
/// feed and answers `202 {"run_id", "worker", "events_url"}`.
async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let manager = state.manager();
    if manager.stats(&name).await.is_none() {
        return Err(Error::NotRegistered(name).into());
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the payload for worker '{name}' is larger than the limit of {} bytes",
                state.config().body_limit
            ))
        } else {
            ApiError::bad_request(format!(
                "can't read the payload for worker '{name}': {rejection}"
            ))
        }
    })?;
    let payload = parse_payload(&name, &headers, &body)?;
    if let Some(validate) = state.validator(&name) {
        validate(payload.as_ref())
            .map_err(|detail| ApiError::unprocessable(invalid(&name, &detail)))?;
    }

    let handle = manager.call(&name, None, payload).await?;
    let run_id = handle.id().to_owned();
    state.feeds().follow(handle);
    log::info!(target: "web", "started {name} run {run_id}");
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

/// `GET /workers`: `{"workers": [...]}`, every definition with its
/// statistics, sorted by name.
async fn list_workers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let manager = state.manager();
    let mut workers = Vec::new();
    for name in manager.definitions().await? {
        let Some(stats) = manager.stats(&name).await else {
            continue;
        };
        let timeout = manager.default_timeout(&name);
        workers.push(json!({
            "name": name,
            "default_timeout": timeout.map(format_duration),
            "default_timeout_ms": timeout.map(|t| t.as_millis() as u64),
            "validated": state.validator(&name).is_some(),
            "total_runs": stats.runs,
            "errors": stats.errors,
            "cancelled": stats.cancelled,
            "timeouts": stats.timeouts,
            "panics": stats.panics,
            "success_rate": stats.success_rate(),
            "average_duration_ms": (stats.average_ms() * 10.0).round() / 10.0,
            "last_run_ms": stats.last_run_ms,
            "running": stats.running,
        }));
    }
    Ok(Json(json!({"workers": workers})))
}

/// `GET /runs`: `{"runs": [...]}`, the runs in flight, oldest first, each
/// with its worker, its last `progress` and where to follow it (`null` for
/// runs not started over HTTP, which have no feed).
async fn list_runs(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let manager = state.manager();
    let mut worker_of = HashMap::new();
    for name in manager.definitions().await? {
        for id in manager.running_for(&name).await.unwrap_or_default() {
            worker_of.insert(id, name.clone());
        }
    }
    let runs: Vec<Value> = manager
        .running()
        .await?
        .into_iter()
        .filter_map(|id| {
            // A run that started between the two listings is left for the
            // next poll.
            let worker = worker_of.remove(&id)?;
            let feed = state.feeds().get(&id);
            Some(json!({
                "run_id": id,
                "worker": worker,
                "progress": feed.as_ref().and_then(|feed| feed.progress()),
                "events_url": feed.map(|_| format!("/runs/{id}/events")),
            }))
        })
        .collect();
    Ok(Json(json!({"runs": runs})))
}

/// `DELETE /runs/{id}`: cancels the run and waits until it has ended (at
/// most the grace period); `404` if it is unknown or already finished.
async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manager().cancel(&id).await?;
    log::info!(target: "web", "cancelled run {id}");
    Ok(Json(json!({"cancelled": id})))
}

/// `GET /runs/{id}/events`: the run's messages as `event: message` (id =
/// sequence number, data = the JSON), from the first one kept, then live;
/// `event: dropped` (`{"dropped": n}`) if some were dropped before this
/// client read them; finally `event: outcome` and the end of the stream. A
/// `Last-Event-ID` header resumes after that message.
async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let feed = state.feeds().get(&id).ok_or_else(|| {
        ApiError::not_found(format!(
            "Run '{id}' has no events: it is unknown, was not started over HTTP, or ended more than {} ago",
            format_duration(state.config().feed_retention)
        ))
    })?;
    let after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let stream = futures::stream::unfold(feed.reader(after), |mut reader: FeedReader| async move {
        let event = reader.next().await?;
        Some((Ok(sse_event(event)), reader))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(event: FeedEvent) -> Event {
    match event {
        FeedEvent::Message { seq, data } => Event::default()
            .event("message")
            .id(seq.to_string())
            .data(data.to_string()),
        FeedEvent::Dropped(count) => Event::default()
            .event("dropped")
            .data(json!({"dropped": count}).to_string()),
        FeedEvent::Outcome(outcome) => Event::default()
            .event("outcome")
            .data(outcome.to_json().to_string()),
    }
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
