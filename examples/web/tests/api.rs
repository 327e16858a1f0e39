//! The HTTP API against the real server on 127.0.0.1:0, through a real
//! HTTP client, over the process-global manager (`WORKER::`).
//!
//! Every test of this binary shares that manager: each starts its own runs
//! and follows them by id, compares statistics as deltas, and never shuts
//! the manager down (tests/shutdown.rs does, in a binary of its own).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SseEvent, eventually, start, start_default};
use serde_json::{Value, json};
use web::{AppState, Config};
use worker_core::prelude::*;

fn progress_of(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(|e| e.json()["progress"].as_u64().unwrap())
        .collect()
}

const TEN_STEPS: [u64; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

#[tokio::test]
async fn post_starts_a_run_whose_events_stream_from_start_to_outcome() {
    let server = start_default().await;
    let response = server
        .post_run(
            "generate-report",
            Some(r#"{"user_id": 1001, "type": "weekly", "step_ms": 20}"#),
        )
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let run_id = body["run_id"].as_str().unwrap();
    assert_eq!(body["worker"], "generate-report");
    assert_eq!(body["events_url"], format!("/runs/{run_id}/events"));
    assert_eq!(location, format!("/runs/{run_id}/events"));

    let events = server.all_events(run_id).await;
    assert_eq!(progress_of(&events), TEN_STEPS, "{events:#?}");
    let messages = &events[..events.len() - 1];
    for (seq, event) in messages.iter().enumerate() {
        assert_eq!(event.event, "message");
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
    }
    assert_eq!(messages[0].json()["stage"], "starting");
    assert_eq!(
        messages[10].json(),
        json!({"stage": "complete", "progress": 100, "url": "/reports/1001-weekly.pdf"})
    );
    let outcome = events.last().unwrap();
    assert_eq!(outcome.event, "outcome");
    assert_eq!(outcome.json(), json!({"ok": true}));
}

#[tokio::test]
async fn two_clients_on_one_run_both_get_everything() {
    let server = start_default().await;
    let run_id = server
        .start_run(
            "generate-report",
            Some(r#"{"user_id": 1002, "step_ms": 60}"#),
        )
        .await;
    let mut first = server.events(&run_id).await;
    // The first client is live before the second connects, mid-run.
    let head = first.next().await.unwrap();
    assert_eq!(head.json()["progress"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = server.events(&run_id).await;
    let (mut rest, other) = tokio::join!(first.collect(), second.collect());
    rest.insert(0, head);
    assert_eq!(rest, other, "both clients see the same events");
    assert_eq!(progress_of(&rest), TEN_STEPS);
    assert_eq!(rest.last().unwrap().json(), json!({"ok": true}));
    // A third, after the run ended, replays it all.
    assert_eq!(server.all_events(&run_id).await, rest);
}

#[tokio::test]
async fn delete_cancels_a_run_and_its_stream_ends_cancelled() {
    let server = start_default().await;
    let run_id = server
        .start_run("rebuild-index", Some(r#"{"seconds": 120}"#))
        .await;
    let mut events = server.events(&run_id).await;
    assert_eq!(events.next().await.unwrap().json()["progress"], 0);

    let response = server
        .client
        .delete(server.url(&format!("/runs/{run_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"cancelled": run_id})
    );

    let rest = events.collect().await;
    let outcome = rest.last().unwrap();
    assert_eq!(outcome.event, "outcome");
    assert_eq!(
        outcome.json(),
        json!({
            "ok": false,
            "kind": "cancelled",
            "error": format!("Worker 'rebuild-index' run {run_id} was cancelled"),
        })
    );
    assert!(!WORKER::running().await.unwrap().contains(&run_id));

    // Finished now: a second DELETE is a 404 that says so.
    let again = server
        .client
        .delete(server.url(&format!("/runs/{run_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"error": format!("Run '{run_id}' is not running: it is unknown or has already finished")})
    );
    let unknown = server
        .client
        .delete(server.url("/runs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn get_workers_lists_every_definition_with_its_statistics() {
    let server = start_default().await;
    let workers = server.get_json("/workers").await;
    let list = workers["workers"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|w| w["name"].as_str().unwrap()).collect();
    for demo in [
        "flaky-job",
        "generate-report",
        "rebuild-index",
        "send-email",
    ] {
        assert!(names.contains(&demo), "{demo} in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for worker in list {
        let keys: Vec<&String> = worker.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "average_duration_ms",
                "cancelled",
                "default_timeout",
                "default_timeout_ms",
                "errors",
                "last_run_ms",
                "name",
                "panics",
                "running",
                "success_rate",
                "timeouts",
                "total_runs",
                "validated",
            ],
            "{worker}"
        );
    }
    let report = server.worker_stats("generate-report").await;
    assert_eq!(report["default_timeout"], "10s");
    assert_eq!(report["default_timeout_ms"], 10_000);
    assert_eq!(report["validated"], true);

    // One successful run of send-email shows up in its numbers.
    let before = server.worker_stats("send-email").await;
    let run_id = server
        .start_run("send-email", Some(r#"{"to": "stats@example.com"}"#))
        .await;
    let events = server.all_events(&run_id).await;
    assert_eq!(events.last().unwrap().json(), json!({"ok": true}));
    let after = server.worker_stats("send-email").await;
    let delta = |key: &str| after[key].as_u64().unwrap() - before[key].as_u64().unwrap();
    assert!(delta("total_runs") >= 1, "{before} → {after}");
    assert!(after["last_run_ms"].as_u64().unwrap() >= 150, "{after}");
    assert!(after["average_duration_ms"].as_f64().unwrap() > 0.0);
    assert!(after["success_rate"].as_f64().unwrap() > 0.0);
    assert_eq!(after["default_timeout"], "5s");
}

#[tokio::test]
async fn get_runs_lists_runs_in_flight_with_their_worker_and_progress() {
    let server = start_default().await;
    let run_id = server
        .start_run("rebuild-index", Some(r#"{"seconds": 120}"#))
        .await;
    let mut events = server.events(&run_id).await;
    events.next().await.unwrap();

    let runs = server.get_json("/runs").await;
    let entry = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap_or_else(|| panic!("{run_id} in {runs}"))
        .clone();
    assert_eq!(
        entry,
        json!({
            "run_id": run_id,
            "worker": "rebuild-index",
            "progress": entry["progress"].clone(),
            "events_url": format!("/runs/{run_id}/events"),
        })
    );
    assert!(entry["progress"].is_u64(), "{entry}");

    WORKER::cancel(&run_id).await.unwrap();
    let runs = server.get_json("/runs").await;
    assert!(
        !runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["run_id"] == run_id.as_str()),
        "a cancelled run is no longer listed: {runs}"
    );
}

#[tokio::test]
async fn runs_started_elsewhere_are_listed_but_have_no_events() {
    let server = start_default().await;
    let handle = WORKER::call("rebuild-index", None, Some(json!({"seconds": 120})))
        .await
        .unwrap();
    let run_id = handle.id().to_owned();
    let runs = server.get_json("/runs").await;
    let entry = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap_or_else(|| panic!("{run_id} in {runs}"))
        .clone();
    assert_eq!(entry["worker"], "rebuild-index");
    assert_eq!(entry["events_url"], Value::Null);
    assert_eq!(entry["progress"], Value::Null);

    let response = server.get(&format!("/runs/{run_id}/events")).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Run '{run_id}' has no events")),
        "{error}"
    );
    handle.cancel().await.unwrap();
}

#[tokio::test]
async fn each_way_of_failing_ends_the_stream_with_its_kind() {
    WORKER::register("api-test-checks-late", |_ctx| async {
        Err(Error::validation("'amount' must be positive"))
    })
    .await
    .unwrap();
    let server = start_default().await;
    let cases = [
        (
            "flaky-job",
            Some(r#"{"outcome": "error"}"#),
            json!({"ok": false, "kind": "error", "error": "flaky-job failed, as asked"}),
        ),
        (
            "flaky-job",
            Some(r#"{"outcome": "panic"}"#),
            json!({"ok": false, "kind": "panic", "error": "Worker 'flaky-job' panicked: flaky-job panicked, as asked"}),
        ),
        (
            "flaky-job",
            Some(r#"{"outcome": "timeout"}"#),
            json!({"ok": false, "kind": "timeout", "error": "Worker 'flaky-job' timed out after 1s"}),
        ),
        // A worker without a validator checks its payload when it runs: the
        // POST is accepted and the run fails as a validation error.
        (
            "api-test-checks-late",
            None,
            json!({"ok": false, "kind": "validation", "error": "'amount' must be positive"}),
        ),
        ("flaky-job", None, json!({"ok": true})),
    ];
    for (worker, payload, expected) in cases {
        let run_id = server.start_run(worker, payload).await;
        let events = server.all_events(&run_id).await;
        let outcome = events.last().unwrap();
        assert_eq!(outcome.event, "outcome", "{worker} {payload:?}");
        assert_eq!(outcome.json(), expected, "{worker} {payload:?}");
    }
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_resumes_after_it() {
    let server = start_default().await;
    let run_id = server
        .start_run(
            "generate-report",
            Some(r#"{"user_id": 1003, "step_ms": 5}"#),
        )
        .await;
    let all = server.all_events(&run_id).await;
    let response = server
        .client
        .get(server.url(&format!("/runs/{run_id}/events")))
        .header("last-event-id", "7")
        .send()
        .await
        .unwrap();
    let resumed = common::SseStream::new(response).collect().await;
    assert_eq!(resumed, all[8..]);
    assert_eq!(progress_of(&resumed), [80, 90, 100]);
}

#[tokio::test]
async fn a_late_client_is_told_how_many_messages_were_dropped() {
    let server = start(AppState::new(Config {
        feed_capacity: 3,
        ..Config::default()
    }))
    .await;
    let run_id = server
        .start_run(
            "generate-report",
            Some(r#"{"user_id": 1004, "step_ms": 5}"#),
        )
        .await;
    let feed = server.state.feeds().get(&run_id).unwrap();
    eventually("the run ended", || {
        let ended = feed.outcome().is_some();
        async move { ended }
    })
    .await;
    let events = server.all_events(&run_id).await;
    assert_eq!(events[0].event, "dropped");
    assert_eq!(events[0].json(), json!({"dropped": 8}));
    assert_eq!(progress_of(&events), [80, 90, 100]);
    assert_eq!(events[1].id.as_deref(), Some("8"));
    assert_eq!(events.last().unwrap().json(), json!({"ok": true}));
    assert_eq!(feed.dropped(), 8);
}

#[tokio::test]
async fn feeds_are_removed_once_the_retention_period_is_over() {
    let server = start(AppState::new(Config {
        feed_retention: Duration::from_secs(1),
        ..Config::default()
    }))
    .await;
    let feeds = server.state.feeds().clone();
    let run_id = server
        .start_run(
            "generate-report",
            Some(r#"{"user_id": 1005, "step_ms": 5}"#),
        )
        .await;
    let feed = Arc::downgrade(&feeds.get(&run_id).unwrap());
    let events = server.all_events(&run_id).await;
    assert_eq!(events.last().unwrap().json(), json!({"ok": true}));
    // Still there just after the run: a client can replay it.
    assert_eq!(server.all_events(&run_id).await, events);

    eventually("the feed is removed", || {
        let gone = feeds.get(&run_id).is_none();
        async move { gone }
    })
    .await;
    assert!(feeds.is_empty());
    let response = server.get(&format!("/runs/{run_id}/events")).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .ends_with("ended more than 1s ago"),
        "{error}"
    );
    // Nothing holds on to it any more: not the map, not its task.
    eventually("the feed is freed", || {
        let freed = feed.upgrade().is_none();
        async move { freed }
    })
    .await;
}

#[tokio::test]
async fn the_page_and_unknown_routes() {
    let server = start_default().await;
    let page = server.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for hook in [
        r#"id="start-demo""#,
        r#"id="runs""#,
        r#"id="stats""#,
        "new EventSource(",
    ] {
        assert!(html.contains(hook), "{hook} in the page");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched from elsewhere"
    );

    let missing = server.get("/nope").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": "there is no route GET /nope"})
    );
    let wrong = server
        .client
        .put(server.url("/workers"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"error": "/workers does not take PUT"})
    );
}
