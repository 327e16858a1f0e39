//! Workflows over HTTP: the list with each one's progress, one workflow
//! with its steps (each an ordinary run with its own page), cancelling
//! one, and the errors for an unknown id, a workflow that already ended
//! and a read-only dashboard.

mod common;

use common::workflows::{DIAMOND_BLOCKED, diamond, failing, step_states, steps_reach};
use common::{Server, start, start_default};
use serde_json::{Value, json};

/// An id no workflow has.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

async fn refused(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

/// Starts the diamond and waits until it is blocked on `avatar`.
async fn blocked_diamond(server: &Server) -> String {
    let flow = server.manager.start_workflow(diamond()).await.unwrap();
    let id = flow.id().to_owned();
    steps_reach(server, &id, &DIAMOND_BLOCKED).await;
    id
}

#[tokio::test]
async fn a_running_workflow_is_listed_with_its_progress_and_its_page_shows_each_step_and_run() {
    let server = start_default().await;
    assert_eq!(
        server.get_json("/workflows").await,
        json!({"workflows": []})
    );
    let id = blocked_diamond(&server).await;

    let list = server.get_json("/workflows").await;
    let row = &list["workflows"][0];
    assert_eq!(list["workflows"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        (&row["id"], &row["name"], &row["state"]),
        (&json!(id), &json!("onboard-user"), &json!("running"))
    );
    assert_eq!(
        (&row["steps_done"], &row["steps_total"]),
        (&json!(2), &json!(4))
    );
    assert!(row["created_at_ms"].as_u64().unwrap() > 0);
    for key in ["ended_at_ms", "failed_step", "error"] {
        assert_eq!(row[key], Value::Null, "{key}: {row}");
    }

    let flow = server.get_json(&format!("/workflows/{id}")).await;
    assert_eq!(flow["state"], "running");
    let shape: Vec<(&str, &str, Value)> = flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["worker"].as_str().unwrap(),
                s["parents"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("profile", "flaky", json!([])),
            ("avatar", "slow", json!(["profile"])),
            ("welcome", "email", json!(["profile"])),
            ("done", "flaky", json!(["avatar", "welcome"])),
        ]
    );
    // Each step that started is an ordinary run, on the run pages.
    let run_of = |step: usize| flow["steps"][step]["run_id"].as_str().unwrap().to_owned();
    let profile = server.get_json(&format!("/runs/{}", run_of(0))).await;
    assert_eq!(
        (&profile["worker"], &profile["outcome"]),
        (&json!("flaky"), &json!("succeeded"))
    );
    let avatar = server.get_json(&format!("/runs/{}", run_of(1))).await;
    assert_eq!(
        (&avatar["worker"], &avatar["state"]),
        (&json!("slow"), &json!("running"))
    );

    // Cancelled: it answers once every step has ended.
    let response = server.delete(&format!("/workflows/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"cancelled": id})
    );
    let flow = server.get_json(&format!("/workflows/{id}")).await;
    assert_eq!(flow["state"], "cancelled");
    assert_eq!(
        (&flow["steps_done"], &flow["steps_total"]),
        (&json!(4), &json!(4))
    );
    assert!(flow["ended_at_ms"].as_u64() >= flow["created_at_ms"].as_u64());
    assert_eq!(
        step_states(&flow),
        [
            ("profile", "succeeded"),
            ("avatar", "cancelled"),
            ("welcome", "succeeded"),
            ("done", "cancelled")
        ]
        .map(|(name, state)| (name.to_owned(), state.to_owned()))
    );
    assert!(!server.manager.running().await.unwrap().contains(&run_of(1)));

    // Nothing is left to cancel.
    let message = refused(server.delete(&format!("/workflows/{id}")).await, 409).await;
    assert_eq!(
        message,
        format!(
            "Workflow '{id}' (onboard-user) has already ended (cancelled); only a running workflow can be cancelled"
        )
    );
}

#[tokio::test]
async fn a_failed_workflow_names_its_failed_step_and_error_and_running_ones_come_first() {
    let server = start_default().await;
    let failed = server.manager.start_workflow(failing()).await.unwrap();
    assert!(failed.await_result().await.is_err());
    let failed = failed.id().to_owned();
    let running = blocked_diamond(&server).await;

    let flow = server.get_json(&format!("/workflows/{failed}")).await;
    assert_eq!(flow["state"], "failed");
    assert_eq!(flow["failed_step"], "fetch");
    let error = flow["error"].as_str().unwrap();
    assert!(error.contains("flaky failed, as asked"), "{error}");
    assert_eq!(
        step_states(&flow),
        [
            ("fetch", "failed"),
            ("store", "cancelled"),
            ("audit", "succeeded")
        ]
        .map(|(name, state)| (name.to_owned(), state.to_owned()))
    );

    let list = server.get_json("/workflows").await;
    let ids: Vec<&str> = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [running.as_str(), failed.as_str()], "running first");
    let row = &list["workflows"][1];
    assert_eq!(
        (&row["failed_step"], &row["error"]),
        (&json!("fetch"), &flow["error"])
    );
    assert_eq!(
        (&row["steps_done"], &row["steps_total"]),
        (&json!(3), &json!(3))
    );
    let one = server.get_json("/workflows?limit=1").await;
    assert_eq!(one["workflows"].as_array().unwrap().len(), 1);
    assert_eq!(one["workflows"][0]["id"], running.as_str());
    server.manager.cancel_workflow(&running).await.unwrap();
}

#[tokio::test]
async fn unknown_or_malformed_workflow_ids_and_bad_queries_say_what_is_wrong() {
    let server = start_default().await;
    let message = refused(server.get("/workflows/flow-7").await, 404).await;
    assert_eq!(
        message,
        "Workflow 'flow-7' is unknown: 'flow-7' is not a workflow id: workflow ids are UUIDs, as `WorkflowHandle::id` gives them"
    );
    let message = refused(server.get(&format!("/workflows/{UNKNOWN}")).await, 404).await;
    assert!(
        message.starts_with(&format!(
            "Workflow '{UNKNOWN}' is unknown: it never ran here"
        )),
        "{message}"
    );
    for id in ["flow-7", UNKNOWN] {
        let message = refused(server.delete(&format!("/workflows/{id}")).await, 404).await;
        assert!(
            message.starts_with(&format!("Workflow '{id}' is unknown")),
            "{message}"
        );
    }
    let message = refused(server.get("/workflows?limit=-1").await, 400).await;
    assert!(
        message.starts_with("bad query for GET /workflows: "),
        "{message}"
    );
}

#[tokio::test]
async fn a_read_only_dashboard_shows_workflows_but_refuses_to_cancel_them() {
    let manager = common::manager().await;
    let server = start(common::dashboard(manager.clone()).read_only(true)).await;
    let id = blocked_diamond(&server).await;
    assert_eq!(
        server.get_json("/workflows").await["workflows"][0]["id"],
        id.as_str()
    );

    let message = refused(server.delete(&format!("/workflows/{id}")).await, 403).await;
    assert_eq!(
        message,
        "this dashboard is read-only: it can't cancel workflows; mount worker_web::router instead of router_read_only to allow it"
    );
    // Refused before it is even looked up: the same for an unknown one.
    refused(server.delete("/workflows/flow-7").await, 403).await;
    assert_eq!(
        server.get_json(&format!("/workflows/{id}")).await["state"],
        "running"
    );
    manager.cancel_workflow(&id).await.unwrap();
}
