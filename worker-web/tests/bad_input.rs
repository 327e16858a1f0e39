//! Bad input is turned away with a JSON error that names the worker, the
//! run or the field and what is wrong, and changes nothing: no run
//! started, counted, listed or journaled.

mod common;

use common::{Server, start, start_default};
use serde_json::{Value, json};

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

/// Nothing started: no run in flight, none counted, none journaled.
async fn assert_nothing_started(server: &Server) {
    let manager = &server.manager;
    assert_eq!(manager.running().await.unwrap(), Vec::<String>::new());
    for name in manager.definitions().await.unwrap() {
        let stats = manager.stats(&name).await.unwrap();
        assert_eq!(
            (stats.runs, stats.cancelled, stats.running),
            (0, 0, 0),
            "{name}"
        );
    }
    assert!(server.journal.is_empty());
    assert_eq!(server.get_json("/runs").await, json!({"runs": []}));
    assert_eq!(
        server.get_json("/runs/recent").await,
        json!({"runs": [], "kept": 1000})
    );
}

#[tokio::test]
async fn an_unknown_worker_is_404() {
    let server = start_default().await;
    let definitions = server.manager.definitions().await.unwrap();
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
    assert_eq!(server.manager.definitions().await.unwrap(), definitions);
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = start_default().await;
    for body in [
        r#"{"to": "a@b.c""#,
        "{to: 1}",
        "not json",
        r#"{"to": "a@b.c"} trailing"#,
    ] {
        let message = refused(server.post_run("email", Some(body)).await, 400).await;
        assert!(
            message.starts_with("malformed JSON in the payload for worker 'email': "),
            "{body}: {message}"
        );
    }
    let message = refused(server.post_run("email", Some("{oops")).await, 400).await;
    assert_eq!(
        message,
        "malformed JSON in the payload for worker 'email': key must be a string at line 1 column 2"
    );
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = start(common::dashboard(common::manager().await).body_limit(64)).await;
    let big = json!({"to": format!("{}@b.c", "x".repeat(200))}).to_string();
    let message = refused(server.post_run("email", Some(&big)).await, 413).await;
    assert_eq!(
        message,
        "the payload for worker 'email' is larger than the limit of 64 bytes"
    );
    // Without a Content-Length (streamed in chunks), too.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..100].to_owned()), Ok(big[100..].to_owned())];
    let streamed = server
        .client
        .post(server.url("/workers/email/runs"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    refused(streamed, 413).await;
    assert_nothing_started(&server).await;

    // Right at the limit is fine.
    let padding = 64 - json!({"to": "@b.c"}).to_string().len();
    let fits = json!({"to": format!("{}@b.c", "x".repeat(padding))}).to_string();
    assert_eq!(fits.len(), 64);
    server.start_run("email", Some(&fits)).await;
}

#[tokio::test]
async fn an_invalid_typed_payload_is_422_before_anything_starts() {
    let server = start_default().await;
    let cases = [
        (
            Some(r#"{"subject": "no recipient"}"#),
            "invalid payload for worker 'email': unknown field `subject`, expected `to`",
        ),
        (
            Some(r#"{}"#),
            "invalid payload for worker 'email': missing field `to`",
        ),
        (
            Some(r#"{"to": "nobody"}"#),
            "invalid payload for worker 'email': `to` must be an email address, not \"nobody\"",
        ),
        (
            None,
            "invalid payload for worker 'email': invalid type: null, expected struct Email",
        ),
        (
            Some(r#"{"to": 7}"#),
            "invalid payload for worker 'email': invalid type: integer `7`, expected a string",
        ),
    ];
    for (body, expected) in cases {
        let message = refused(server.post_run("email", body).await, 422).await;
        assert_eq!(message, expected, "{body:?}");
    }
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let server = start_default().await;
    let response = server
        .client
        .post(server.url("/workers/email/runs"))
        .header("content-type", "text/plain")
        .body(r#"{"to": "a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(response, 415).await,
        "the payload for worker 'email' must be JSON sent as Content-Type: application/json, not text/plain"
    );
    assert_nothing_started(&server).await;
    // No Content-Type at all is read as JSON.
    let response = server
        .client
        .post(server.url("/workers/email/runs"))
        .body(r#"{"to": "a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_run_after_shutdown_is_503() {
    let server = start_default().await;
    server.manager.shutdown().await.unwrap();
    let message = refused(
        server.post_run("email", Some(r#"{"to": "a@b.c"}"#)).await,
        503,
    )
    .await;
    assert_eq!(
        message,
        "Worker manager is shut down: no new runs are accepted"
    );
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn bad_queries_and_unknown_runs_say_what_is_wrong() {
    let server = start_default().await;
    let message = refused(server.get("/runs/recent?outcome=exploded").await, 400).await;
    assert_eq!(
        message,
        "outcome: 'exploded' is not an outcome; use one of succeeded, failed, timed_out, panicked, cancelled, stalled"
    );
    let message = refused(server.get("/runs/recent?failed_first=maybe").await, 400).await;
    assert_eq!(message, "failed_first must be 1 or 0, not \"maybe\"");
    let message = refused(server.get("/runs/recent?limit=-1").await, 400).await;
    assert!(
        message.starts_with("bad query for GET /runs/recent: "),
        "{message}"
    );
    for path in ["/runs/nope", "/runs/nope/events"] {
        let message = refused(server.get(path).await, 404).await;
        assert!(
            message.starts_with("Run 'nope' is unknown"),
            "{path}: {message}"
        );
    }
    let message = refused(server.post("/runs/nope/retry").await, 404).await;
    assert!(message.starts_with("Run 'nope' is unknown"), "{message}");
    assert_nothing_started(&server).await;
}

#[tokio::test]
async fn a_read_only_dashboard_refuses_to_start_cancel_or_retry() {
    let manager = common::manager().await;
    let server = start(common::dashboard(manager.clone()).read_only(true)).await;
    assert_eq!(server.get_json("/workers").await["read_only"], true);
    let message = refused(
        server.post_run("email", Some(r#"{"to": "a@b.c"}"#)).await,
        403,
    )
    .await;
    assert_eq!(
        message,
        "this dashboard is read-only: it can't start runs; mount worker_web::router instead of router_read_only to allow it"
    );
    assert_nothing_started(&server).await;

    // Runs started by the application are shown, and can't be touched.
    let handle = manager.call("slow", None, None).await.unwrap();
    let message = refused(server.delete(&format!("/runs/{}", handle.id())).await, 403).await;
    assert!(message.contains("can't cancel runs"), "{message}");
    assert!(
        manager
            .running()
            .await
            .unwrap()
            .contains(&handle.id().to_owned())
    );
    let detail = server.get_json(&format!("/runs/{}", handle.id())).await;
    assert_eq!(detail["state"], "running");
    handle.cancel().await.unwrap();
    let message = refused(
        server.post(&format!("/runs/{}/retry", handle.id())).await,
        403,
    )
    .await;
    assert!(message.contains("can't retry runs"), "{message}");

    // Nor paused, resumed or retried in bulk.
    for path in ["/workers/flaky/pause", "/workers/flaky/resume"] {
        let message = refused(server.post(path).await, 403).await;
        assert!(message.contains("workers"), "{message}");
    }
    assert!(!manager.is_paused("flaky").await.unwrap());
    let message = refused(server.post("/runs/retry-failed?worker=flaky").await, 403).await;
    assert!(message.contains("can't retry runs"), "{message}");
}

#[tokio::test]
async fn bulk_retry_needs_a_known_worker_and_pausing_an_unknown_one_changes_nothing() {
    let server = common::start_default().await;
    let message = refused(server.post("/runs/retry-failed").await, 400).await;
    assert!(message.contains("?worker="), "{message}");
    refused(server.post("/runs/retry-failed?worker=nope").await, 404).await;
    refused(server.post("/workers/nope/pause").await, 404).await;
    let message = refused(
        server
            .post("/runs/retry-failed?worker=flaky&outcome=soon")
            .await,
        400,
    )
    .await;
    assert!(message.contains("outcome"), "{message}");
}
