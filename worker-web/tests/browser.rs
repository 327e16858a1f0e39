//! The dashboard in a real browser: Debian's headless Chromium, driven by
//! chromedriver over the WebDriver HTTP API (plain JSON, no client crate),
//! with the dashboard mounted under a prefix (`/ops/workers`).
//!
//! Ignored by `cargo test --workspace` (they need Chromium); CI runs them
//! with `cargo test -p worker-web --test browser -- --ignored` after
//! `apt-get install -y chromium chromium-driver`. Each saves a screenshot
//! under `target/worker-web/`; the overview also goes to the README's
//! `docs/web-dashboard.png` with `UPDATE_SCREENSHOT=1`.

#[path = "common/chromium.rs"]
mod chromium;
mod common;
#[path = "common/job_pages.rs"]
mod job_pages;
#[path = "common/workflow_pages.rs"]
mod workflow_pages;

use std::time::Duration;

use chromium::{Browser, Session, base64_decode, launch};
use common::{LIMITED, Server, start_default};
use serde_json::json;

/// A browser on the dashboard of `server`, at `hash`.
async fn open(server: &Server, hash: &str) -> (Browser, Session) {
    let (browser, session) = launch().await;
    session.navigate(&format!("{}{hash}", server.base)).await;
    session
        .wait_for(
            "the live status",
            Duration::from_secs(10),
            "return document.querySelector('#status').classList.contains('live');",
        )
        .await;
    (browser, session)
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn a_failed_runs_error_is_on_the_recent_runs_view_and_its_page_retries_it() {
    let server = start_default().await;
    for payload in [None, Some(r#"{"to": "a@b.c"}"#)] {
        let run_id = server
            .start_run(if payload.is_some() { "email" } else { "flaky" }, payload)
            .await;
        server.all_events(&run_id).await;
    }
    let failed = server
        .start_run("flaky", Some(r#"{"outcome": "error"}"#))
        .await;
    server.all_events(&failed).await;

    let (browser, session) = open(&server, "#/runs?outcome=failed").await;
    let error = session
        .wait_for(
            "the failed run in the recent runs",
            Duration::from_secs(10),
            &format!(
                "const row = document.querySelector('#recent tr.recent-run[data-run-id=\"{failed}\"]');
                 return row ? row.querySelector('td.error').textContent : null;"
            ),
        )
        .await;
    assert_eq!(error, "flaky failed, as asked");
    let rows = session
        .execute("return document.querySelectorAll('#recent tr.recent-run').length;")
        .await;
    assert_eq!(rows, 1, "filtered to the failed run");
    session.save_screenshot("recent-runs").await;

    // Its page: payload, attempts with the error, and a retry button.
    let row = session
        .find(&format!(
            "#recent tr.recent-run[data-run-id=\"{failed}\"] td.worker"
        ))
        .await;
    session.click(&row).await;
    session
        .wait_for(
            "the run's page",
            Duration::from_secs(10),
            &format!(
                "const view = document.querySelector('#view-run');
                 return !view.hidden && view.dataset.runId === '{failed}' && view.dataset.state === 'ended';"
            ),
        )
        .await;
    let page = session
        .execute(
            "return {
               payload: JSON.parse(document.querySelector('#run-payload').textContent),
               attempt: document.querySelector('#run-attempts li.attempt').textContent,
               outcome: document.querySelector('#view-run').dataset.outcome,
             };",
        )
        .await;
    assert_eq!(page["payload"], json!({"outcome": "error"}));
    assert_eq!(page["outcome"], "failed");
    assert!(
        page["attempt"]
            .as_str()
            .unwrap()
            .contains("flaky failed, as asked"),
        "{page}"
    );
    session.save_screenshot("run-page").await;

    let retry = session.find("#run-retry").await;
    session.click(&retry).await;
    let retried = session
        .wait_for(
            "the retry's page",
            Duration::from_secs(10),
            &format!(
                "const view = document.querySelector('#view-run');
                 return view.dataset.runId && view.dataset.runId !== '{failed}'
                   && view.dataset.state === 'ended' ? view.dataset.runId : null;"
            ),
        )
        .await;
    let retried = retried.as_str().unwrap();
    let detail = server.get_json(&format!("/runs/{retried}")).await;
    assert_eq!(detail["worker"], "flaky");
    assert_eq!(detail["payload"], json!({"outcome": "error"}));
    assert_eq!(
        server.get_json(&format!("/runs/{failed}")).await["retried_as"],
        retried
    );
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn a_running_runs_messages_arrive_live_and_it_can_be_cancelled() {
    let server = start_default().await;
    let slow = server.start_run("slow", None).await;
    let (browser, session) = open(&server, &format!("#/run/{slow}")).await;
    let count = "return document.querySelectorAll('#run-messages li.message').length;";
    let first = session
        .wait_for(
            "some messages",
            Duration::from_secs(10),
            &format!("const n = (function() {{ {count} }})(); return n >= 2 ? n : null;"),
        )
        .await
        .as_u64()
        .unwrap();
    let later = session
        .wait_for(
            "more messages, live",
            Duration::from_secs(10),
            &format!(
                "const n = (function() {{ {count} }})(); return n >= {} ? n : null;",
                first + 3
            ),
        )
        .await;
    assert!(later.as_u64().unwrap() > first);
    let state = session
        .execute("return document.querySelector('#view-run').dataset.state;")
        .await;
    assert_eq!(state, "running");
    session.save_screenshot("live-messages").await;

    let cancel = session.find("#run-cancel").await;
    session.click(&cancel).await;
    session
        .wait_for(
            "the run cancelled",
            Duration::from_secs(10),
            "return document.querySelector('#view-run').dataset.outcome === 'cancelled';",
        )
        .await;
    assert!(!server.manager.running().await.unwrap().contains(&slow));
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn the_overview_draws_its_charts_and_fits_a_phone() {
    let server = start_default().await;
    for payload in [
        None,
        None,
        None,
        Some(r#"{"outcome": "error"}"#),
        Some(r#"{"outcome": "panic"}"#),
    ] {
        let run_id = server.start_run("flaky", payload).await;
        server.all_events(&run_id).await;
    }
    let fails_once = server.start_run("fails-once", None).await;
    server.all_events(&fails_once).await;
    let slow = server.start_run("slow", None).await;

    let (browser, session) = open(&server, "").await;
    let drawn = session
        .wait_for(
            "both charts drawn",
            Duration::from_secs(10),
            "const t = document.querySelector('svg#chart-throughput');
             const l = document.querySelector('svg#chart-latency');
             if (t.dataset.drawn !== '1' || l.dataset.drawn !== '1') return null;
             return {
               throughput: t.querySelectorAll('path[data-series], rect[data-series]').length,
               latency: l.querySelectorAll('path[data-series]').length,
             };",
        )
        .await;
    assert!(
        drawn["throughput"].as_u64().unwrap() >= 3,
        "succeeded, failed and panicked series: {drawn}"
    );
    assert!(drawn["latency"].as_u64().unwrap() >= 1, "{drawn}");
    let stats = session
        .wait_for(
            "the workers table",
            Duration::from_secs(10),
            "const row = document.querySelector('#stats tr[data-worker=\"flaky\"]');
             return row && row.querySelector('td.runs').textContent === '5' ? {
               errors: row.querySelector('td.errors').textContent,
               p95: row.querySelector('td.p95').textContent,
               retries: document.querySelector('#stats tr[data-worker=\"fails-once\"] td.retries').textContent,
             } : null;",
        )
        .await;
    assert_eq!(stats["errors"], "2");
    assert_eq!(stats["retries"], "1");
    assert_ne!(stats["p95"], "", "{stats}");
    session
        .wait_for(
            "the slow run in flight and this node",
            Duration::from_secs(10),
            &format!(
                "return !!document.querySelector('#running .run[data-run-id=\"{slow}\"]')
                   && !!document.querySelector('#nodes .node[data-node]');"
            ),
        )
        .await;
    // Tall enough to show the charts and the nodes below the tables.
    session.resize(1280, 1500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.save_screenshot("overview").await;

    // On a phone-sized window nothing runs off the side of the page.
    session.assert_fits_a_phone().await;
    session.save_screenshot("overview-phone").await;
    server.manager.cancel(&slow).await.unwrap();
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn the_start_form_starts_a_run_and_shows_why_a_payload_is_refused() {
    let server = start_default().await;
    let (browser, session) = open(&server, "").await;
    session
        .wait_for(
            "the worker list",
            Duration::from_secs(10),
            "return document.querySelectorAll('#worker option').length > 1;",
        )
        .await;
    let payload = session.find("#payload").await;
    let type_payload = |text: &'static str| {
        let session = &session;
        let payload = payload.clone();
        async move {
            session
                .post(&format!("/element/{payload}/clear"), json!({}))
                .await;
            session
                .post(&format!("/element/{payload}/value"), json!({"text": text}))
                .await;
        }
    };
    session
        .execute("const s = document.querySelector('#worker'); s.value = 'email'; s.dispatchEvent(new Event('change'));")
        .await;
    type_payload(r#"{"to": "nobody"}"#).await;
    let start = session.find("#start").await;
    session.click(&start).await;
    let error = session
        .wait_for(
            "the refusal",
            Duration::from_secs(10),
            "const text = document.querySelector('#action-error').textContent; return text || null;",
        )
        .await;
    assert_eq!(
        error,
        "invalid payload for worker 'email': `to` must be an email address, not \"nobody\""
    );
    assert!(server.journal.is_empty(), "nothing started");

    type_payload(r#"{"to": "ada@example.com"}"#).await;
    session.click(&start).await;
    let run_id = session
        .wait_for(
            "the new run's page",
            Duration::from_secs(10),
            "const view = document.querySelector('#view-run');
             return !view.hidden && view.dataset.state === 'ended' ? view.dataset.runId : null;",
        )
        .await;
    let detail = server
        .get_json(&format!("/runs/{}", run_id.as_str().unwrap()))
        .await;
    assert_eq!(detail["payload"], json!({"to": "ada@example.com"}));
    assert_eq!(detail["outcome"], "succeeded");
    session.save_screenshot("started-run").await;
    session.quit().await;
    drop(browser);
}

/// Standard base64 with padding, as WebDriver returns screenshots.
#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn scheduled_runs_pause_and_a_bulk_retry_work_from_the_page() {
    use worker_core::Call;
    let server = start_default().await;
    let manager = server.manager.clone();
    let later = manager
        .call_with(
            "slow",
            Call::new()
                .delay(Duration::from_secs(600))
                .key("nightly")
                .priority(3),
        )
        .await
        .unwrap();
    let later = later.id().to_owned();

    // The Scheduled view: due time, key, priority; the worker's counts.
    let (browser, session) = open(&server, "#/").await;
    let shown = job_pages::scheduled_row(&session, &later, "slow").await;
    assert_eq!(
        (&shown["key"], &shown["priority"]),
        (&json!("nightly"), &json!("3"))
    );
    assert!(shown["due"].as_str().unwrap().starts_with("in "), "{shown}");

    // Pause from the page: calls wait as queued; resume starts them.
    job_pages::toggle_pause(&session, "flaky", true).await;
    assert!(manager.is_paused("flaky").await.unwrap());
    let waiting = manager.call("flaky", None, None).await.unwrap();
    job_pages::queued(&session, "flaky", 1).await;
    session.save_screenshot("paused-and-scheduled").await;
    job_pages::toggle_pause(&session, "flaky", false).await;
    waiting.await_result().await.unwrap();

    // The scheduled run's page: key, priority, due; cancelled from there.
    job_pages::cancel_from_scheduled_page(&session, &server.base, &later, "nightly", 3).await;
    assert!(manager.scheduled(None).await.unwrap().is_empty());

    // Every failed run the filter shows, retried in one call_many.
    let mut failed = Vec::new();
    for _ in 0..2 {
        let id = server
            .start_run("flaky", Some(r#"{"outcome": "error"}"#))
            .await;
        server.all_events(&id).await;
        failed.push(id);
    }
    let asked = job_pages::retry_all_failed(&session, &server.base, "flaky", 2).await;
    assert!(asked.contains("2 failed run(s) of flaky"), "{asked}");
    for id in &failed {
        let retried = server.get_json(&format!("/runs/{id}")).await["retried_as"].clone();
        let retried = retried.as_str().expect("retried");
        let detail = server.get_json(&format!("/runs/{retried}")).await;
        assert_eq!(detail["payload"], json!({"outcome": "error"}));
    }
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn a_limited_workers_row_shows_the_use_of_its_limits_live() {
    let manager = common::manager().await;
    let release = common::register_limited(&manager).await;
    let server = common::start(common::dashboard(manager)).await;
    let (browser, session) = open(&server, "#/").await;
    let idle = job_pages::limits_shown(
        &session,
        LIMITED,
        &["0/2 running", "0/100 per 1m", "each account: ≤1 running"],
    )
    .await;
    assert_eq!(idle.as_array().unwrap().len(), 3, "no key in use: {idle}");
    let unlimited = session
        .execute("return document.querySelector('#stats tr[data-worker=\"report\"] div.limits').textContent;")
        .await;
    assert_eq!(unlimited, "", "nothing for a worker without limits");

    // acct-7's second run waits for its first; acct-9's takes the second slot.
    let mut runs = Vec::new();
    for account in ["acct-7", "acct-7", "acct-9"] {
        let payload = json!({"account": account}).to_string();
        runs.push(server.start_run(LIMITED, Some(&payload)).await);
    }
    let busy = job_pages::limits_shown(
        &session,
        LIMITED,
        &[
            "2/2 running",
            "2/100 per 1m",
            "acct-7: 1/1 running, 1 queued",
            "acct-9: 1/1 running",
        ],
    )
    .await;
    assert_eq!(
        busy[3], "acct-7: 1/1 running, 1 queued",
        "busiest first: {busy}"
    );
    session.save_screenshot("limits").await;

    release.send(true).unwrap();
    for run in &runs {
        server.all_events(run).await;
    }
    job_pages::limits_shown(&session, LIMITED, &["0/2 running", "3/100 per 1m"]).await;
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn a_running_workflows_graph_shows_each_steps_state_links_its_runs_and_cancels_it() {
    let server = start_default().await;
    let flow = server
        .manager
        .start_workflow(common::workflows::diamond())
        .await
        .unwrap();
    let id = flow.id().to_owned();
    let status =
        common::workflows::steps_reach(&server, &id, &common::workflows::DIAMOND_BLOCKED).await;
    let runs: [String; 4] =
        std::array::from_fn(|step| status["steps"][step]["run_id"].as_str().unwrap().to_owned());

    // Listed as running, with its progress; its name opens its page.
    let (browser, session) = open(&server, "#/workflows").await;
    workflow_pages::diamond_listed(&session, &id).await;
    session.save_screenshot("workflows").await;
    workflow_pages::open_listed(&session, &id).await;

    // The diamond: four nodes, four edges, each node its step's state.
    workflow_pages::blocked_diamond_drawn(&session, &runs).await;
    session.save_screenshot("workflow-running").await;

    // A node is a link to its step's run.
    workflow_pages::node_opens_its_run(&session, "profile", &runs[0], "succeeded").await;

    // Cancelled from its page: every node ends, the button goes.
    workflow_pages::cancel_blocked_diamond(&session).await;
    assert!(!server.manager.running().await.unwrap().contains(&runs[1]));
    session.save_screenshot("workflow-cancelled").await;
    session.quit().await;
    drop(browser);
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p worker-web --test browser -- --ignored"]
async fn a_failed_workflow_shows_its_failed_step_and_error() {
    let server = start_default().await;
    let flow = server
        .manager
        .start_workflow(common::workflows::failing())
        .await
        .unwrap();
    assert!(flow.await_result().await.is_err());
    let id = flow.id().to_owned();
    let status = server.get_json(&format!("/workflows/{id}")).await;
    let fetch_run = status["steps"][0]["run_id"].as_str().unwrap();
    let error = status["error"].as_str().unwrap();

    let (browser, session) = open(&server, &format!("#/workflows/{id}")).await;
    workflow_pages::failed_drawn(&session, fetch_run, error, "flaky failed, as asked").await;
    session.save_screenshot("workflow-failed").await;

    // The list says the same.
    workflow_pages::failed_listed(&session, &id, error).await;
    session.quit().await;
    drop(browser);
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}
