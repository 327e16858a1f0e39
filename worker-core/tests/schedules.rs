//! Scheduled workers: a fixed interval or a cron expression, ticking on
//! tokio's paused clock so that virtual time is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use worker_core::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Registers a scheduled worker that takes `takes` and records when each
/// run started, relative to `origin`.
async fn scheduled(
    manager: &WorkerManager,
    options: WorkerOptions,
    takes: Duration,
) -> (Instant, Arc<Mutex<Vec<Duration>>>) {
    let origin = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    manager
        .register_with("tick", options, {
            let starts = starts.clone();
            move |ctx| {
                let starts = starts.clone();
                async move {
                    assert_eq!(ctx.payload(), None, "a tick passes no payload");
                    starts.lock().unwrap().push(origin.elapsed());
                    tokio::time::sleep(takes).await;
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    (origin, starts)
}

#[tokio::test(start_paused = true)]
async fn every_runs_one_interval_after_start_then_on_a_fixed_cadence() {
    let manager = WorkerManager::new();
    let (_, starts) = scheduled(&manager, WorkerOptions::new().every(ms(100)), ms(30)).await;
    tokio::time::sleep(ms(1050)).await;
    let starts = starts.lock().unwrap().clone();
    let expected: Vec<Duration> = (1..=10).map(|i| ms(100 * i)).collect();
    assert_eq!(starts, expected, "no drift from the runs' 30 ms");
    let stats = manager.stats("tick").await.unwrap();
    assert_eq!((stats.runs, stats.skipped), (10, 0));
}

#[tokio::test(start_paused = true)]
async fn a_tick_while_the_previous_run_is_in_flight_is_skipped_and_counted() {
    let manager = WorkerManager::new();
    let (_, starts) = scheduled(&manager, WorkerOptions::new().every(ms(100)), ms(250)).await;
    tokio::time::sleep(ms(1050)).await;
    // Runs start at 100, 400, 700, 1000; the ticks in between are skipped.
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts, [ms(100), ms(400), ms(700), ms(1000)]);
    let stats = manager.stats("tick").await.unwrap();
    assert_eq!(stats.skipped, 6);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_timer() {
    let manager = WorkerManager::new();
    let (_, starts) = scheduled(&manager, WorkerOptions::new().every(ms(100)), ms(10)).await;
    tokio::time::sleep(ms(350)).await;
    manager.shutdown().await.unwrap();
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(starts.lock().unwrap().len(), 3);
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cron_schedule_ticks_at_each_matching_instant() {
    let manager = WorkerManager::new();
    // Every second, 6 fields with seconds first.
    let (_, starts) = scheduled(&manager, WorkerOptions::new().cron("* * * * * *"), ms(10)).await;
    tokio::time::sleep(ms(5_500)).await;
    let starts = starts.lock().unwrap().clone();
    // The first tick is the next whole second, less than 1 s away.
    assert!((5..=6).contains(&starts.len()), "{starts:?}");
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], ms(1000), "{starts:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_tick_goes_through_the_workers_policies() {
    let manager = WorkerManager::new();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let options = WorkerOptions::new()
        .every(Duration::from_secs(10))
        .retries(2)
        .backoff(ms(10));
    manager
        .register_with("flaky-cleanup", options, {
            let attempts = attempts.clone();
            move |ctx| {
                let attempts = attempts.clone();
                async move {
                    attempts.lock().unwrap().push(ctx.attempt());
                    if ctx.attempt() < 2 {
                        return Err(Error::msg("disk busy"));
                    }
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(*attempts.lock().unwrap(), [1, 2]);
    let stats = manager.stats("flaky-cleanup").await.unwrap();
    assert_eq!((stats.runs, stats.errors, stats.retries), (1, 0, 1));
}

#[tokio::test]
async fn schedules_that_cant_be_used_register_nothing_and_say_why() {
    let manager = WorkerManager::new();
    let cases = [
        (
            WorkerOptions::new().every(ms(1)).cron("* * * * *"),
            "every and cron can't both be given: a worker has one schedule",
        ),
        (
            WorkerOptions::new().tz("Europe/Berlin"),
            "tz needs cron: it is the zone the cron expression is read in",
        ),
        (
            WorkerOptions::new().cron("0 25 * * *"),
            "invalid cron expression \"0 25 * * *\"",
        ),
        (
            WorkerOptions::new().cron("0 3 * * *").tz("Europe/Atlantis"),
            "unknown time zone \"Europe/Atlantis\"",
        ),
    ];
    for (options, problem) in cases {
        let err = manager
            .register_with("nightly", options, |_ctx| async { Ok(()) })
            .await
            .unwrap_err();
        assert!(err.is_validation(), "{err}");
        let expected = format!("invalid options for worker 'nightly': {problem}");
        assert!(err.to_string().starts_with(&expected), "{err}");
    }
    assert!(manager.definitions().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn ticks_missed_while_the_runtime_stalled_are_not_caught_up() {
    let manager = WorkerManager::new();
    let (_, starts) = scheduled(&manager, WorkerOptions::new().every(ms(100)), ms(1)).await;
    tokio::time::sleep(ms(150)).await; // one tick, at 100 ms
    // The runtime "stalls" for 1 s: the clock jumps with nothing polled.
    tokio::time::advance(ms(1000)).await;
    tokio::time::sleep(ms(20)).await;
    let starts = starts.lock().unwrap().clone();
    assert_eq!(
        starts.len(),
        2,
        "one run for the ten missed ticks: {starts:?}"
    );
    tokio::time::sleep(ms(200)).await;
    let later = manager.stats("tick").await.unwrap().runs;
    assert!(
        later <= 4,
        "back on its cadence, not catching up: {later} runs"
    );
}
