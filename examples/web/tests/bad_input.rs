//! Bad input is turned away with a JSON error that names the worker and
//! what is wrong, and starts nothing.
//!
//! Each test serves an independent manager holding the same `#[worker]`
//! fns as the global one, so "nothing started" can be checked exactly:
//! every counter still zero, no run listed, no feed kept.

mod common;

use common::{Server, start};
use serde_json::{Value, json};
use web::{AppState, Config};
use worker_core::WorkerManager;

async fn serve(config: Config) -> Server {
    let manager = WorkerManager::new();
    manager.register_declared().unwrap();
    start(AppState::with_manager(manager, config)).await
}

async fn refused(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

/// Nothing started: no run in flight, none counted, no feed.
async fn assert_nothing_started(server: &Server) {
    let manager = server.state.manager();
    assert_eq!(manager.running().await.unwrap(), Vec::<String>::new());
    for name in manager.definitions().await.unwrap() {
        let stats = manager.stats(&name).await.unwrap();
        assert_eq!(
            (stats.runs, stats.cancelled, stats.running),
            (0, 0, 0),
            "{name}"
        );
    }
    assert!(server.state.feeds().is_empty());
    assert_eq!(server.get_json("/runs").await, json!({"runs": []}));
    let workers = server.get_json("/workers").await;
    for worker in workers["workers"].as_array().unwrap() {
        assert_eq!(worker["total_runs"], 0, "{worker}");
        assert_eq!(worker["running"], 0, "{worker}");
    }
}

#[tokio::test]
async fn an_unknown_worker_is_404() {
    let server = serve(Config::default()).await;
    let definitions = server.state.manager().definitions().await.unwrap();
    let message = refused(
        server
            .post_run("no-such-worker", Some(r#"{"to": "a@b.c"}"#))
            .await,
        404,
    )
    .await;
    assert_eq!(message, "Worker 'no-such-worker' not registered");
    // Also with a body that would be refused for other reasons.
    let message = refused(server.post_run("nope", Some("{oops")).await, 404).await;
    assert_eq!(message, "Worker 'nope' not registered");
    assert_eq!(
        server.state.manager().definitions().await.unwrap(),
        definitions
    );
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = serve(Config::default()).await;
    for body in [
        r#"{"to": "a@b.c""#,
        "{to: 1}",
        "not json",
        r#"{"to": "a@b.c"} trailing"#,
    ] {
        let message = refused(server.post_run("send-email", Some(body)).await, 400).await;
        assert!(
            message.starts_with("malformed JSON in the payload for worker 'send-email': "),
            "{body}: {message}"
        );
    }
    let message = refused(server.post_run("send-email", Some("{oops")).await, 400).await;
    assert_eq!(
        message,
        "malformed JSON in the payload for worker 'send-email': key must be a string at line 1 column 2"
    );
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = serve(Config {
        body_limit: 64,
        ..Config::default()
    })
    .await;
    let big = json!({"to": "a@b.c", "body": "x".repeat(200)}).to_string();
    let message = refused(server.post_run("send-email", Some(&big)).await, 413).await;
    assert_eq!(
        message,
        "the payload for worker 'send-email' is larger than the limit of 64 bytes"
    );
    // Without a Content-Length (streamed in chunks), too.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..100].to_owned()), Ok(big[100..].to_owned())];
    let streamed = server
        .client
        .post(server.url("/workers/send-email/runs"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    refused(streamed, 413).await;
    assert_nothing_started(&server).await;

    // Right at the limit is fine.
    let padding = 64 - json!({"to": "a@b.c", "body": ""}).to_string().len();
    let fits = json!({"to": "a@b.c", "body": "x".repeat(padding)}).to_string();
    assert_eq!(fits.len(), 64);
    server.start_run("send-email", Some(&fits)).await;
}

#[tokio::test]
async fn an_invalid_typed_payload_is_422_before_anything_starts() {
    let server = serve(Config::default()).await;
    let cases = [
        (
            "send-email",
            Some(r#"{"subject": "no recipient"}"#),
            "invalid payload for worker 'send-email': missing field `to`",
        ),
        (
            "send-email",
            Some(r#"{"to": "nobody"}"#),
            "invalid payload for worker 'send-email': `to` must be an email address, not \"nobody\"",
        ),
        (
            "send-email",
            None,
            "invalid payload for worker 'send-email': invalid type: null, expected struct Email",
        ),
        (
            "send-email",
            Some(r#"{"to": "a@b.c", "cc": "x@y.z"}"#),
            "invalid payload for worker 'send-email': unknown field `cc`, expected one of `to`, `subject`, `body`",
        ),
        (
            "generate-report",
            Some(r#"{"user_id": "seven"}"#),
            "invalid payload for worker 'generate-report': invalid type: string \"seven\", expected u64",
        ),
        (
            "generate-report",
            Some(r#"{"user_id": 7, "type": "hourly"}"#),
            "invalid payload for worker 'generate-report': `type` must be one of daily, weekly, monthly, yearly, not \"hourly\"",
        ),
        (
            "rebuild-index",
            Some(r#"{"seconds": 0}"#),
            "invalid payload for worker 'rebuild-index': `seconds` must be from 1 to 600, not 0",
        ),
        (
            "flaky-job",
            Some(r#"{"outcome": "explode"}"#),
            "invalid payload for worker 'flaky-job': unknown variant `explode`, expected one of `ok`, `error`, `panic`, `timeout`",
        ),
    ];
    for (worker, body, expected) in cases {
        let message = refused(server.post_run(worker, body).await, 422).await;
        assert_eq!(message, expected, "{worker} {body:?}");
    }
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let server = serve(Config::default()).await;
    let response = server
        .client
        .post(server.url("/workers/send-email/runs"))
        .header("content-type", "text/plain")
        .body(r#"{"to": "a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(response, 415).await,
        "the payload for worker 'send-email' must be JSON sent as Content-Type: application/json, not text/plain"
    );
    assert_nothing_started(&server).await;
    // No Content-Type at all is read as JSON.
    let response = server
        .client
        .post(server.url("/workers/send-email/runs"))
        .body(r#"{"to": "a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_run_after_shutdown_is_503() {
    let server = serve(Config::default()).await;
    server.state.manager().shutdown().await.unwrap();
    let message = refused(
        server
            .post_run("send-email", Some(r#"{"to": "a@b.c"}"#))
            .await,
        503,
    )
    .await;
    assert_eq!(
        message,
        "Worker manager is shut down: no new runs are accepted"
    );
    assert_nothing_started(&server).await;
}
