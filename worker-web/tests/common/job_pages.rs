//! The job model on the dashboard, driven the same way in both modes
//! (worker-web's browser tests, in-process; worker-postgres's, durable):
//! the Scheduled view, pause and resume, a scheduled run's page, the bulk
//! retry of failed runs, and a limited worker's use of its limits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chromium::Session;

const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until the Scheduled view lists `run` and `worker`'s row counts
/// one scheduled run; gives the row's `{key, priority, due}`.
pub async fn scheduled_row(session: &Session, run: &str, worker: &str) -> Value {
    session
        .wait_for(
            "the scheduled run",
            PATIENCE,
            &format!(
                "const row = document.querySelector('#scheduled tr.scheduled-run[data-run-id=\"{run}\"]');
                 const count = document.querySelector('#stats tr[data-worker=\"{worker}\"] td.scheduled');
                 return row && count && count.textContent === '1' ? {{
                   key: row.querySelector('td.key').textContent,
                   priority: row.querySelector('td.priority').textContent,
                   due: row.querySelector('td.due').textContent,
                 }} : null;"
            ),
        )
        .await
}

/// Clicks `worker`'s pause/resume button and waits until its row says
/// `paused` (with the badge shown only then).
pub async fn toggle_pause(session: &Session, worker: &str, paused: bool) {
    let toggle = session
        .find(&format!(
            "#stats tr[data-worker=\"{worker}\"] button.pause-toggle"
        ))
        .await;
    session.click(&toggle).await;
    let flag = if paused { "1" } else { "0" };
    session
        .wait_for(
            &format!("{worker} paused: {paused}"),
            PATIENCE,
            &format!(
                "const tr = document.querySelector('#stats tr[data-worker=\"{worker}\"]');
                 return tr.dataset.paused === '{flag}'
                   && tr.querySelector('.paused-badge').hidden === {hidden};",
                hidden = !paused
            ),
        )
        .await;
}

/// Waits until `worker`'s row shows `n` queued runs.
pub async fn queued(session: &Session, worker: &str, n: u64) {
    session
        .wait_for(
            &format!("{n} queued runs of {worker}"),
            PATIENCE,
            &format!(
                "return document.querySelector('#stats tr[data-worker=\"{worker}\"] td.queued').textContent === '{n}';"
            ),
        )
        .await;
}

/// Opens `run`'s page, checks that it shows the run as scheduled with its
/// `key`, `priority` and due time, cancels it there and waits until it
/// ended as cancelled.
pub async fn cancel_from_scheduled_page(
    session: &Session,
    base: &str,
    run: &str,
    key: &str,
    priority: i32,
) {
    session.navigate(&format!("{base}#/run/{run}")).await;
    let page = session
        .wait_for(
            "the scheduled run's page",
            PATIENCE,
            "const view = document.querySelector('#view-run');
             return view.dataset.state === 'scheduled' ? {
               key: document.querySelector('#run-key').textContent,
               priority: document.querySelector('#run-priority').textContent,
               due: !document.querySelector('#run-due-box').hidden,
             } : null;",
        )
        .await;
    assert_eq!(
        page,
        json!({"key": key, "priority": priority.to_string(), "due": true})
    );
    let cancel = session.find("#run-cancel").await;
    session.click(&cancel).await;
    session
        .wait_for(
            "the run ended as cancelled",
            PATIENCE,
            "const view = document.querySelector('#view-run');
             return view.dataset.state === 'ended' && view.dataset.outcome === 'cancelled';",
        )
        .await;
}

/// Shows the failed runs of `worker`, expects `n`, confirms the bulk retry
/// and waits for its answer; gives the confirmation's text.
pub async fn retry_all_failed(session: &Session, base: &str, worker: &str, n: usize) -> String {
    session
        .navigate(&format!("{base}#/runs?worker={worker}&outcome=failed"))
        .await;
    session
        .wait_for(
            &format!("{n} failed runs listed"),
            PATIENCE,
            &format!(
                "return document.querySelectorAll('#recent tr.recent-run').length === {n}
                   && !document.querySelector('#retry-failed').disabled;"
            ),
        )
        .await;
    session.accept_confirms().await;
    let retry = session.find("#retry-failed").await;
    session.click(&retry).await;
    let asked = session
        .wait_for(
            "the bulk retry's answer",
            PATIENCE,
            &format!(
                "return document.querySelector('#retry-result').textContent === 'retried {n}'
                   ? window.confirmed : null;"
            ),
        )
        .await;
    asked.as_str().unwrap_or_default().to_owned()
}

/// Waits until `worker`'s limits cell shows every one of `lines` (such as
/// "2/2 running" or "acct-7: 1/1 running, 1 queued"); gives all the lines
/// it shows then.
pub async fn limits_shown(session: &Session, worker: &str, lines: &[&str]) -> Value {
    let wanted = serde_json::to_string(lines).unwrap();
    session
        .wait_for(
            &format!("{worker}'s limits showing {wanted}"),
            PATIENCE,
            &format!(
                "const cell = document.querySelector('#stats tr[data-worker=\"{worker}\"] div.limits');
                 if (!cell) return null;
                 const shown = [...cell.querySelectorAll('.limit-use, .limit-keys-head, .limit-key')]
                   .map((line) => line.textContent);
                 return {wanted}.every((line) => shown.includes(line)) ? shown : null;"
            ),
        )
        .await
}
