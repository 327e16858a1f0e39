//! Run policies declared with the worker: retries with backoff, typed
//! outputs, concurrency limits and the queue in front of them. Timing tests
//! run on tokio's paused clock, so they measure virtual time exactly.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use worker_core::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A worker that fails until attempt `succeed_on`, emitting its attempt
/// number each time, and records when each attempt started.
async fn flaky(
    manager: &WorkerManager,
    name: &str,
    options: WorkerOptions,
    succeed_on: u32,
) -> Arc<Mutex<Vec<(u32, Instant)>>> {
    let starts = Arc::new(Mutex::new(Vec::new()));
    manager
        .register_with(name, options, {
            let starts = starts.clone();
            move |ctx| {
                let starts = starts.clone();
                async move {
                    let attempt = ctx.attempt();
                    starts.lock().unwrap().push((attempt, Instant::now()));
                    ctx.emit(json!({"attempt": attempt}))?;
                    if attempt < succeed_on {
                        return Err(Error::msg(format!("attempt {attempt} failed")));
                    }
                    Ok(json!({"succeeded_on": attempt}))
                }
            }
        })
        .await
        .unwrap();
    starts
}

#[tokio::test(start_paused = true)]
async fn a_run_that_fails_twice_then_succeeds_is_one_run_with_two_retries() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().retries(3).backoff(ms(100));
    let starts = flaky(&manager, "flaky", options, 3).await;
    let mut handle = manager.call("flaky", None, None).await.unwrap();
    let mut attempts = Vec::new();
    while let Some(message) = handle.recv().await {
        attempts.push(message["attempt"].as_u64().unwrap());
    }
    assert_eq!(attempts, [1, 2, 3], "every attempt's messages, in order");
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"succeeded_on": 3}));
    let stats = manager.stats("flaky").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.retries, stats.running),
        (1, 0, 2, 0)
    );
    assert_eq!(starts.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_up_to_its_cap_with_at_most_a_quarter_of_jitter() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .retries(5)
        .backoff(ms(100))
        .backoff_max(ms(300));
    let starts = flaky(&manager, "backoff", options, 100).await;
    let err = manager.run("backoff", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempt 6 failed",
        "the last attempt's error"
    );
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 6, "1 attempt + 5 retries");
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1].1 - w[0].1).collect();
    for (gap, base) in gaps.iter().zip([100, 200, 300, 300, 300]) {
        assert!(
            *gap >= ms(base) && *gap <= ms(base) + ms(base) / 4 + ms(1),
            "waited {gap:?} where {base} ms plus up to 25 % was due: {gaps:?}"
        );
    }
    let stats = manager.stats("backoff").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (1, 1, 5));
}

#[tokio::test(start_paused = true)]
async fn retry_after_waits_exactly_and_uses_up_a_retry() {
    let manager = WorkerManager::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    manager
        .register_with("rate-limited", WorkerOptions::new().retries(1), {
            let starts = starts.clone();
            move |ctx| {
                let starts = starts.clone();
                async move {
                    starts.lock().unwrap().push(Instant::now());
                    Err::<(), _>(Error::retry_after(
                        ms(1234),
                        format!("429 on {}", ctx.attempt()),
                    ))
                }
            }
        })
        .await
        .unwrap();
    let err = manager.run("rate-limited", None).await.unwrap_err();
    assert_eq!(err.to_string(), "429 on 2");
    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1] - starts[0], ms(1234));
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_panics_are_retried_bad_input_and_permanent_errors_are_not() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .timeout(ms(50))
        .retries(3)
        .backoff(ms(10));
    manager
        .register_with("troubled", options.clone(), |ctx| async move {
            match ctx.attempt() {
                1 => tokio::time::sleep(ms(60)).await, // times out
                2 => panic!("attempt 2 panics"),
                _ => {}
            }
            Ok(ctx.attempt())
        })
        .await
        .unwrap();
    let handle = manager.call("troubled", None, None).await.unwrap();
    assert_eq!(handle.await_output::<u32>().await.unwrap(), 3);
    let stats = manager.stats("troubled").await.unwrap();
    assert_eq!(
        (
            stats.runs,
            stats.errors,
            stats.timeouts,
            stats.panics,
            stats.retries
        ),
        (1, 0, 0, 0, 2),
        "counted by the final outcome"
    );

    let attempts = Arc::new(AtomicU32::new(0));
    manager
        .register_with("refuses", options, {
            let attempts = attempts.clone();
            move |ctx| {
                attempts.fetch_add(1, SeqCst);
                async move {
                    match ctx.payload().and_then(Value::as_str) {
                        Some("bad") => Err::<(), _>(Error::validation("bad payload")),
                        _ => Err(Error::permanent("account closed")),
                    }
                }
            }
        })
        .await
        .unwrap();
    for (payload, check) in [
        ("bad", Error::is_validation as fn(&Error) -> bool),
        ("gone", Error::is_permanent),
    ] {
        let err = manager
            .run("refuses", Some(json!(payload)))
            .await
            .unwrap_err();
        assert!(check(&err), "{err}");
    }
    assert_eq!(attempts.load(SeqCst), 2, "one attempt each");
    let stats = manager.stats("refuses").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_run_waiting_to_retry_is_listed_and_a_cancel_ends_it_at_once() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .retries(2)
        .backoff(Duration::from_secs(3600));
    flaky(&manager, "slow-retry", options, 100).await;
    let handle = manager.call("slow-retry", None, None).await.unwrap();
    tokio::time::sleep(ms(10)).await; // attempt 1 has failed; the backoff runs
    assert_eq!(
        manager.running_for("slow-retry").await.unwrap(),
        [handle.id()]
    );
    assert!(!handle.is_finished());
    let before = Instant::now();
    manager.cancel(handle.id()).await.unwrap();
    assert_eq!(
        Instant::now() - before,
        Duration::ZERO,
        "no grace period to wait out"
    );
    assert!(handle.await_result().await.unwrap_err().is_cancelled());
    let stats = manager.stats("slow-retry").await.unwrap();
    assert_eq!((stats.runs, stats.cancelled, stats.retries), (0, 1, 1));
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancellation_and_shutdown_are_never_retried() {
    let manager = WorkerManager::new();
    let attempts = Arc::new(AtomicU32::new(0));
    manager
        .register_with("patient", WorkerOptions::new().retries(5).backoff(ms(1)), {
            let attempts = attempts.clone();
            move |ctx| {
                attempts.fetch_add(1, SeqCst);
                async move {
                    ctx.cancelled().await;
                    Err::<(), _>(Error::msg("stopped"))
                }
            }
        })
        .await
        .unwrap();
    let cancelled = manager.call("patient", None, None).await.unwrap();
    let shut_down = manager.call("patient", None, None).await.unwrap();
    tokio::time::sleep(ms(5)).await;
    cancelled.cancel().await.unwrap();
    manager.shutdown().await.unwrap();
    assert!(cancelled.await_result().await.unwrap_err().is_cancelled());
    assert!(shut_down.await_result().await.unwrap_err().is_cancelled());
    assert_eq!(attempts.load(SeqCst), 2);
    assert_eq!(manager.stats("patient").await.unwrap().retries, 0);
}

#[tokio::test]
async fn typed_outputs_come_back_as_any_deserialize_type() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Report {
        rows: u32,
        title: String,
    }
    let manager = WorkerManager::new();
    manager
        .register_with("report", WorkerOptions::new(), |_ctx| async {
            Ok(Report {
                rows: 3,
                title: "daily".into(),
            })
        })
        .await
        .unwrap();
    manager
        .register("unit", |_ctx| async { Ok(()) })
        .await
        .unwrap();

    let report = manager.call("report", None, None).await.unwrap();
    assert_eq!(
        report.await_output::<Report>().await.unwrap(),
        Report {
            rows: 3,
            title: "daily".into()
        }
    );
    let raw = manager.call("report", None, None).await.unwrap();
    assert_eq!(
        raw.await_output::<Value>().await.unwrap(),
        json!({"rows": 3, "title": "daily"})
    );
    let unit = manager.call("unit", None, None).await.unwrap();
    assert_eq!(unit.await_output::<Value>().await.unwrap(), Value::Null);

    let wrong = manager.call("report", None, None).await.unwrap();
    let err = wrong.await_output::<Vec<u32>>().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the output of worker 'report' is not the requested type: invalid type: map, expected a sequence"
    );
    // The run itself succeeded: only the reading failed.
    let stats = manager.stats("report").await.unwrap();
    assert_eq!((stats.runs, stats.errors), (3, 0));
}

/// A worker that records how many of its attempts execute at once, the
/// order they started in, and holds each for `hold`.
async fn limited(
    manager: &WorkerManager,
    options: WorkerOptions,
    hold: Duration,
) -> (Arc<AtomicUsize>, Arc<Mutex<Vec<u64>>>) {
    let peak = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let now = Arc::new(AtomicUsize::new(0));
    manager
        .register_with("limited", options, {
            let (peak, order) = (peak.clone(), order.clone());
            move |ctx| {
                let (peak, order, now) = (peak.clone(), order.clone(), now.clone());
                async move {
                    let running = now.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(running, SeqCst);
                    order
                        .lock()
                        .unwrap()
                        .push(ctx.payload().and_then(Value::as_u64).unwrap_or(0));
                    tokio::time::sleep(hold).await;
                    now.fetch_sub(1, SeqCst);
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    (peak, order)
}

#[tokio::test(start_paused = true)]
async fn at_most_concurrency_attempts_execute_at_once_and_the_rest_wait_in_order() {
    let manager = WorkerManager::new();
    let (peak, order) = limited(&manager, WorkerOptions::new().concurrency(2), ms(100)).await;
    let mut handles = Vec::new();
    for i in 0..8 {
        handles.push(manager.call("limited", None, Some(json!(i))).await.unwrap());
    }
    // run() obeys the limit too, and queues behind the calls.
    manager.run("limited", Some(json!(8))).await.unwrap();
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    assert_eq!(peak.load(SeqCst), 2);
    assert_eq!(
        *order.lock().unwrap(),
        (0..=8).collect::<Vec<u64>>(),
        "first in, first out"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_run_is_listed_cancellable_and_its_timeout_starts_with_its_attempt() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().concurrency(1).timeout(ms(150));
    let (_, order) = limited(&manager, options, ms(100)).await;
    let first = manager.call("limited", None, Some(json!(1))).await.unwrap();
    let waiting = manager.call("limited", None, Some(json!(2))).await.unwrap();
    let third = manager.call("limited", None, Some(json!(3))).await.unwrap();
    tokio::time::sleep(ms(10)).await;
    let mut listed = manager.running_for("limited").await.unwrap();
    let mut expected = [first.id(), waiting.id(), third.id()];
    // All three were called at the same instant of the paused clock.
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    waiting.cancel().await.unwrap();
    assert!(waiting.await_result().await.unwrap_err().is_cancelled());
    // The third waited 100 ms for its slot, then ran 100 ms: within its
    // 150 ms timeout, which started with its attempt.
    first.await_result().await.unwrap();
    third.await_result().await.unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        [1, 3],
        "the cancelled run never started"
    );
    let stats = manager.stats("limited").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.cancelled), (2, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn past_the_queue_limit_calls_fail_at_once_and_nothing_is_counted() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().concurrency(1).queue_limit(2);
    limited(&manager, options, ms(100)).await;
    let mut accepted = Vec::new();
    for i in 0..3 {
        accepted.push(manager.call("limited", None, Some(json!(i))).await.unwrap());
    }
    let err = manager
        .call("limited", None, Some(json!(3)))
        .await
        .unwrap_err();
    assert!(err.is_overloaded(), "{err}");
    assert_eq!(
        err.to_string(),
        "Worker 'limited' is overloaded: 2 runs already wait for one of its concurrency slots (queue_limit); try again later"
    );
    assert!(
        manager
            .run("limited", None)
            .await
            .unwrap_err()
            .is_overloaded()
    );
    assert_eq!(manager.in_flight(), 3, "nothing started");
    for handle in accepted {
        handle.await_result().await.unwrap();
    }
    let stats = manager.stats("limited").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.cancelled),
        (3, 0, 0),
        "nothing counted"
    );
    // The queue has room again.
    manager.run("limited", None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_run_waiting_to_retry_holds_no_slot() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .concurrency(1)
        .retries(1)
        .backoff(Duration::from_secs(10));
    flaky(&manager, "one-at-a-time", options, 2).await;
    let failing = manager.call("one-at-a-time", None, None).await.unwrap();
    tokio::time::sleep(ms(1)).await; // attempt 1 failed; 10 s of backoff
    let before = Instant::now();
    // A second run's attempt 1 fails too, but gets the slot at once.
    let second = manager.call("one-at-a-time", None, None).await.unwrap();
    tokio::time::sleep(ms(1)).await;
    assert_eq!(manager.stats("one-at-a-time").await.unwrap().retries, 2);
    assert!(Instant::now() - before < Duration::from_secs(1));
    failing.await_result().await.unwrap();
    second.await_result().await.unwrap();
}

#[tokio::test]
async fn options_that_dont_fit_together_register_nothing_and_say_why() {
    let manager = WorkerManager::new();
    let err = manager
        .register_with("bad", WorkerOptions::new().queue_limit(10), |_ctx| async {
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_validation());
    assert!(
        err.to_string()
            .starts_with("invalid options for worker 'bad': queue_limit needs concurrency"),
        "{err}"
    );
    assert!(manager.definitions().await.unwrap().is_empty());
    assert_eq!(manager.options("bad"), None);
    manager
        .register_with("good", WorkerOptions::new().retries(2), |_ctx| async {
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(manager.options("good").unwrap().get_retries(), 2);
}

fn close_to(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() <= expected / 64.0 + 0.001)
}

#[tokio::test(start_paused = true)]
async fn stats_give_duration_and_wait_percentiles() {
    let manager = WorkerManager::new();
    manager
        .register("timed", |ctx| async move {
            let ms = ctx.payload().and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
        .await
        .unwrap();
    let empty = manager.stats("timed").await.unwrap();
    assert_eq!(
        (empty.p50_ms, empty.p99_ms, empty.wait_p50_ms),
        (None, None, None)
    );
    for ms in 1..=100u64 {
        manager.run("timed", Some(json!(ms))).await.unwrap();
    }
    let stats = manager.stats("timed").await.unwrap();
    assert!(close_to(stats.p50_ms, 50.0), "{stats:?}");
    assert!(close_to(stats.p95_ms, 95.0), "{stats:?}");
    assert!(close_to(stats.p99_ms, 99.0), "{stats:?}");
    assert_eq!(stats.wait_p50_ms, None, "no concurrency limit, no wait");

    // One slot, three runs of 100 ms called at once: they wait 0, 100 and
    // 200 ms for it.
    let (_, _) = limited(&manager, WorkerOptions::new().concurrency(1), ms(100)).await;
    let handles =
        futures::future::join_all((0..3).map(|_| manager.call("limited", None, None))).await;
    for handle in handles {
        handle.unwrap().await_result().await.unwrap();
    }
    let stats = manager.stats("limited").await.unwrap();
    assert!(close_to(stats.wait_p50_ms, 100.0), "{stats:?}");
    assert!(close_to(stats.wait_p99_ms, 200.0), "{stats:?}");
    assert!(
        close_to(stats.p50_ms, 100.0),
        "the wait is not in the duration's percentiles: {stats:?}"
    );
}
