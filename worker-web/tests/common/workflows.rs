//! Workflows over the test workers of [`super::manager`], shared by the
//! API and browser tests, and how to wait for their steps' states. The
//! browser checks of their pages are in `workflow_pages.rs`, which
//! worker-postgres's dashboard tests run on the same shapes, durable.

use serde_json::{Value, json};
use worker_core::{Call, Workflow};

use super::{Http, eventually};

/// An onboarding diamond: `profile`, then `avatar` and `welcome` side by
/// side, then `done` after both. `avatar` runs `slow`, which goes on until
/// it is cancelled, so the workflow stays running with `profile` and
/// `welcome` succeeded and `done` waiting.
pub fn diamond() -> Workflow {
    Workflow::new("onboard-user")
        .step("profile", "flaky", Call::new())
        .step("avatar", "slow", Call::new())
        .after(["profile"])
        .step(
            "welcome",
            "email",
            Call::new().payload(json!({"to": "ada@example.com"})),
        )
        .after(["profile"])
        .step("done", "flaky", Call::new())
        .after(["avatar", "welcome"])
}

/// The states [`diamond`] stays in until it is cancelled.
pub const DIAMOND_BLOCKED: [(&str, &str); 4] = [
    ("profile", "succeeded"),
    ("avatar", "running"),
    ("welcome", "succeeded"),
    ("done", "waiting"),
];

/// `fetch` fails (`flaky`, as asked), so `store`, after it, never runs;
/// `audit`, on a branch of its own, succeeds.
pub fn failing() -> Workflow {
    Workflow::new("import-orders")
        .step(
            "fetch",
            "flaky",
            Call::new().payload(json!({"outcome": "error"})),
        )
        .step("store", "flaky", Call::new())
        .after(["fetch"])
        .step(
            "audit",
            "email",
            Call::new().payload(json!({"to": "ops@example.com"})),
        )
}

/// Each step's `(name, state)` in `GET /workflows/{id}`.
pub fn step_states(flow: &Value) -> Vec<(String, String)> {
    flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let text = |key: &str| step[key].as_str().unwrap().to_owned();
            (text("name"), text("state"))
        })
        .collect()
}

/// Waits until `GET /workflows/{id}` shows each step in `states`; gives
/// the workflow.
pub async fn steps_reach(http: &Http, id: &str, states: &[(&str, &str)]) -> Value {
    let path = format!("/workflows/{id}");
    let want: Vec<(String, String)> = states
        .iter()
        .map(|(name, state)| (name.to_string(), state.to_string()))
        .collect();
    eventually(&format!("the steps of {id} are {states:?}"), || async {
        step_states(&http.get_json(&path).await) == want
    })
    .await;
    http.get_json(&path).await
}
