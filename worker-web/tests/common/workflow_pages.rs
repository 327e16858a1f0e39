//! The Workflows view, driven the same way in both modes (worker-web's
//! browser tests, in-process; worker-postgres's, durable): a blocked
//! diamond listed and drawn, a node opening its step's run, the workflow
//! cancelled from its page; a failed workflow's step and error.
//!
//! Both modes build the same shapes from their own test workers:
//! - the diamond `onboard-user`: `profile`, then `avatar` and `welcome`
//!   side by side, then `done` after both; `avatar` goes on until it is
//!   cancelled, so the workflow stays running with `profile` and `welcome`
//!   succeeded and `done` waiting;
//! - `import-orders`: `fetch` fails, so `store`, after it, never runs;
//!   `audit`, on a branch of its own, succeeds.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chromium::Session;

const PATIENCE: Duration = Duration::from_secs(20);

/// The workflow page's graph: each node's `data-state` by step, its link,
/// the number of edges, and the view's own `data-state`, once drawn.
const GRAPH: &str = "const view = document.querySelector('#view-workflow');
     const svg = document.querySelector('svg#workflow-dag');
     if (view.hidden || svg.dataset.drawn !== '1') return null;
     const nodes = {}, links = {};
     for (const node of svg.querySelectorAll('a.step')) {
       nodes[node.dataset.step] = node.dataset.state;
       links[node.dataset.step] = node.getAttribute('href');
     }
     return {
       state: view.dataset.state,
       nodes, links,
       edges: svg.querySelectorAll('path.edge').length,
       progress: document.querySelector('#workflow-progress').textContent,
       cancel_hidden: document.querySelector('#workflow-cancel').hidden,
       failure_hidden: document.querySelector('#workflow-failure').hidden,
       failed_step: document.querySelector('#workflow-failed-step').textContent,
       failed_link: document.querySelector('#workflow-failed-step').getAttribute('href'),
       error: document.querySelector('#workflow-error').textContent,
     };";

/// Waits until the graph's view is in `state`; gives [`GRAPH`].
pub async fn graph_in(session: &Session, state: &str) -> Value {
    session
        .wait_for(
            &format!("the workflow {state}"),
            PATIENCE,
            &format!(
                "const graph = (function() {{ {GRAPH} }})();
                 return graph && graph.state === '{state}' ? graph : null;"
            ),
        )
        .await
}

/// Waits until the Workflows view lists `id` as `state`; gives its row:
/// `{name, steps (done/total), badge, failed, error}`.
pub async fn listed(session: &Session, id: &str, state: &str) -> Value {
    session
        .wait_for(
            &format!("the workflow listed as {state}"),
            PATIENCE,
            &format!(
                "const tr = document.querySelector('#workflows tr.workflow[data-workflow-id=\"{id}\"]');
                 return tr && tr.dataset.state === '{state}' ? {{
                   name: tr.querySelector('td.name a').textContent,
                   steps: tr.querySelector('td.steps .done').textContent,
                   badge: tr.querySelector('td.state .badge').textContent,
                   failed: tr.querySelector('td.failed').textContent,
                   error: tr.querySelector('td.error').textContent,
                 }} : null;"
            ),
        )
        .await
}

/// On the Workflows view: waits until the blocked diamond `id` is listed
/// as running with 2 of its 4 steps done.
pub async fn diamond_listed(session: &Session, id: &str) {
    let row = listed(session, id, "running").await;
    assert_eq!(
        (&row["name"], &row["steps"], &row["badge"]),
        (&json!("onboard-user"), &json!("2/4"), &json!("running")),
        "{row}"
    );
}

/// On the Workflows view: opens `id`'s page by its name.
pub async fn open_listed(session: &Session, id: &str) {
    let link = session
        .find(&format!(
            "#workflows tr.workflow[data-workflow-id=\"{id}\"] td.name a"
        ))
        .await;
    session.click(&link).await;
}

/// Checks the blocked diamond's page: four nodes, four edges, each node
/// its step's state and a link to its run (`runs`: the run ids of
/// `profile`, `avatar`, `welcome` and `done`), a column per depth, the
/// Cancel button, no failure; and that on a phone the graph scrolls
/// inside its box, not the page.
pub async fn blocked_diamond_drawn(session: &Session, runs: &[String; 4]) {
    let graph = graph_in(session, "running").await;
    assert_eq!(
        graph["nodes"],
        json!({"profile": "succeeded", "avatar": "running", "welcome": "succeeded", "done": "waiting"}),
        "{graph}"
    );
    assert_eq!(graph["edges"], 4, "{graph}");
    assert_eq!(graph["progress"], "2/4");
    let links: Vec<String> = runs.iter().map(|run| format!("#/run/{run}")).collect();
    assert_eq!(
        graph["links"],
        json!({"profile": links[0], "avatar": links[1], "welcome": links[2], "done": links[3]})
    );
    assert_eq!(graph["cancel_hidden"], false);
    assert_eq!(graph["failure_hidden"], true);
    let columns = session
        .execute(
            "const x = (step) => Number(document.querySelector(`svg#workflow-dag a.step[data-step=\"${step}\"] rect`).getAttribute('x'));
             return [x('profile'), x('avatar'), x('welcome'), x('done')];",
        )
        .await;
    let columns: Vec<f64> = serde_json::from_value(columns).unwrap();
    assert!(
        columns[0] < columns[1] && columns[1] == columns[2] && columns[2] < columns[3],
        "a column per depth: {columns:?}"
    );

    session.assert_fits_a_phone().await;
    session.resize(1280, 900).await;
}

/// Clicks `step`'s node, waits for the page of its run `run`, ended as
/// `outcome`, and goes back to the graph, still running.
pub async fn node_opens_its_run(session: &Session, step: &str, run: &str, outcome: &str) {
    let node = session
        .find(&format!("svg#workflow-dag a.step[data-step=\"{step}\"]"))
        .await;
    session.click(&node).await;
    session
        .wait_for(
            &format!("the {step} step's run page"),
            PATIENCE,
            &format!(
                "const view = document.querySelector('#view-run');
                 return !view.hidden && view.dataset.runId === '{run}' && view.dataset.outcome === '{outcome}'
                   && location.hash === '#/run/{run}';"
            ),
        )
        .await;
    session.execute("history.back(); return true;").await;
    graph_in(session, "running").await;
}

/// Cancels the blocked diamond from its page, accepting the confirmation,
/// and waits until the view says cancelled: every node ended, the button
/// gone.
pub async fn cancel_blocked_diamond(session: &Session) {
    session.accept_confirms().await;
    let cancel = session.find("#workflow-cancel").await;
    session.click(&cancel).await;
    let graph = graph_in(session, "cancelled").await;
    assert_eq!(
        graph["nodes"],
        json!({"profile": "succeeded", "avatar": "cancelled", "welcome": "succeeded", "done": "cancelled"}),
        "{graph}"
    );
    assert_eq!(graph["cancel_hidden"], true);
    assert_eq!(graph["progress"], "4/4");
    let asked = session.execute("return window.confirmed;").await;
    assert_eq!(
        asked,
        "Cancel workflow onboard-user? Its 2 step(s) not ended yet will end as cancelled."
    );
}

/// Checks the failed `import-orders`'s page (open): `fetch` failed with
/// `error` (containing `says`), linked to its run `fetch_run`; `store`
/// cancelled; `audit` succeeded; nothing left to cancel.
pub async fn failed_drawn(session: &Session, fetch_run: &str, error: &str, says: &str) {
    let graph = graph_in(session, "failed").await;
    assert_eq!(
        graph["nodes"],
        json!({"fetch": "failed", "store": "cancelled", "audit": "succeeded"}),
        "{graph}"
    );
    assert_eq!(graph["edges"], 1);
    assert_eq!(graph["failure_hidden"], false);
    assert_eq!(graph["failed_step"], "fetch");
    assert_eq!(graph["failed_link"], format!("#/run/{fetch_run}"));
    assert_eq!(graph["error"], error);
    assert!(error.contains(says), "{graph}");
    assert_eq!(graph["cancel_hidden"], true, "nothing left to cancel");
}

/// From the failed workflow's page, opens the Workflows view, where `id`
/// is listed as failed at `fetch` with `error`.
pub async fn failed_listed(session: &Session, id: &str, error: &str) {
    let nav = session.find("a#nav-workflows").await;
    session.click(&nav).await;
    let row = listed(session, id, "failed").await;
    assert_eq!(
        (&row["failed"], &row["error"], &row["steps"]),
        (&json!("fetch"), &json!(error), &json!("3/3")),
        "{row}"
    );
}
