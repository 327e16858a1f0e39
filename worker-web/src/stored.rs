//! Durable mode: runs, nodes and the timeline read from the manager's
//! backend (the database every node shares) rather than from this
//! process's journal, in the same JSON shapes, so the page can't tell.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use worker_core::backend::{NodeInfo, Stall, StoredRun, TimelineBucket};
use worker_core::observe::Outcome;
use worker_core::{Error, RunState, WorkerHandle};

use crate::clock::unix_ms;
use crate::timeline::{BUCKET, BUCKETS};

/// A stored run as a recent-runs row (the journal's `summary`).
pub(crate) fn summary(run: &StoredRun) -> Value {
    json!({
        "run_id": run.run_id,
        "worker": run.worker,
        "outcome": run.outcome().map(Outcome::as_str),
        "error": run.error,
        "attempts": run.attempt,
        "duration_ms": run.duration_ms.map(|ms| (ms * 10.0).round() / 10.0),
        "started_at_ms": unix_ms(run.started_at.unwrap_or(run.created_at)),
        "ended_at_ms": run.ended_at.map(unix_ms),
        "node": run.node,
    })
}

/// A stored run's page (the journal's `detail`): every attempt the
/// backend kept (retried, stalled, handed back), then the one in flight,
/// if any.
pub(crate) fn detail(run: &StoredRun) -> Value {
    let mut detail = summary(run);
    let mut attempts: Vec<Value> = run
        .attempts
        .iter()
        .map(|attempt| {
            json!({
                "attempt": attempt.attempt,
                "outcome": attempt.outcome.map_or("released", Outcome::as_str),
                "error": attempt.error,
                "node": attempt.node,
                "duration_ms": attempt.duration_ms.map(|ms| (ms * 10.0).round() / 10.0),
                "started_at_ms": unix_ms(attempt.started_at),
                "ended_at_ms": unix_ms(attempt.ended_at),
                "retry_in_ms": null,
            })
        })
        .collect();
    if run.state == RunState::Running {
        attempts.push(json!({
            "attempt": run.attempt,
            "outcome": null,
            "error": null,
            "node": run.node,
            "retry_in_ms": null,
        }));
    }
    let fields = [
        (
            "state",
            json!(if run.state.is_ended() {
                "ended"
            } else {
                "running"
            }),
        ),
        ("payload", run.payload.clone().unwrap_or(Value::Null)),
        ("output", run.output.clone().unwrap_or(Value::Null)),
        ("attempts", Value::Array(attempts)),
        ("messages", Value::Null),
        ("dropped", json!(0)),
        ("progress", Value::Null),
        ("retried_as", Value::Null),
    ];
    if let Value::Object(map) = &mut detail {
        map.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    detail
}

/// The nodes view: each node, its heartbeat and its runs.
pub(crate) fn nodes(nodes: &[NodeInfo], stalls: &[Stall]) -> Value {
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|node| {
            json!({
                "node": node.node,
                "last_heartbeat_ms": unix_ms(node.last_heartbeat),
                "started_at_ms": unix_ms(node.started_at),
                "executes": node.executes,
                "running": node.running.len(),
                "runs": node.running,
            })
        })
        .collect();
    let stalls: Vec<Value> = stalls
        .iter()
        .map(|stall| {
            json!({
                "run_id": stall.run_id,
                "worker": stall.worker,
                "attempt": stall.attempt,
                "node": stall.node,
                "at_ms": unix_ms(stall.at),
                "detail": stall.detail,
            })
        })
        .collect();
    json!({"durable": true, "nodes": nodes, "stalls": stalls})
}

/// The backend's buckets laid out as the journal's timeline: 180 buckets of
/// 5 s, oldest first, ending with the one `now` is in.
pub(crate) fn timeline(buckets: &[TimelineBucket], now: SystemTime) -> Value {
    let step = BUCKET.as_millis() as u64;
    let newest = unix_ms(now) / step;
    let rows: Vec<Value> = (0..BUCKETS as u64)
        .rev()
        .map(|back| newest.saturating_sub(back))
        .map(|slot| {
            let found = buckets.iter().find(|b| unix_ms(b.start) / step == slot);
            let mut row = json!({
                "start_ms": slot * step,
                "p95_ms": found.and_then(|b| b.p95_ms).map(|ms| (ms * 100.0).round() / 100.0),
            });
            for outcome in Outcome::ALL {
                let count = found
                    .and_then(|b| b.counts.iter().find(|(o, _)| *o == outcome))
                    .map_or(0, |(_, n)| *n);
                row[outcome.as_str()] = json!(count);
            }
            row
        })
        .collect();
    json!({
        "bucket_seconds": BUCKET.as_secs(),
        "now_ms": unix_ms(now),
        "buckets": rows,
    })
}

/// How far back the timeline reads.
pub(crate) const WINDOW: Duration = Duration::from_secs(BUCKETS as u64 * 5);

/// What the SSE stream of a stored run sends next.
pub(crate) enum Next {
    Message { seq: u64, data: Value },
    Outcome(Value),
}

/// The SSE stream of a stored run: its messages from the first (skipping
/// those up to `after`, a `Last-Event-ID`), then its outcome.
pub(crate) fn events(
    handle: WorkerHandle,
    after: Option<u64>,
) -> impl futures::Stream<Item = Next> + Send {
    let skip = after.map_or(0, |seq| seq + 1);
    futures::stream::unfold(Some((handle, 0u64)), move |state| async move {
        let (mut handle, mut seq) = state?;
        loop {
            match handle.recv().await {
                Some(data) => {
                    let this = seq;
                    seq += 1;
                    if this < skip {
                        continue;
                    }
                    return Some((Next::Message { seq: this, data }, Some((handle, seq))));
                }
                None => {
                    let outcome = outcome_json(handle.await_output::<Value>().await);
                    return Some((Next::Outcome(outcome), None));
                }
            }
        }
    })
}

/// `{"ok", "outcome", "kind", "error", "output"}` of a run's result.
pub(crate) fn outcome_json(result: Result<Value, Error>) -> Value {
    match result {
        Ok(output) => json!({
            "ok": true, "outcome": Outcome::Succeeded.as_str(), "kind": "ok", "error": null,
            "output": Some(output).filter(|o| !o.is_null()),
        }),
        Err(error) => json!({
            "ok": false, "outcome": Outcome::of(&error).as_str(), "kind": error.kind(),
            "error": error.to_string(), "output": null,
        }),
    }
}
