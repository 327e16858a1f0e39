//! The dashboard over a durable manager, in headless Chromium: a run's page
//! lists every attempt the database kept, a retried failure with its error
//! and a stall with the node that held it; the overview lists recent
//! stalls, and a limited worker's use of its limits across the cluster; a
//! durable workflow's graph, with each step's state and run, cancelled
//! from its page, and a failed one's step and error.
//!
//! Ignored by `cargo test --workspace` (it needs Chromium); CI runs it with
//! `cargo test -p worker-postgres --test dashboard_browser -- --ignored`.

#[path = "../../worker-web/tests/common/chromium.rs"]
mod chromium;
#[path = "../../worker-web/tests/common/job_pages.rs"]
mod job_pages;
mod support;
#[path = "../../worker-web/tests/common/workflow_pages.rs"]
mod workflow_pages;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{NodeProcess, NodeSettings, manager, schema};

/// The pid of the node holding `run`, once one does.
async fn holder(pool: &sqlx::PgPool, schema: &str, run: &str) -> u32 {
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let node: Option<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT node FROM {schema}.runs WHERE id = '{run}' AND state = 'running'"
        )))
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(Some(node)) = node {
            return node.split(':').nth(1).unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "run {run} was never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The attempts the run's page lists once it has `n`: (outcome, text).
async fn attempts_shown(session: &chromium::Session, base: &str, run: &str, n: usize) -> Value {
    session.navigate(&format!("{base}#/run/{run}")).await;
    session
        .wait_for(
            &format!("{n} attempts of run {run}"),
            Duration::from_secs(20),
            &format!(
                "const view = document.querySelector('#view-run');
                 const items = [...document.querySelectorAll('#run-attempts li.attempt')];
                 if (view.hidden || view.dataset.runId !== '{run}' || view.dataset.state !== 'ended'
                     || items.length !== {n}) return null;
                 return items.map((li) => [li.dataset.outcome, li.textContent]);"
            ),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: cargo test -p worker-postgres --test dashboard_browser -- --ignored"]
async fn a_durable_runs_page_shows_every_attempt_with_its_node_and_error() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("attempts_page");
    let settings = NodeSettings {
        lease_ms: 1000,
        ..NodeSettings::new(db, &schema)
    };
    let mut nodes = vec![NodeProcess::start(&settings), NodeProcess::start(&settings)];
    let web = manager(support::backend(db, &schema).execute(false)).await;
    let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // With the trailing slash people type.
    let base = format!("http://{}/ops/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let pool = support::pool(db).await;

    // A failure retried once.
    let retried = web.call("fails-once", None, None).await.unwrap();
    let retried_id = retried.id().to_owned();
    retried.await_result().await.unwrap();

    // A stall: the node running it is killed, another finishes it.
    let mut stalled = web
        .call("slow", None, Some(json!({"ms": 1500})))
        .await
        .unwrap();
    let stalled_id = stalled.id().to_owned();
    assert_eq!(stalled.recv().await, Some(json!({"started": 1})));
    let victim = holder(&pool, &schema, &stalled_id).await;
    let index = nodes.iter().position(|n| n.pid() == victim).unwrap();
    nodes[index].signal("KILL");
    nodes.remove(index);
    let output: Value = stalled.await_output().await.unwrap();
    assert_eq!(output, json!({"attempt": 2}));

    let (_browser, session) = chromium::launch().await;
    let shown = attempts_shown(&session, &base, &retried_id, 2).await;
    assert_eq!(shown[0][0], "failed", "{shown}");
    assert!(
        shown[0][1]
            .as_str()
            .unwrap()
            .contains("the first attempt fails"),
        "{shown}"
    );
    assert_eq!(shown[1][0], "succeeded", "{shown}");

    let shown = attempts_shown(&session, &base, &stalled_id, 2).await;
    assert_eq!(shown[0][0], "stalled", "{shown}");
    let stall = shown[0][1].as_str().unwrap();
    assert!(
        stall.contains(&format!(":{victim}:")) && stall.contains("stopped renewing its lease"),
        "the stall names the node that held it: {stall}"
    );
    assert_eq!(shown[1][0], "succeeded", "{shown}");
    session.save_screenshot("durable-attempts").await;

    // The overview lists the stall under the nodes, with the node.
    session.navigate(&format!("{base}#/")).await;
    let listed = session
        .wait_for(
            "the stall on the overview",
            Duration::from_secs(20),
            &format!(
                "const el = document.querySelector('#stalls .stall[data-run-id=\"{stalled_id}\"]');
                 return el && !document.querySelector('#stalls-box').hidden ? el.textContent : null;"
            ),
        )
        .await;
    assert!(
        listed.as_str().unwrap().contains(&format!(":{victim}:")),
        "{listed}"
    );
    session
        .execute("document.querySelector('#stalls-box').scrollIntoView(); return null;")
        .await;
    session.save_screenshot("durable-stalls").await;
    session.quit().await;
    web.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: cargo test -p worker-postgres --test dashboard_browser -- --ignored"]
async fn scheduled_runs_pause_and_a_bulk_retry_work_from_the_page_in_durable_mode() {
    use worker_core::Call;
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("jobs_page");
    let web = manager(support::backend(db, &schema)).await;
    let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ops/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let later = web
        .call_with(
            "echo",
            Call::new()
                .delay(Duration::from_secs(600))
                .key("nightly")
                .priority(3),
        )
        .await
        .unwrap();
    let later = later.id().to_owned();

    let (browser, session) = chromium::launch().await;
    session.navigate(&base).await;
    let shown = job_pages::scheduled_row(&session, &later, "echo").await;
    assert_eq!(
        (&shown["key"], &shown["priority"]),
        (&json!("nightly"), &json!("3"))
    );

    // Paused from the page: stored for the cluster; runs wait as queued.
    job_pages::toggle_pause(&session, "noop", true).await;
    assert!(web.is_paused("noop").await.unwrap());
    let waiting = web.call("noop", None, None).await.unwrap();
    job_pages::queued(&session, "noop", 1).await;
    session
        .save_screenshot("durable-paused-and-scheduled")
        .await;
    job_pages::toggle_pause(&session, "noop", false).await;
    waiting.await_result().await.unwrap();

    // The scheduled run's page, read from the database; cancelled there.
    job_pages::cancel_from_scheduled_page(&session, &base, &later, "nightly", 3).await;

    // Every failed run of the filter, retried in one call_many.
    for _ in 0..2 {
        let failed = web
            .call("fails", None, Some(json!({"how": "error"})))
            .await
            .unwrap();
        assert!(failed.await_result().await.is_err());
    }
    let asked = job_pages::retry_all_failed(&session, &base, "fails", 2).await;
    assert!(asked.contains("2 failed run(s) of fails"), "{asked}");
    support::eventually("the two retries ended", || async {
        web.stats("fails").await.unwrap().runs == 4
    })
    .await;
    session.quit().await;
    drop(browser);
    web.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: cargo test -p worker-postgres --test dashboard_browser -- --ignored"]
async fn a_limited_workers_row_shows_the_clusters_use_of_its_limits() {
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("limits_page");
    let web = manager(support::backend(db, &schema)).await;
    let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ops/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // 1 at once per account: acct-7's second run waits for its first, while
    // acct-9's runs beside it. Long enough to outlast the test; cancelled.
    let mut runs = Vec::new();
    for account in ["acct-7", "acct-7", "acct-9"] {
        let payload = json!({"account": account, "ms": 60_000});
        let run = web
            .call("limited-slots", None, Some(payload))
            .await
            .unwrap();
        runs.push(run.id().to_owned());
    }

    let (browser, session) = chromium::launch().await;
    session.navigate(&base).await;
    job_pages::limits_shown(
        &session,
        "limited-slots",
        &[
            "2/16 running",
            "each account: ≤1 running",
            "acct-7: 1/1 running, 1 queued",
            "acct-9: 1/1 running",
        ],
    )
    .await;
    session.save_screenshot("durable-limits").await;

    for run in &runs {
        web.cancel(run).await.unwrap();
    }
    job_pages::limits_shown(&session, "limited-slots", &["0/16 running"]).await;
    session.quit().await;
    drop(browser);
    web.shutdown().await.unwrap();
}

/// Waits until every step of the workflow `id` is in its state in
/// `states` (in the order they were declared); gives their run ids.
async fn steps_reach(
    web: &worker_core::WorkerManager,
    id: &str,
    states: &[(&str, &str)],
) -> Vec<String> {
    support::eventually(&format!("the steps of {id} are {states:?}"), || async {
        let status = web.workflow(id).await.unwrap().expect("stored");
        let now: Vec<(&str, &str)> = status
            .steps
            .iter()
            .map(|step| (step.name.as_str(), step.state.as_str()))
            .collect();
        now == states
    })
    .await;
    let status = web.workflow(id).await.unwrap().expect("stored");
    status
        .steps
        .iter()
        .map(|step| step.run_id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: cargo test -p worker-postgres --test dashboard_browser -- --ignored"]
async fn a_durable_workflows_graph_shows_each_steps_state_links_its_runs_and_cancels_it() {
    use worker_core::{Call, Workflow, WorkflowState};
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("workflow_page");
    let web = manager(support::backend(db, &schema)).await;
    let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ops/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The diamond of the in-process test, on the durable test workers:
    // `avatar` sleeps for ten minutes, until it is cancelled.
    let join = |parents: &[&str]| Call::new().payload(json!({"parents": parents}));
    let flow = Workflow::new("onboard-user")
        .step("profile", "join", join(&[]))
        .step(
            "avatar",
            "slow",
            Call::new().payload(json!({"ms": 600_000})),
        )
        .after(["profile"])
        .step("welcome", "join", join(&["profile"]))
        .after(["profile"])
        .step("done", "join", join(&["avatar", "welcome"]))
        .after(["avatar", "welcome"]);
    let flow = web.start_workflow(flow).await.unwrap();
    let id = flow.id().to_owned();
    let blocked = [
        ("profile", "succeeded"),
        ("avatar", "running"),
        ("welcome", "succeeded"),
        ("done", "waiting"),
    ];
    let runs: [String; 4] = steps_reach(&web, &id, &blocked).await.try_into().unwrap();

    let (browser, session) = chromium::launch().await;
    session.navigate(&format!("{base}#/workflows")).await;
    workflow_pages::diamond_listed(&session, &id).await;
    workflow_pages::open_listed(&session, &id).await;
    workflow_pages::blocked_diamond_drawn(&session, &runs).await;
    session.save_screenshot("durable-workflow-running").await;
    workflow_pages::node_opens_its_run(&session, "profile", &runs[0], "succeeded").await;

    workflow_pages::cancel_blocked_diamond(&session).await;
    session.save_screenshot("durable-workflow-cancelled").await;
    // The database agrees; the sleeping step was ended, not left running.
    let status = web.workflow(&id).await.unwrap().expect("stored");
    assert_eq!(status.state, WorkflowState::Cancelled);
    assert!(!web.running().await.unwrap().contains(&runs[1]));
    assert!(flow.await_result().await.unwrap_err().is_cancelled());
    assert_eq!(web.stats("slow").await.unwrap().cancelled, 1);
    session.quit().await;
    drop(browser);
    web.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: cargo test -p worker-postgres --test dashboard_browser -- --ignored"]
async fn a_failed_durable_workflow_shows_its_failed_step_and_error() {
    use worker_core::{Call, Workflow};
    let Some(db) = support::database() else {
        return;
    };
    let schema = schema("workflow_failed_page");
    let web = manager(support::backend(db, &schema)).await;
    let app = worker_web::mount(axum::Router::new(), "/ops", worker_web::router(web.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ops/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The in-process test's failing workflow: `fetch` fails for good.
    let flow = Workflow::new("import-orders")
        .step(
            "fetch",
            "fails",
            Call::new().payload(json!({"how": "permanent"})),
        )
        .step("store", "noop", Call::new())
        .after(["fetch"])
        .step("audit", "noop", Call::new());
    let flow = web.start_workflow(flow).await.unwrap();
    assert!(flow.await_result().await.is_err());
    let id = flow.id().to_owned();
    let status = web.workflow(&id).await.unwrap().expect("stored");
    let fetch_run = status.steps[0].run_id.to_string();
    let error = status.error.expect("its error");

    let (browser, session) = chromium::launch().await;
    session.navigate(&format!("{base}#/workflows/{id}")).await;
    workflow_pages::failed_drawn(&session, &fetch_run, &error, "account closed").await;
    session.save_screenshot("durable-workflow-failed").await;
    workflow_pages::failed_listed(&session, &id, &error).await;
    session.quit().await;
    drop(browser);
    web.shutdown().await.unwrap();
}
