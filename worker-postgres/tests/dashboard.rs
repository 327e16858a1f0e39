//! The `worker-web` dashboard over a durable manager that executes
//! nothing: what it shows comes from the database, so it sees the runs a
//! node process ran, their messages, the nodes and the timeline.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{NodeProcess, NodeSettings, eventually, manager, schema};

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_the_clusters_runs_messages_nodes_and_timeline() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("dashboard");
    let node = NodeProcess::start(&NodeSettings::new(db, &schema));
    let web = manager(support::backend(db, &schema).execute(false)).await;
    let app = axum::Router::new().nest("/workers", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/workers", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // One failure and one success, run by the node process.
    let failed = web
        .call("fails", None, Some(json!({"how": "error"})))
        .await
        .unwrap();
    let failed_id = failed.id().to_owned();
    failed.await_result().await.unwrap_err();
    let started = client
        .post(format!("{base}/workers/echo/runs"))
        .json(&json!({"n": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let echo_id = started.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Its messages, replayed from the database, then its outcome.
    let events = client
        .get(format!("{base}/runs/{echo_id}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 0..3 {
        assert!(
            events.contains(&format!("id: {i}\ndata: {{\"i\":{i}}}")),
            "{events}"
        );
    }
    assert!(events.contains("event: outcome"), "{events}");
    assert!(events.contains(r#""outcome":"succeeded""#), "{events}");

    // A `local` worker's run never reaches the database: the dashboard
    // reads it from this process's journal, beside the cluster's runs.
    let local = web.call("in-process", None, None).await.unwrap();
    let local_id = local.id().to_owned();
    local.await_result().await.unwrap();

    let recent = get(&client, format!("{base}/runs/recent?failed_first=1")).await;
    let rows = recent["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{recent}");
    assert_eq!(rows[0]["run_id"], failed_id.as_str(), "failures first");
    assert_eq!(rows[0]["error"], "it failed, as asked");
    assert_eq!(
        [&rows[1]["run_id"], &rows[2]["run_id"]],
        [local_id.as_str(), echo_id.as_str()],
        "then newest first, from both sources"
    );
    let local_page = get(&client, format!("{base}/runs/{local_id}")).await;
    assert_eq!(local_page["state"], "ended");
    assert_eq!(local_page["outcome"], "succeeded");
    assert_eq!(local_page["output"], json!({"pid": std::process::id()}));
    assert_eq!(local_page["messages"], 0, "counted by the journal");
    assert_eq!(local_page["attempts"][0]["outcome"], "succeeded");
    let node_name = rows[0]["node"].as_str().unwrap().to_owned();
    assert!(
        node_name.contains(&format!(":{}:", node.pid())),
        "run by the node process: {node_name}"
    );

    let detail = get(&client, format!("{base}/runs/{echo_id}")).await;
    assert_eq!(detail["state"], "ended");
    assert_eq!(detail["payload"], json!({"n": 3}));
    assert_eq!(detail["output"], json!({"n": 3, "attempt": 1}));

    // Retrying the failure makes a new stored run with its payload.
    let retry = client
        .post(format!("{base}/runs/{failed_id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    let retry_id = retry.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retried = web.attach(&retry_id).await.unwrap();
    assert!(retried.await_result().await.is_err());
    let detail = get(&client, format!("{base}/runs/{retry_id}")).await;
    assert_eq!(detail["payload"], json!({"how": "error"}));

    let nodes_url = format!("{base}/nodes");
    let (client3, name) = (client.clone(), node_name.clone());
    eventually("the node's heartbeat", || {
        let (client, url, name) = (client3.clone(), nodes_url.clone(), name.clone());
        async move {
            let nodes: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            nodes.to_string().contains(&name)
        }
    })
    .await;
    let nodes = get(&client, format!("{base}/nodes")).await;
    assert_eq!(nodes["durable"], true);
    let listed: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&node_name.as_str()), "{nodes}");

    let timeline = get(&client, format!("{base}/timeline")).await;
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 180);
    let sum = |key: &str| {
        buckets
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("succeeded"), sum("failed")), (1, 2));

    // In flight: listed from the cluster, with the node's run.
    let slow = web
        .call("slow", None, Some(json!({"ms": 10_000})))
        .await
        .unwrap();
    let slow_id = slow.id().to_owned();
    let client2 = client.clone();
    let runs_url = format!("{base}/runs");
    eventually("the slow run listed", || {
        let (client, url, id) = (client2.clone(), runs_url.clone(), slow_id.clone());
        async move {
            let runs = client
                .get(&url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            runs["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["run_id"] == id.as_str())
        }
    })
    .await;
    let cancelled = client
        .delete(format!("{base}/runs/{slow_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert!(slow.await_result().await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(10)).await;
    web.shutdown().await.unwrap();
}
