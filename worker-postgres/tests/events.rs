//! With the `metrics` feature, a stall and a late lease renewal are
//! metrics, not only log lines: `worker_stalls_total{worker}` and
//! `worker_lease_renewal_late_seconds`.
//!
//! `cargo test -p worker-postgres --features metrics --test events` (CI
//! runs it; the workspace's test command builds the crate without the
//! feature).

#![cfg(feature = "metrics")]

mod support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{Value, json};
use support::{manager, schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_and_a_late_renewal_are_counted() {
    let Some(db) = support::database() else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let schema = schema("events");
    let backend = support::backend(db, &schema)
        .lease(Duration::from_secs(1))
        .concurrency(1);
    let node = manager(backend.clone()).await;
    let mut handle = node
        .call("slow", None, Some(json!({"ms": 2500})))
        .await
        .unwrap();
    assert_eq!(handle.recv().await, Some(json!({"started": 1})));
    // Starved for two leases: this node's own reaper takes the run back,
    // and starts it again.
    backend
        .pause_lease_renewal_for_tests(Duration::from_secs(2))
        .unwrap();
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output["attempt"], 2);

    let snapshot = snapshotter.snapshot().into_vec();
    let stalls: u64 = snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == "worker_stalls_total")
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "worker" && l.value() == "slow")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(stalls, 1, "{snapshot:?}");
    let late: Vec<f64> = snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == "worker_lease_renewal_late_seconds")
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.iter().map(|s| s.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        late.iter().any(|&s| s >= 1.0),
        "a renewal at least a second late: {late:?}"
    );
    node.shutdown().await.unwrap();
}
