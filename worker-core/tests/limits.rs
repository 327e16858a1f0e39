//! Cluster-wide limits in this process, where the process is the cluster:
//! `global_concurrency`, `rate`, and per value of `limit_by`,
//! `key_concurrency` and `key_rate`. Never over a limit, and not under it
//! while work waits; one key's backlog never holds back another key; what
//! waits for a limit is queued (and bounded by `queue_limit`), shown in
//! the stats, and a retry's backoff holds nothing. Time is tokio's paused
//! clock: start instants are exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use worker_core::backend::{
    Backend, BackendBuilder, BoxFuture, ClaimedRun, Node, RemoteRun, Resolved, ScheduledRun,
};
use worker_core::prelude::*;
use worker_core::{KeyUse, LimitUse, RunId};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What a probe worker saw: each attempt's start (its payload's `account`
/// and when), and the most attempts executing at once, overall and per
/// account.
#[derive(Default)]
struct Probe {
    running: usize,
    running_by_key: HashMap<String, usize>,
    most_running: usize,
    most_by_key: HashMap<String, usize>,
    starts: Vec<(String, Instant)>,
}

impl Probe {
    fn started(&mut self, key: &str) {
        self.starts.push((key.to_owned(), Instant::now()));
        self.running += 1;
        self.most_running = self.most_running.max(self.running);
        let running = self.running_by_key.entry(key.to_owned()).or_default();
        *running += 1;
        let most = self.most_by_key.entry(key.to_owned()).or_default();
        *most = (*most).max(*running);
    }

    fn ended(&mut self, key: &str) {
        self.running -= 1;
        *self.running_by_key.get_mut(key).unwrap() -= 1;
    }

    /// The start instants of one account, in order.
    fn starts_of(&self, key: &str) -> Vec<Instant> {
        self.starts
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, at)| *at)
            .collect()
    }

    fn order(&self) -> Vec<&str> {
        self.starts.iter().map(|(key, _)| key.as_str()).collect()
    }
}

/// Registers a worker that records its attempts in the returned probe
/// and works for `work`. An attempt whose payload says `"fail": true`
/// fails if it is the run's first.
async fn probe(
    manager: &WorkerManager,
    name: &str,
    options: WorkerOptions,
    work: Duration,
) -> Arc<Mutex<Probe>> {
    let probe = Arc::new(Mutex::new(Probe::default()));
    let seen = probe.clone();
    manager
        .register_with(name, options, move |ctx| {
            let seen = seen.clone();
            async move {
                let payload = ctx.payload();
                let key = payload
                    .and_then(|p| p.get("account"))
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_owned();
                let fail = payload.and_then(|p| p.get("fail")) == Some(&json!(true));
                seen.lock().unwrap().started(&key);
                if fail && ctx.attempt() == 1 {
                    seen.lock().unwrap().ended(&key);
                    return Err(Error::msg("the first attempt fails"));
                }
                ctx.sleep(work).await;
                seen.lock().unwrap().ended(&key);
                Ok(())
            }
        })
        .await
        .unwrap();
    probe
}

fn account(key: impl std::fmt::Display) -> Option<Value> {
    Some(json!({ "account": key.to_string() }))
}

/// Calls `worker` once per payload, all at once, and waits for every run.
async fn call_all(manager: &WorkerManager, worker: &str, payloads: Vec<Option<Value>>) {
    let mut handles = Vec::new();
    for payload in payloads {
        handles.push(manager.call(worker, None, payload).await.unwrap());
    }
    for handle in handles {
        handle.await_result().await.unwrap();
    }
}

/// The most starts within any interval of `period` (half-open: a start
/// `period` after another is in the next one).
fn most_in_any_window(starts: &[Instant], period: Duration) -> usize {
    let mut starts = starts.to_vec();
    starts.sort();
    (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|&&at| at < starts[i] + period)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn global_concurrency_is_never_exceeded_and_fully_used() {
    let manager = WorkerManager::new();
    let cases = [
        ("global", WorkerOptions::new().global_concurrency(3), 3),
        (
            "global-below-local",
            WorkerOptions::new().concurrency(5).global_concurrency(2),
            2,
        ),
        (
            "local-below-global",
            WorkerOptions::new().concurrency(2).global_concurrency(5),
            2,
        ),
    ];
    for (name, options, limit) in cases {
        let probe = probe(&manager, name, options, ms(100)).await;
        call_all(&manager, name, vec![None; 50]).await;
        let probe = probe.lock().unwrap();
        assert_eq!(probe.starts.len(), 50);
        assert_eq!(
            probe.most_running, limit,
            "{name}: the limit, and all of it"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_rate_holds_in_every_sliding_window_and_is_used_to_the_full() {
    let manager = WorkerManager::new();
    let probe = probe(&manager, "sync", WorkerOptions::new().rate("5/1s"), ms(10)).await;
    let began = Instant::now();
    call_all(&manager, "sync", vec![None; 40]).await;
    let starts: Vec<Instant> = probe.lock().unwrap().starts_of("-");
    assert_eq!(starts.len(), 40);
    assert_eq!(most_in_any_window(&starts, secs(1)), 5);
    for (n, at) in starts.iter().enumerate() {
        // Five at once, then five more the moment each second's starts
        // leave the window.
        assert_eq!(*at - began, secs(n as u64 / 5), "start {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_burst_of_twice_the_rate_across_the_turn_of_a_period() {
    let manager = WorkerManager::new();
    let probe = probe(&manager, "sync", WorkerOptions::new().rate("5/1s"), ms(10)).await;
    let began = Instant::now();
    tokio::time::sleep(ms(900)).await;
    let mut handles = Vec::new();
    for _ in 0..5 {
        handles.push(manager.call("sync", None, None).await.unwrap());
    }
    tokio::time::sleep(ms(200)).await; // a fixed window would have turned
    for _ in 0..5 {
        handles.push(manager.call("sync", None, None).await.unwrap());
    }
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    let starts = probe.lock().unwrap().starts_of("-");
    assert_eq!(most_in_any_window(&starts, secs(1)), 5);
    assert!(starts[..5].iter().all(|at| *at - began == ms(900)));
    assert!(
        starts[5..].iter().all(|at| *at - began == ms(1900)),
        "the second five start a full period after the first"
    );
}

#[tokio::test(start_paused = true)]
async fn key_concurrency_is_exact_per_key_and_keys_run_side_by_side() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().limit_by("account").key_concurrency(2);
    let probe = probe(&manager, "sync", options, ms(50)).await;
    let payloads = (0..200).map(|n| account(format!("k{}", n % 20))).collect();
    call_all(&manager, "sync", payloads).await;
    let probe = probe.lock().unwrap();
    assert_eq!(probe.starts.len(), 200);
    assert_eq!(probe.most_by_key.len(), 20);
    for (key, most) in &probe.most_by_key {
        assert_eq!(
            *most, 2,
            "{key}: at most 2 at once, and 2 while it had work"
        );
    }
    assert_eq!(probe.most_running, 40, "every key at its limit at once");
}

#[tokio::test(start_paused = true)]
async fn key_rate_is_exact_per_key_in_every_sliding_window() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().limit_by("account").key_rate("3/1s");
    let probe = probe(&manager, "sync", options, ms(10)).await;
    let began = Instant::now();
    let payloads = (0..200).map(|n| account(format!("k{}", n % 20))).collect();
    call_all(&manager, "sync", payloads).await;
    let probe = probe.lock().unwrap();
    for key in (0..20).map(|n| format!("k{n}")) {
        let starts = probe.starts_of(&key);
        assert_eq!(starts.len(), 10);
        assert_eq!(most_in_any_window(&starts, secs(1)), 3, "{key}");
        for (n, at) in starts.iter().enumerate() {
            assert_eq!(*at - began, secs(n as u64 / 3), "{key}: start {n}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_with_a_thousand_waiting_never_holds_back_a_key_with_one() {
    let manager = WorkerManager::new();
    let at_its_limit = WorkerOptions::new()
        .global_concurrency(1)
        .limit_by("account")
        .key_concurrency(1);
    let probe_a = probe(&manager, "at-its-limit", at_its_limit, ms(10)).await;
    let below_its_limit = WorkerOptions::new()
        .global_concurrency(1)
        .limit_by("account")
        .key_concurrency(1000);
    let probe_b = probe(&manager, "below-its-limit", below_its_limit, ms(10)).await;
    for (name, probe, position) in [
        ("at-its-limit", &probe_a, 1),
        ("below-its-limit", &probe_b, 2),
    ] {
        let mut payloads = vec![account("a"); 1000];
        payloads.push(account("b"));
        call_all(&manager, name, payloads).await;
        let probe = probe.lock().unwrap();
        let order = probe.order();
        assert_eq!(order.len(), 1001);
        // At its limit, a's next run waits for its first: b takes the slot
        // that frees. Below it, a's next run had its turn before b came,
        // and b has the one after: a's backlog waits behind b either way.
        assert_eq!(
            order.iter().position(|key| *key == "b"),
            Some(position),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn queue_limit_counts_the_runs_waiting_for_a_limit() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .concurrency(100)
        .queue_limit(2)
        .limit_by("account")
        .key_concurrency(1);
    probe(&manager, "sync", options, secs(3600)).await;
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(manager.call("sync", None, account("a")).await.unwrap());
    }
    let refused = manager.call("sync", None, account("a")).await.unwrap_err();
    assert!(refused.is_overloaded(), "{refused}");
    // Another key's run starts at once: the queue bounds waiting, not starting.
    handles.push(manager.call("sync", None, account("b")).await.unwrap());
    let stats = manager.stats("sync").await.unwrap();
    assert_eq!((stats.running, stats.queued, stats.errors), (2, 2, 0));

    let options = WorkerOptions::new()
        .concurrency(100)
        .queue_limit(1)
        .global_concurrency(1);
    probe(&manager, "global", options, secs(3600)).await;
    handles.push(manager.call("global", None, None).await.unwrap());
    handles.push(manager.call("global", None, None).await.unwrap());
    let refused = manager.call("global", None, None).await.unwrap_err();
    assert!(refused.is_overloaded(), "{refused}");
    let stats = manager.stats("global").await.unwrap();
    assert_eq!((stats.running, stats.queued), (1, 1));
    manager.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stats_show_the_limits_in_use() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .global_concurrency(2)
        .rate("10/1m")
        .limit_by("account")
        .key_concurrency(1)
        .key_rate("5/1m");
    probe(&manager, "sync", options, secs(3600)).await;
    probe(
        &manager,
        "plain",
        WorkerOptions::new().concurrency(2),
        ms(1),
    )
    .await;
    for key in ["a", "a", "a", "b"] {
        manager.call("sync", None, account(key)).await.unwrap();
    }
    tokio::task::yield_now().await;
    let stats = manager.stats("sync").await.unwrap();
    assert_eq!((stats.running, stats.queued), (2, 2));
    let in_use = |key: &str, queued| KeyUse {
        key: key.to_owned(),
        running: 1,
        started: 1,
        queued,
    };
    assert_eq!(
        stats.limits,
        Some(LimitUse {
            running: 2,
            global_concurrency: Some(2),
            started: 2,
            rate: Some("10/1m".parse().unwrap()),
            keys: vec![in_use("a", 2), in_use("b", 0)],
        })
    );
    assert_eq!(manager.stats("plain").await.unwrap().limits, None);
    manager.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_payload_without_the_limit_by_field_is_refused_before_anything_runs() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().limit_by("account").key_concurrency(1);
    let probe = probe(&manager, "sync", options, ms(1)).await;
    let other = json!({"user": 7});
    let refusals = [
        manager.call("sync", None, Some(other.clone())).await.err(),
        manager.call("sync", None, None).await.err(),
        manager.run("sync", Some(other.clone())).await.err(),
        manager
            .call_with("sync", Call::new().payload(&other))
            .await
            .err(),
        manager
            .call_with("sync", Call::new().payload(&other).delay(secs(1)))
            .await
            .err(),
        manager
            .call_many("sync", [Call::new().payload(&other)])
            .await
            .err(),
    ];
    for error in refusals {
        let error = error.expect("refused");
        assert!(error.is_validation(), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("'sync'") && text.contains("`account`"),
            "{text}"
        );
    }
    let stats = manager.stats("sync").await.unwrap();
    assert_eq!(
        (stats.runs, stats.errors, stats.queued, stats.scheduled),
        (0, 0, 0, 0)
    );
    assert!(probe.lock().unwrap().starts.is_empty());
    assert_eq!(manager.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waiting_out_its_backoff_holds_no_slot() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .retries(1)
        .backoff(secs(1))
        .global_concurrency(1)
        .limit_by("account")
        .key_concurrency(1);
    let probe = probe(&manager, "sync", options, ms(200)).await;
    let began = Instant::now();
    let flaky = manager
        .call("sync", None, Some(json!({"account": "a", "fail": true})))
        .await
        .unwrap();
    tokio::time::sleep(ms(100)).await;
    let usage = manager.stats("sync").await.unwrap().limits.unwrap();
    assert_eq!(usage.running, 0, "the backoff holds no slot");
    assert!(usage.keys.iter().all(|key| key.running == 0), "{usage:?}");
    let same_key = manager.call("sync", None, account("a")).await.unwrap();
    tokio::task::yield_now().await;
    same_key.await_result().await.unwrap();
    flaky.await_result().await.unwrap();
    let starts = probe.lock().unwrap().starts_of("a");
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0] - began, ms(0));
    assert_eq!(starts[1] - began, ms(100), "started during the backoff");
    assert!(starts[2] - began >= secs(1), "the retry after its backoff");
}

#[tokio::test(start_paused = true)]
async fn jobs_and_batches_wait_for_their_keys_slot() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new().limit_by("account").key_concurrency(1);
    let probe = probe(&manager, "sync", options, ms(100)).await;
    let began = Instant::now();
    let batch = ["a", "a", "b", "a"].map(|key| Call::new().payload(json!({"account": key})));
    manager.call_many("sync", batch).await.unwrap();
    let delayed = manager
        .call_with(
            "sync",
            Call::new().payload(json!({"account": "b"})).delay(ms(50)),
        )
        .await
        .unwrap();
    delayed.await_result().await.unwrap();
    tokio::time::sleep(secs(1)).await;
    let probe = probe.lock().unwrap();
    let since = |at: &Instant| *at - began;
    let a: Vec<Duration> = probe.starts_of("a").iter().map(since).collect();
    let b: Vec<Duration> = probe.starts_of("b").iter().map(since).collect();
    assert_eq!(a, [ms(0), ms(100), ms(200)]);
    assert_eq!(b, [ms(0), ms(100)], "the due job waited for b's slot");
    assert_eq!(probe.most_running, 2);
}

/// A backend that only hands its node over: the test executes "claimed"
/// runs through it, as a real backend does after its claim.
struct HandsOverItsNode(Arc<Mutex<Option<Node>>>);

struct Stub;

fn refused<T: Send + 'static>() -> BoxFuture<'static, worker_core::Result<T>> {
    Box::pin(async { Err(Error::msg("not in this test")) })
}

impl BackendBuilder for HandsOverItsNode {
    fn start(
        self: Box<Self>,
        node: Node,
    ) -> BoxFuture<'static, worker_core::Result<Arc<dyn Backend>>> {
        *self.0.lock().unwrap() = Some(node);
        Box::pin(async { Ok(Arc::new(Stub) as Arc<dyn Backend>) })
    }
}

impl Backend for Stub {
    fn call(
        &self,
        _: &str,
        _: Option<Duration>,
        _: Option<Value>,
    ) -> BoxFuture<'_, worker_core::Result<Box<dyn RemoteRun>>> {
        refused()
    }
    fn call_with(
        &self,
        _: &str,
        _: Resolved,
    ) -> BoxFuture<'_, worker_core::Result<Box<dyn RemoteRun>>> {
        refused()
    }
    fn call_many(
        &self,
        _: &str,
        _: Vec<Resolved>,
    ) -> BoxFuture<'_, worker_core::Result<Vec<RunId>>> {
        refused()
    }
    fn scheduled(&self, _: Option<&str>) -> BoxFuture<'_, worker_core::Result<Vec<ScheduledRun>>> {
        refused()
    }
    fn set_paused(&self, _: &str, _: bool) -> BoxFuture<'_, worker_core::Result<()>> {
        refused()
    }
    fn is_paused(&self, _: &str) -> BoxFuture<'_, worker_core::Result<bool>> {
        refused()
    }
    fn attach(&self, _: RunId) -> BoxFuture<'_, worker_core::Result<Box<dyn RemoteRun>>> {
        refused()
    }
    fn cancel(&self, _: RunId) -> BoxFuture<'_, worker_core::Result<()>> {
        refused()
    }
    fn running(&self, _: Option<&str>) -> BoxFuture<'_, worker_core::Result<Vec<RunId>>> {
        refused()
    }
    fn stats(&self, _: &str) -> BoxFuture<'_, worker_core::Result<Option<WorkerStats>>> {
        refused()
    }
    fn tick(&self, _: &str, _: std::time::SystemTime) -> BoxFuture<'_, worker_core::Result<()>> {
        refused()
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, worker_core::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(start_paused = true)]
async fn runs_a_backend_claimed_are_held_to_the_local_concurrency_only() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .concurrency(2)
        .global_concurrency(1)
        .rate("1/1h")
        .limit_by("account")
        .key_concurrency(1);
    let probe = probe(&manager, "sync", options, ms(100)).await;
    let node = Arc::new(Mutex::new(None));
    manager
        .set_backend(HandsOverItsNode(node.clone()))
        .await
        .unwrap();
    let node = node.lock().unwrap().clone().unwrap();
    let began = Instant::now();
    // The backend's claim applied the cluster's limits: here only the
    // local concurrency holds them (and a payload is not read for its key).
    let payloads = [account("a"), account("a"), account("a"), None];
    let handles: Vec<WorkerHandle> = payloads
        .into_iter()
        .map(|payload| {
            node.execute(ClaimedRun {
                run_id: RunId::random(),
                worker: "sync".to_owned(),
                payload,
                attempt: 1,
                timeout: None,
                priority: 0,
                step: None,
            })
            .unwrap()
        })
        .collect();
    for handle in handles {
        handle.await_result().await.unwrap();
    }
    manager.shutdown().await.unwrap();
    let probe = probe.lock().unwrap();
    assert_eq!(
        probe.most_running, 2,
        "local concurrency, not global_concurrency"
    );
    assert_eq!(probe.most_by_key["a"], 2, "nor key_concurrency");
    let since: Vec<Duration> = probe.starts.iter().map(|(_, at)| *at - began).collect();
    assert_eq!(since, [ms(0), ms(0), ms(100), ms(100)], "nor the rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_with_runs_on_many_threads() {
    let manager = WorkerManager::new();
    let options = WorkerOptions::new()
        .global_concurrency(3)
        .limit_by("account")
        .key_concurrency(1);
    let probe = probe(&manager, "sync", options, Duration::ZERO).await;
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let payloads = (0..100).map(|n| account(format!("k{}", (n + caller) % 10)));
                call_all(&manager, "sync", payloads.collect()).await;
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    {
        let probe = probe.lock().unwrap();
        assert_eq!(probe.starts.len(), 400);
        assert!(probe.most_running <= 3, "{}", probe.most_running);
        assert!(probe.most_by_key.values().all(|most| *most == 1));
    }
    let stats = manager.stats("sync").await.unwrap();
    assert_eq!((stats.running, stats.queued), (0, 0));
    assert_eq!(stats.limits.unwrap().running, 0);
}
