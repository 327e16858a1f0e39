//! The dashboard's views over HTTP: recent runs with their filters, a
//! run's page with its attempts, output and retry, the timeline and the
//! nodes.

mod common;

use common::start_default;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<String> {
    list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn recent_runs_are_newest_first_filtered_by_worker_and_outcome_failures_first_on_request() {
    let server = start_default().await;
    let mut started = Vec::new();
    for (worker, payload) in [
        ("flaky", Some(r#"{"outcome": "error"}"#)),
        ("email", Some(r#"{"to": "a@b.c"}"#)),
        ("flaky", None),
        ("flaky", Some(r#"{"outcome": "panic"}"#)),
        ("email", Some(r#"{"to": "c@d.e"}"#)),
    ] {
        let run_id = server.start_run(worker, payload).await;
        server.all_events(&run_id).await;
        started.push(run_id);
    }
    let newest_first: Vec<String> = started.iter().rev().cloned().collect();
    assert_eq!(ids(&server.get_json("/runs/recent").await), newest_first);

    let flaky = server.get_json("/runs/recent?worker=flaky").await;
    assert_eq!(
        ids(&flaky),
        [started[3].clone(), started[2].clone(), started[0].clone()]
    );
    let failed = server.get_json("/runs/recent?outcome=failed").await;
    assert_eq!(ids(&failed), [started[0].clone()]);
    let row = &failed["runs"][0];
    assert_eq!(row["worker"], "flaky");
    assert_eq!(row["outcome"], "failed");
    assert_eq!(row["error"], "flaky failed, as asked");
    assert_eq!(row["attempts"], 1);
    assert!(row["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(row["ended_at_ms"].as_u64() >= row["started_at_ms"].as_u64());
    assert!(
        row["node"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", std::process::id()))
    );

    let failures_first = server.get_json("/runs/recent?failed_first=1").await;
    assert_eq!(
        ids(&failures_first),
        [
            started[3].clone(),
            started[0].clone(),
            started[4].clone(),
            started[2].clone(),
            started[1].clone()
        ]
    );
    let limited = server
        .get_json("/runs/recent?failed_first=1&limit=1&worker=flaky")
        .await;
    assert_eq!(ids(&limited), [started[3].clone()]);
}

#[tokio::test]
async fn a_runs_page_has_its_payload_attempts_with_their_errors_and_its_output() {
    let server = start_default().await;
    let run_id = server.start_run("fails-once", Some(r#"{"n": 1}"#)).await;
    server.all_events(&run_id).await;
    let detail = server.get_json(&format!("/runs/{run_id}")).await;
    assert_eq!(detail["state"], "ended");
    assert_eq!(detail["outcome"], "succeeded");
    assert_eq!(detail["payload"], json!({"n": 1}));
    assert_eq!(detail["messages"], 2);
    assert_eq!(detail["dropped"], 0);
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["error"], "first attempt fails");
    assert_eq!(
        attempts[0]["retry_in_ms"].as_f64().map(|ms| ms > 0.0),
        Some(true)
    );
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(attempts[1]["error"], Value::Null);
    let messages: Vec<Value> = server
        .all_events(&run_id)
        .await
        .iter()
        .filter(|e| e.event == "message")
        .map(|e| e.json())
        .collect();
    assert_eq!(messages, [json!({"attempt": 1}), json!({"attempt": 2})]);

    let report = server.start_run("report", None).await;
    server.all_events(&report).await;
    let detail = server.get_json(&format!("/runs/{report}")).await;
    assert_eq!(detail["output"], json!({"url": "/reports/1.pdf"}));
    assert_eq!(detail["progress"], 100);
}

#[tokio::test]
async fn a_failed_run_is_retried_as_a_new_run_with_its_payload_and_others_are_not() {
    let server = start_default().await;
    let failed = server
        .start_run("flaky", Some(r#"{"outcome": "error"}"#))
        .await;
    server.all_events(&failed).await;

    let response = server.post(&format!("/runs/{failed}/retry")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let retry = body["run_id"].as_str().unwrap().to_owned();
    assert_ne!(retry, failed);
    assert_eq!(body["worker"], "flaky");
    server.all_events(&retry).await;
    let detail = server.get_json(&format!("/runs/{retry}")).await;
    assert_eq!(detail["payload"], json!({"outcome": "error"}));
    assert_eq!(detail["outcome"], "failed");
    let original = server.get_json(&format!("/runs/{failed}")).await;
    assert_eq!(original["retried_as"], retry.as_str());
    assert_eq!(server.manager.stats("flaky").await.unwrap().runs, 2);

    let ok = server.start_run("flaky", None).await;
    server.all_events(&ok).await;
    let response = server.post(&format!("/runs/{ok}/retry")).await;
    assert_eq!(response.status(), 409);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"],
        format!(
            "Run '{ok}' of worker 'flaky' succeeded; only a run that failed, timed out, panicked, stalled or was cancelled can be retried"
        )
    );
    let running = server.start_run("slow", None).await;
    let response = server.post(&format!("/runs/{running}/retry")).await;
    assert_eq!(response.status(), 409);
    server.manager.cancel(&running).await.unwrap();
    assert_eq!(
        server.manager.stats("flaky").await.unwrap().runs,
        3,
        "no retry started"
    );
}

#[tokio::test]
async fn the_timeline_counts_runs_by_outcome_with_their_p95() {
    let server = start_default().await;
    for payload in [None, None, Some(r#"{"outcome": "error"}"#)] {
        let run_id = server.start_run("flaky", payload).await;
        server.all_events(&run_id).await;
    }
    let timeline = server.get_json("/timeline").await;
    assert_eq!(timeline["bucket_seconds"], 5);
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 180, "15 minutes of 5 s");
    let sum = |key: &str| {
        buckets
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        (sum("succeeded"), sum("failed"), sum("panicked")),
        (2, 1, 0)
    );
    assert!(buckets.iter().any(|b| b["p95_ms"].is_f64()));
    let starts: Vec<u64> = buckets
        .iter()
        .map(|b| b["start_ms"].as_u64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] == w[0] + 5000),
        "oldest first, 5 s apart"
    );
    assert!(starts[179] <= timeline["now_ms"].as_u64().unwrap());
}

#[tokio::test]
async fn the_nodes_view_shows_this_process_with_its_runs() {
    let server = start_default().await;
    let run_id = server.start_run("slow", None).await;
    let nodes = server.get_json("/nodes").await;
    assert_eq!(nodes["durable"], false);
    assert_eq!(
        nodes["stalls"],
        json!([]),
        "no lease to stall in one process"
    );
    let node = &nodes["nodes"][0];
    assert_eq!(node["node"], server.get_json("/workers").await["node"]);
    assert_eq!(node["running"], 1);
    assert_eq!(node["runs"], json!([run_id]));
    assert!(node["last_heartbeat_ms"].is_u64());
    server.manager.cancel(&run_id).await.unwrap();
}
