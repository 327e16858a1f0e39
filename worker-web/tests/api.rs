//! The JSON API, through a real HTTP client, with the dashboard mounted
//! under a prefix of an axum app: starting, following, cancelling and
//! listing runs, as `examples/web` did before the dashboard became a crate.

mod common;

use std::time::Duration;

use common::{LIMITED, SseEvent, eventually, start, start_default};
use serde_json::{Value, json};

fn progress_of(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(|e| e.json()["progress"].as_u64().unwrap())
        .collect()
}

const TEN_STEPS: [u64; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

fn succeeded(output: Value) -> Value {
    json!({"ok": true, "outcome": "succeeded", "kind": "ok", "error": null, "output": output})
}

#[tokio::test]
async fn post_starts_a_run_whose_events_stream_from_start_to_outcome() {
    let server = start_default().await;
    let response = server.post_run("report", Some(r#"{"step_ms": 10}"#)).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let run_id = body["run_id"].as_str().unwrap();
    assert_eq!(body["worker"], "report");
    assert_eq!(body["events_url"], format!("/runs/{run_id}/events"));
    assert_eq!(location, format!("/runs/{run_id}/events"));

    let events = server.all_events(run_id).await;
    assert_eq!(progress_of(&events), TEN_STEPS, "{events:#?}");
    let messages = &events[..events.len() - 1];
    for (seq, event) in messages.iter().enumerate() {
        assert_eq!(event.event, "message");
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
    }
    let outcome = events.last().unwrap();
    assert_eq!(outcome.event, "outcome");
    assert_eq!(outcome.json(), succeeded(json!({"url": "/reports/1.pdf"})));
}

#[tokio::test]
async fn two_clients_on_one_run_both_get_everything() {
    let server = start_default().await;
    let run_id = server.start_run("report", Some(r#"{"step_ms": 60}"#)).await;
    let mut first = server.events(&run_id).await;
    let head = first.next().await.unwrap();
    assert_eq!(head.json()["progress"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = server.events(&run_id).await;
    let (mut rest, other) = tokio::join!(first.collect(), second.collect());
    rest.insert(0, head);
    assert_eq!(rest, other, "both clients see the same events");
    assert_eq!(progress_of(&rest), TEN_STEPS);
    // A third, after the run ended, replays it all.
    assert_eq!(server.all_events(&run_id).await, rest);
}

#[tokio::test]
async fn delete_cancels_a_run_and_its_stream_ends_cancelled() {
    let server = start_default().await;
    let run_id = server.start_run("slow", None).await;
    let mut events = server.events(&run_id).await;
    assert_eq!(events.next().await.unwrap().json()["progress"], 0);

    let response = server.delete(&format!("/runs/{run_id}")).await;
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
            "outcome": "cancelled",
            "kind": "cancelled",
            "error": format!("Worker 'slow' run {run_id} was cancelled"),
            "output": null,
        })
    );
    assert!(!server.manager.running().await.unwrap().contains(&run_id));

    // Finished now: a second DELETE is a 404 that says so.
    let again = server.delete(&format!("/runs/{run_id}")).await;
    assert_eq!(again.status(), 404);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"error": format!("Run '{run_id}' is not running: it is unknown or has already finished")})
    );
    assert_eq!(server.delete("/runs/nope").await.status(), 404);
}

#[tokio::test]
async fn get_workers_lists_every_definition_with_statistics_percentiles_and_options() {
    let server = start_default().await;
    let workers = server.get_json("/workers").await;
    assert_eq!(workers["read_only"], false);
    assert!(workers["node"].as_str().unwrap().contains(':'));
    let names: Vec<&str> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "checks-late",
            "email",
            "fails-once",
            "flaky",
            "report",
            "slow"
        ],
        "every worker, sorted by name"
    );
    let report = server.worker_stats("report").await;
    assert_eq!(report["default_timeout"], "10s");
    assert_eq!(report["default_timeout_ms"], 10_000);
    assert_eq!(report["validated"], false);
    assert_eq!(report["p95_ms"], Value::Null, "no run yet");
    assert_eq!(
        report["options"],
        json!({"timeout": "10s", "retries": 0, "backoff": "1s", "concurrency": null,
               "queue_limit": null, "schedule": null, "next_tick_ms": null,
               "priority": 0, "unique": null, "global_concurrency": null, "rate": null,
               "limit_by": null, "key_concurrency": null, "key_rate": null})
    );
    assert_eq!(report["limits"], Value::Null, "no limits to use");
    assert_eq!(
        (&report["queued"], &report["scheduled"], &report["paused"]),
        (&json!(0), &json!(0), &json!(false))
    );
    assert_eq!(server.worker_stats("email").await["validated"], true);
    assert_eq!(
        server.worker_stats("fails-once").await["options"]["retries"],
        1
    );

    let run_id = server.start_run("report", None).await;
    server.all_events(&run_id).await;
    let run_id = server.start_run("fails-once", None).await;
    server.all_events(&run_id).await;
    let after = server.worker_stats("report").await;
    assert_eq!(after["total_runs"], 1);
    assert!(after["last_run_ms"].as_u64().unwrap() >= 50, "{after}");
    for key in ["p50_ms", "p95_ms", "p99_ms"] {
        assert!(after[key].as_f64().unwrap() >= 50.0, "{key}: {after}");
    }
    assert_eq!(after["success_rate"], 100.0);
    assert_eq!(
        server.worker_stats("slow").await["success_rate"],
        Value::Null,
        "no runs yet"
    );
    assert_eq!(server.worker_stats("fails-once").await["retries"], 1);
}

#[tokio::test]
async fn a_scheduled_workers_options_show_its_schedule_and_next_tick() {
    let manager = common::manager().await;
    manager
        .register_with(
            "every-minute",
            worker_core::WorkerOptions::new().every(Duration::from_secs(60)),
            |_ctx| async { Ok(()) },
        )
        .await
        .unwrap();
    let server = start(common::dashboard(manager)).await;
    let options = server.worker_stats("every-minute").await["options"].clone();
    assert_eq!(options["schedule"], "every 1m");
    let next = options["next_tick_ms"].as_u64().expect("a timer runs");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(next > now && next <= now + 61_000, "{next} vs {now}");
}

#[tokio::test]
async fn a_limited_workers_limits_are_listed_with_their_use_and_its_busiest_keys() {
    let manager = common::manager().await;
    let release = common::register_limited(&manager).await;
    let server = start(common::dashboard(manager)).await;
    let limits_of = |worker: Value| (worker["limits"].clone(), worker["queued"].clone());

    let idle = server.worker_stats(LIMITED).await;
    let options = &idle["options"];
    assert_eq!(
        [
            &options["global_concurrency"],
            &options["rate"],
            &options["limit_by"],
            &options["key_concurrency"],
            &options["key_rate"],
        ],
        [
            &json!(2),
            &json!("100/1m"),
            &json!("account"),
            &json!(1),
            &Value::Null
        ]
    );
    assert_eq!(
        limits_of(idle),
        (
            json!({"running": 0, "global_concurrency": 2, "started": 0, "rate": "100/1m", "keys": []}),
            json!(0)
        )
    );

    // acct-7's second run waits for its first (1 per account); acct-9's
    // takes the second of the worker's 2 slots.
    let mut runs = Vec::new();
    for account in ["acct-7", "acct-7", "acct-9"] {
        let payload = json!({"account": account}).to_string();
        runs.push(server.start_run(LIMITED, Some(&payload)).await);
    }
    eventually("two runs hold the worker's two slots", || async {
        server.worker_stats(LIMITED).await["limits"]["running"] == 2
    })
    .await;
    assert_eq!(
        limits_of(server.worker_stats(LIMITED).await),
        (
            json!({
                "running": 2, "global_concurrency": 2, "started": 2, "rate": "100/1m",
                "keys": [
                    {"key": "acct-7", "running": 1, "started": 0, "queued": 1},
                    {"key": "acct-9", "running": 1, "started": 0, "queued": 0},
                ],
            }),
            json!(1)
        ),
        "the busiest key first; no key_rate, so no key counts starts"
    );

    release.send(true).unwrap();
    for run in &runs {
        server.all_events(run).await;
    }
    let (after, queued) = limits_of(server.worker_stats(LIMITED).await);
    assert_eq!(
        (&after["running"], &after["started"]),
        (&json!(0), &json!(3))
    );
    assert_eq!(queued, 0);
    for key in after["keys"].as_array().unwrap() {
        assert_eq!(
            (&key["running"], &key["queued"]),
            (&json!(0), &json!(0)),
            "{after}"
        );
    }
}

#[tokio::test]
async fn get_runs_lists_runs_in_flight_with_their_worker_and_progress() {
    let server = start_default().await;
    let run_id = server.start_run("slow", None).await;
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
    assert_eq!(entry["worker"], "slow");
    assert_eq!(entry["events_url"], format!("/runs/{run_id}/events"));
    assert_eq!(entry["attempt"], 1);
    assert!(entry["progress"].is_u64(), "{entry}");
    assert!(entry["started_at_ms"].is_u64(), "{entry}");

    server.manager.cancel(&run_id).await.unwrap();
    let runs = server.get_json("/runs").await;
    assert_eq!(
        runs,
        json!({"runs": []}),
        "a cancelled run is no longer listed"
    );
}

#[tokio::test]
async fn runs_started_by_other_code_are_listed_and_followed_too() {
    let server = start_default().await;
    let handle = server
        .manager
        .call("report", None, Some(json!({"step_ms": 20})))
        .await
        .unwrap();
    let run_id = handle.id().to_owned();
    let runs = server.get_json("/runs").await;
    assert_eq!(runs["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(runs["runs"][0]["worker"], "report");
    let events = server.all_events(&run_id).await;
    assert_eq!(progress_of(&events), TEN_STEPS);
    handle.await_result().await.unwrap();
}

#[tokio::test]
async fn each_way_of_failing_ends_the_stream_with_its_outcome_and_kind() {
    let server = start_default().await;
    let failed = |outcome: &str, kind: &str, error: &str| json!({"ok": false, "outcome": outcome, "kind": kind, "error": error, "output": null});
    let cases = [
        (
            "flaky",
            Some(r#"{"outcome": "error"}"#),
            failed("failed", "error", "flaky failed, as asked"),
        ),
        (
            "flaky",
            Some(r#"{"outcome": "panic"}"#),
            failed(
                "panicked",
                "panic",
                "Worker 'flaky' panicked: flaky panicked, as asked",
            ),
        ),
        (
            "flaky",
            Some(r#"{"outcome": "timeout"}"#),
            failed("timed_out", "timeout", "Worker 'flaky' timed out after 1s"),
        ),
        // A worker without a validator checks its payload when it runs: the
        // POST is accepted and the run fails as a validation error.
        (
            "checks-late",
            None,
            failed("failed", "validation", "'amount' must be positive"),
        ),
        ("flaky", None, succeeded(Value::Null)),
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
    let run_id = server.start_run("report", None).await;
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
    let server = start(common::dashboard(common::manager().await).messages_per_run(3)).await;
    let run_id = server.start_run("report", None).await;
    let journal = server.journal.clone();
    let id = run_id.clone();
    eventually("the run ended", || {
        let ended = journal
            .get(id.parse().unwrap())
            .is_some_and(|run| run.has_ended());
        async move { ended }
    })
    .await;
    let events = server.all_events(&run_id).await;
    assert_eq!(events[0].event, "dropped");
    assert_eq!(events[0].json(), json!({"dropped": 8}));
    assert_eq!(progress_of(&events), [80, 90, 100]);
    assert_eq!(events[1].id.as_deref(), Some("8"));
    assert_eq!(events.last().unwrap().json()["outcome"], "succeeded");
}

#[tokio::test]
async fn the_journal_keeps_the_last_ended_runs_and_forgets_older_ones() {
    let server = start(common::dashboard(common::manager().await).recent_runs(2)).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let run_id = server.start_run("email", Some(r#"{"to": "a@b.c"}"#)).await;
        server.all_events(&run_id).await;
        ids.push(run_id);
    }
    let recent = server.get_json("/runs/recent").await;
    let listed: Vec<&str> = recent["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[3].as_str(), ids[2].as_str()], "newest first");
    assert_eq!(recent["kept"], 2);
    assert_eq!(server.journal.len(), 2, "nothing else is kept");
    let response = server.get(&format!("/runs/{}/events", ids[0])).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"],
        format!(
            "Run '{}' is unknown: it never existed, started before the dashboard was mounted, or is older than the last 2 ended runs kept",
            ids[0]
        )
    );
}

#[tokio::test]
async fn the_page_under_a_prefix_and_unknown_routes() {
    let server = start_default().await;
    // At the prefix, with and without the slash people type.
    for path in ["", "/"] {
        let page = server.get(path).await;
        assert_eq!(page.status(), 200, "{path:?}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = page.text().await.unwrap();
        // The SVG namespace is a name, not an address anything fetches.
        let html = html.replace("http://www.w3.org/2000/svg", "");
        for hook in [
            r#"id="stats""#,
            r#"id="running""#,
            r#"id="recent""#,
            r#"id="chart-throughput""#,
            r#"id="view-run""#,
            "new EventSource(",
            "location.pathname",
        ] {
            assert!(html.contains(hook), "{hook} in the page");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing fetched from elsewhere"
        );
    }

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
