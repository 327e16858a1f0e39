//! What a node must not keep to itself: a late lease renewal, a run stalled
//! (its node stopped renewing), a lease lost, a start refused on a lapsing
//! lease. Each is a `log` record; with the `tracing` feature and a
//! subscriber set, a `tracing` event instead (one, not both, as in
//! worker-core, so a subscriber that also collects `log` records sees it
//! once); with the `metrics` feature, also a metric:
//!
//! - `worker_lease_renewal_late_seconds` (histogram): how late each late
//!   renewal pass started;
//! - `worker_stalls_total{worker}` (counter): runs whose lease lapsed and
//!   that were reaped, counted by the node that reaped them.

use std::time::Duration;

use uuid::Uuid;

/// A `warn` line: a tracing event while a subscriber listens, else a log
/// record.
macro_rules! warn_event {
    ($($field:ident = $value:expr),* ; $($message:tt)+) => {{
        #[cfg(feature = "tracing")]
        let traced = tracing::dispatcher::has_been_set();
        #[cfg(not(feature = "tracing"))]
        let traced = false;
        if traced {
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "worker_postgres", $($field = $value,)* $($message)+);
        } else {
            log::warn!(target: "worker_postgres", $($message)+);
        }
    }};
}

fn short(run: Uuid) -> String {
    worker_core::RunId::from(run).short()
}

/// A renewal pass started `late` past its time.
pub(crate) fn renewal_late(late: Duration, period: Duration, lease: Duration) {
    let (late_ms, period_ms, lease_ms) = (late.as_millis(), period.as_millis(), lease.as_millis());
    warn_event!(late_ms = late_ms as u64, period_ms = period_ms as u64, lease_ms = lease_ms as u64;
        "lease renewal ran {late_ms} ms late (every {period_ms} ms, lease {lease_ms} ms): this process is too busy to keep its leases; runs it holds may be taken by another node");
    #[cfg(feature = "metrics")]
    metrics::histogram!("worker_lease_renewal_late_seconds").record(late.as_secs_f64());
}

/// A run held by `node` was reaped `late_ms` past its lease: queued again,
/// or failed as stalled when it had no stalls left.
pub(crate) fn stalled(worker: &str, run: Uuid, node: Option<&str>, late_ms: f64, failed: bool) {
    let node = node.unwrap_or("?");
    let then = if failed {
        "failed as stalled: no stalls left"
    } else {
        "queued again"
    };
    let run_id = short(run);
    warn_event!(worker = worker, run_id = run_id.as_str(), node = node, late_ms = late_ms as u64, failed = failed;
        "[Worker:{worker} run:{run_id}] stalled: node {node} did not renew its lease ({late_ms:.0} ms past it); {then}");
    #[cfg(feature = "metrics")]
    metrics::counter!("worker_stalls_total", "worker" => worker.to_owned()).increment(1);
}

/// A run executing here lost its lease: its outcome won't be recorded here.
pub(crate) fn lease_lost(worker: &str, run: Uuid) {
    let run_id = short(run);
    warn_event!(worker = worker, run_id = run_id.as_str();
        "[Worker:{worker} run:{run_id}] lost its lease: its outcome is not recorded here; another node runs it again");
}

/// A run's ending was refused: its lease lapsed before the outbox wrote it.
pub(crate) fn ending_refused(worker: &str, run: Uuid) {
    let run_id = short(run);
    warn_event!(worker = worker, run_id = run_id.as_str();
        "[Worker:{worker} run:{run_id}] its lease lapsed before its outcome was written: another node runs it again");
}

/// A claimed-ahead run was not started here: its lease went to another
/// node (`left` is `None`), or had only `left` of it remaining (zero: it
/// may have lapsed), so it was handed back.
pub(crate) fn start_refused(
    worker: &str,
    run: Uuid,
    node: &str,
    left: Option<Duration>,
    lease: Duration,
    period: Duration,
) {
    let run_id = short(run);
    match left {
        None => warn_event!(worker = worker, run_id = run_id.as_str(), node = node;
            "[Worker:{worker} run:{run_id}] not started on node {node}: its lease went to another node before it could start"),
        Some(left) => {
            let (left_ms, lease_ms, period_ms) =
                (left.as_millis(), lease.as_millis(), period.as_millis());
            warn_event!(worker = worker, run_id = run_id.as_str(), node = node, left_ms = left_ms as u64;
                "[Worker:{worker} run:{run_id}] not started on node {node}: its lease has {left_ms} ms left (lease {lease_ms} ms, renewed every {period_ms} ms): renewal is late; handed back")
        }
    }
}
