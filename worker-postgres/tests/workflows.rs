//! Workflows on a durable manager, as far as they go today: a workflow of
//! `local` workers runs in the process; one of durable workers is turned
//! away before anything is stored, with an error that says why, since this
//! backend doesn't store workflows yet.

mod support;

use support::{database, manager, pool, schema};
use worker_core::prelude::*;

#[tokio::test]
async fn a_workflow_of_durable_workers_is_refused_and_stores_nothing() {
    let Some(db) = database() else { return };
    let schema = schema("flows_refused");
    let manager = manager(support::backend(db, &schema)).await;
    let flow = Workflow::new("onboard")
        .step(
            "a",
            "echo",
            Call::new().payload(serde_json::json!({"n": 1})),
        )
        .step("b", "noop", Call::new())
        .after(["a"]);
    let error = manager.start_workflow(flow).await.unwrap_err();
    assert!(error.is_validation(), "{error}");
    assert!(
        error
            .to_string()
            .contains("workflow 'onboard' has durable steps"),
        "{error}"
    );
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {schema}.runs) + (SELECT count(*) FROM {schema}.ended_runs)"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // Durable and local steps in one workflow: refused, naming both.
    let mixed = Workflow::new("mixed")
        .step("here", "in-process", Call::new())
        .step("there", "noop", Call::new())
        .after(["here"]);
    let error = manager.start_workflow(mixed).await.unwrap_err();
    assert!(error.is_validation(), "{error}");
    assert!(
        error
            .to_string()
            .contains("step 'here' runs a `local` worker and step 'there' a durable one"),
        "{error}"
    );

    // All local: it runs here.
    let local = Workflow::new("local")
        .step("one", "in-process", Call::new())
        .step("two", "in-process", Call::new())
        .after(["one"]);
    manager
        .start_workflow(local)
        .await
        .unwrap()
        .await_result()
        .await
        .unwrap();
    manager.shutdown().await.unwrap();
}
