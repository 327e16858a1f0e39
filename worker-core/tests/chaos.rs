//! Chaos soak: 200,000 runs over 20 workers whose behaviour is drawn from a
//! seeded RNG; callers that read all, some or none of the messages, drop
//! their handles, cancel by id or by handle. Afterwards the accounting must
//! be exact and nothing may be left running.
//!
//! `CHAOS_SEED=<n>` replays a failure (the seed is printed on failure);
//! `CHAOS_RUNS=<n>` scales it (e.g. 2000000 for a long soak).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use worker_core::prelude::*;

const WORKERS: usize = 20;

/// splitmix64: small, seedable, good enough to pick behaviours.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Succeed,
    Fail,
    Panic,
    Overrun,
    CancelById,
    CancelByHandle,
    IgnoreCancel,
}

#[derive(Clone, Copy, Debug)]
enum Caller {
    ReadAll,
    ReadSome(usize),
    ReadNone,
    DropHandle,
    Run,
}

/// What each worker's runs should add up to.
#[derive(Default)]
struct Expected {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

async fn register_workers(manager: &WorkerManager) {
    for w in 0..WORKERS {
        manager
            .register(format!("chaos-{w}"), |ctx| async move {
                let payload = ctx.payload().cloned().unwrap_or_default();
                let messages = payload["messages"].as_u64().unwrap_or(0);
                if payload["state"].as_bool() == Some(true) {
                    ctx.set_state("n", json!(messages)).await?;
                }
                for i in 0..messages {
                    ctx.emit(json!(i))?;
                }
                match payload["behaviour"].as_str().unwrap_or_default() {
                    "Succeed" => Ok(()),
                    "Fail" => Err(Error::validation("chaos says no")),
                    "Panic" => panic!("chaos panic"),
                    "Overrun" => std::future::pending().await,
                    "CancelById" | "CancelByHandle" => {
                        ctx.cancelled().await;
                        Ok(())
                    }
                    _ => {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                }
            })
            .await
            .unwrap();
    }
}

fn draw(rng: &mut Rng) -> (usize, Behaviour, Caller, u64, bool) {
    let worker = rng.below(WORKERS as u64) as usize;
    let behaviour = match rng.below(100) {
        0..=49 => Behaviour::Succeed,
        50..=64 => Behaviour::Fail,
        65..=72 => Behaviour::Panic,
        73..=80 => Behaviour::Overrun,
        81..=88 => Behaviour::CancelById,
        89..=95 => Behaviour::CancelByHandle,
        _ => Behaviour::IgnoreCancel,
    };
    let messages = match rng.below(4) {
        0 => 0,
        1 => rng.below(5),
        _ => rng.below(101),
    };
    let caller = match (behaviour, rng.below(10)) {
        // Cancelling needs a live run: those callers keep their handle.
        (Behaviour::CancelById | Behaviour::CancelByHandle | Behaviour::IgnoreCancel, n) => {
            if n < 5 {
                Caller::ReadAll
            } else {
                Caller::ReadNone
            }
        }
        // Only `call` can give a run a timeout of its own.
        (Behaviour::Overrun, 8..) => Caller::ReadAll,
        (_, 0..=3) => Caller::ReadAll,
        (_, 4..=5) => Caller::ReadSome(rng.below(messages + 1) as usize),
        (_, 6) => Caller::ReadNone,
        (_, 7) => Caller::DropHandle,
        _ => Caller::Run,
    };
    (worker, behaviour, caller, messages, rng.below(2) == 0)
}

async fn one_run(
    manager: WorkerManager,
    expected: Arc<Vec<Expected>>,
    seed: u64,
) -> std::result::Result<(), String> {
    let mut rng = Rng(seed);
    let (worker, behaviour, caller, messages, state) = draw(&mut rng);
    let name = format!("chaos-{worker}");
    let payload =
        json!({"behaviour": format!("{behaviour:?}"), "messages": messages, "state": state});
    let timeout = (behaviour == Behaviour::Overrun).then_some(Duration::from_millis(1));
    let exp = &expected[worker];
    exp.started.fetch_add(1, Relaxed);
    match behaviour {
        Behaviour::Succeed => exp.succeeded.fetch_add(1, Relaxed),
        Behaviour::Fail | Behaviour::Panic | Behaviour::Overrun => exp.failed.fetch_add(1, Relaxed),
        _ => exp.cancelled.fetch_add(1, Relaxed),
    };

    if let Caller::Run = caller {
        let result = manager.run(&name, Some(payload)).await;
        return check_outcome(behaviour, result);
    }
    let mut handle = manager
        .call(&name, timeout, Some(payload))
        .await
        .map_err(|e| e.to_string())?;
    let wanted = match caller {
        Caller::ReadAll => messages as usize,
        Caller::ReadSome(k) => k,
        _ => 0,
    };
    let cancels = matches!(
        behaviour,
        Behaviour::CancelById | Behaviour::CancelByHandle | Behaviour::IgnoreCancel
    );
    // Read before cancelling: every message is emitted before the worker waits.
    for i in 0..wanted {
        match handle.recv().await {
            Some(message) if message == json!(i) => {}
            other => return Err(format!("{name} {behaviour:?}: message {i} was {other:?}")),
        }
    }
    if cancels {
        let result = if behaviour == Behaviour::CancelById {
            let id = handle.id().to_owned();
            manager.cancel(&id).await
        } else {
            handle.cancel().await
        };
        result.map_err(|e| format!("{name}: cancel failed: {e}"))?;
    }
    if let Caller::ReadAll = caller {
        if let Some(extra) = handle.recv().await {
            return Err(format!("{name} {behaviour:?}: extra message {extra}"));
        }
    }
    if let Caller::DropHandle = caller {
        drop(handle);
        return Ok(());
    }
    check_outcome(behaviour, handle.await_result().await)
}

fn check_outcome(behaviour: Behaviour, result: Result<()>) -> std::result::Result<(), String> {
    let ok = match (&behaviour, &result) {
        (Behaviour::Succeed, Ok(())) => true,
        (Behaviour::Fail, Err(e)) => e.is_validation(),
        (Behaviour::Panic, Err(e)) => e.panic_message() == Some("chaos panic"),
        (Behaviour::Overrun, Err(e)) => e.is_timeout(),
        (_, Err(e)) => e.is_cancelled(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{behaviour:?} ended {result:?}"))
    }
}

#[test]
fn chaos_soak() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let runs: u64 = std::env::var("CHAOS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    eprintln!("chaos soak: CHAOS_SEED={seed} CHAOS_RUNS={runs}");
    // Silence the expected panics' messages, keep the rest.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"chaos panic") {
            default_hook(info);
        }
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let manager = WorkerManager::new();
        manager.set_grace_period(Duration::from_millis(2));
        register_workers(&manager).await;
        let expected: Arc<Vec<Expected>> = Arc::new((0..WORKERS).map(|_| Expected::default()).collect());

        let mut seeds = Rng(seed);
        let mut done = 0;
        let mut errors = Vec::new();
        while done < runs {
            let wave = (runs - done).min(2_000);
            let tasks: Vec<_> = (0..wave)
                .map(|_| tokio::spawn(one_run(manager.clone(), expected.clone(), seeds.next())))
                .collect();
            for task in tasks {
                if let Err(error) = task.await.expect("a caller never panics") {
                    errors.push(error);
                }
            }
            done += wave;
        }
        // Fire-and-forget runs may still be finishing: wait for them, not forever.
        for _ in 0..10_000 {
            if manager.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        manager.shutdown().await.unwrap();

        if !errors.is_empty() {
            return Err(format!("{} callers saw something wrong, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]));
        }
        if !manager.running().await.unwrap().is_empty() || manager.in_flight() != 0 {
            return Err("runs still listed after shutdown".into());
        }
        for (w, exp) in expected.iter().enumerate() {
            let stats = manager.stats(&format!("chaos-{w}")).await.unwrap();
            let started = exp.started.load(Relaxed);
            let failed = exp.failed.load(Relaxed);
            let cancelled = exp.cancelled.load(Relaxed);
            if stats.runs + stats.cancelled != started
                || stats.errors != failed
                || stats.cancelled != cancelled
                || stats.running != 0
            {
                return Err(format!(
                    "chaos-{w}: stats {stats:?} but started {started}, failed {failed}, cancelled {cancelled}"
                ));
            }
        }
        // No task of the manager is left: every run's task has ended.
        let metrics = tokio::runtime::Handle::current().metrics();
        for _ in 0..1_000 {
            if metrics.num_alive_tasks() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if metrics.num_alive_tasks() != 0 {
            return Err(format!("{} tasks still alive", metrics.num_alive_tasks()));
        }
        Ok(())
    });
    if let Err(problem) = outcome {
        panic!("chaos soak failed (replay with CHAOS_SEED={seed} CHAOS_RUNS={runs}): {problem}");
    }
}
