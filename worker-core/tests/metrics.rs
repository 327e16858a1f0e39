//! The `metrics` feature: every run counted on the `metrics` facade by
//! worker and outcome, its duration and slot wait in histograms, retries
//! counted, and the in-flight gauge back to zero, with no label but the
//! worker's name and the outcome.
//!
//! Runs when the feature is on (`cargo test --workspace` turns it on
//! through `examples/web`; `cargo test -p worker-core --features metrics`
//! alone).
#![cfg(feature = "metrics")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use worker_core::prelude::*;

/// What the recorder saw: name and labels (sorted) → value.
type Seen = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

fn seen(snapshot: metrics_util::debugging::Snapshot) -> Seen {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn counter(seen: &Seen, name: &str, pairs: &[(&str, &str)]) -> u64 {
    match seen.get(&(name.to_owned(), labels(pairs))) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name} {pairs:?} is not a counter: {other:?}"),
    }
}

fn histogram(seen: &Seen, name: &str, worker: &str) -> Vec<f64> {
    match seen.get(&(name.to_owned(), labels(&[("worker", worker)]))) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name} of {worker} is not a histogram: {other:?}"),
    }
}

#[tokio::test]
async fn runs_retries_durations_waits_and_in_flight_are_recorded_by_worker_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let manager = WorkerManager::new();
    manager
        .register("m-sleepy", |ctx| async move {
            ctx.sleep(Duration::from_millis(20)).await;
            Ok(())
        })
        .await
        .unwrap();
    manager
        .register("m-broken", |_ctx| async move {
            Err::<(), _>(Error::other("it broke"))
        })
        .await
        .unwrap();
    manager
        .register_with(
            "m-flaky",
            WorkerOptions::new()
                .retries(2)
                .backoff(Duration::from_millis(1))
                .concurrency(1),
            |ctx| async move {
                // Holds the one slot a while, so that the other run waits.
                ctx.sleep(Duration::from_millis(5)).await;
                if ctx.attempt() < 3 {
                    return Err(Error::other(format!("attempt {} failed", ctx.attempt())));
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    manager
        .register("m-slow", |ctx| async move {
            ctx.sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap();

    manager.run("m-sleepy", None).await.unwrap();
    manager.run("m-sleepy", None).await.unwrap();
    manager.run("m-broken", None).await.unwrap_err();
    // Two at once on a concurrency of 1: the second waits for the slot.
    let (a, b) = tokio::join!(manager.run("m-flaky", None), manager.run("m-flaky", None));
    a.unwrap();
    b.unwrap();
    let slow = manager.call("m-slow", None, None).await.unwrap();
    tokio::task::yield_now().await;
    let in_flight = seen(snapshotter.snapshot());
    assert_eq!(
        in_flight.get(&("worker_in_flight".into(), labels(&[("worker", "m-slow")]))),
        Some(&DebugValue::Gauge(1.0.into())),
        "a running run is in flight"
    );
    manager.cancel(slow.id()).await.unwrap();

    // A snapshot drains everything, gauges too: add the two up.
    let mut seen = seen(snapshotter.snapshot());
    for (key, value) in in_flight {
        match (seen.get_mut(&key), value) {
            (Some(DebugValue::Counter(n)), DebugValue::Counter(m)) => *n += m,
            (Some(DebugValue::Gauge(n)), DebugValue::Gauge(m)) => *n += m,
            (Some(DebugValue::Histogram(later)), DebugValue::Histogram(mut earlier)) => {
                earlier.append(later);
                *later = earlier;
            }
            (None, value) => {
                seen.insert(key, value);
            }
            _ => {}
        }
    }
    let runs = "worker_runs_total";
    assert_eq!(
        counter(
            &seen,
            runs,
            &[("outcome", "succeeded"), ("worker", "m-sleepy")]
        ),
        2
    );
    assert_eq!(
        counter(
            &seen,
            runs,
            &[("outcome", "failed"), ("worker", "m-broken")]
        ),
        1
    );
    assert_eq!(
        counter(
            &seen,
            runs,
            &[("outcome", "succeeded"), ("worker", "m-flaky")]
        ),
        2
    );
    assert_eq!(
        counter(
            &seen,
            runs,
            &[("outcome", "cancelled"), ("worker", "m-slow")]
        ),
        1
    );
    assert_eq!(
        counter(&seen, "worker_retries_total", &[("worker", "m-flaky")]),
        4,
        "two runs, two failed attempts each"
    );

    let durations = histogram(&seen, "worker_run_duration_seconds", "m-sleepy");
    assert_eq!(durations.len(), 2);
    assert!(
        durations.iter().all(|&d| d >= 0.020),
        "durations in seconds, at least the 20 ms slept: {durations:?}"
    );
    let waits = histogram(&seen, "worker_queue_wait_seconds", "m-flaky");
    assert_eq!(
        waits.len(),
        6,
        "every attempt of a limited worker: {waits:?}"
    );
    assert!(waits.iter().any(|&w| w > 0.0), "one run waited: {waits:?}");

    for worker in ["m-sleepy", "m-broken", "m-flaky", "m-slow"] {
        assert_eq!(
            seen.get(&("worker_in_flight".into(), labels(&[("worker", worker)]))),
            Some(&DebugValue::Gauge(0.0.into())),
            "{worker}: nothing in flight once every run ended"
        );
    }

    // Low cardinality: the only label keys are the worker and the outcome,
    // and no label value is a run id.
    let keys: BTreeSet<&str> = seen
        .keys()
        .flat_map(|(_, labels)| labels.iter().map(|(key, _)| key.as_str()))
        .collect();
    assert_eq!(keys, BTreeSet::from(["outcome", "worker"]));
    assert!(
        !seen
            .keys()
            .any(|(_, labels)| labels.iter().any(|(_, value)| value == slow.id())),
        "a run id is never a label"
    );
}
