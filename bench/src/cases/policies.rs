//! What declared run policies cost.
//!
//! - B9: a policy that is declared but never triggered (`retries = 3` on a
//!   worker that succeeds) against the same worker without it: the price of
//!   keeping the handler for a retry that never comes.
//! - B10: `concurrency = 4` against the raw-tokio way of bounding a burst:
//!   each spawned task takes a permit of a shared `Semaphore(4)`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use worker_core::prelude::*;

use super::{Env, Ratio, compare};
use crate::harness::{Context, Leg, Ops};
use crate::report::{Row, Target, count};

pub fn b9(env: &Env) -> Vec<Row> {
    let rt = env.rt;
    let manager = WorkerManager::new();
    rt.block_on(async {
        manager
            .register("plain", |_ctx| async { Ok(()) })
            .await
            .expect("register plain");
        let retrying = WorkerOptions::new()
            .retries(3)
            .backoff(Duration::from_millis(10));
        manager
            .register_with("retrying", retrying, |_ctx| async { Ok(()) })
            .await
            .expect("register retrying");
    });
    let leg = |label: &'static str, worker: &'static str| {
        let manager = manager.clone();
        Leg::new(label, Ops::Budget(env.budget()), move |n| {
            let manager = manager.clone();
            Context::InTask.block_on(rt, async move {
                let start = Instant::now();
                for _ in 0..n {
                    let handle = manager.call(worker, None, None).await.expect("call");
                    handle.await_result().await.expect("result");
                }
                start.elapsed()
            })
        })
    };
    vec![compare(
        "B9",
        "call+await_result, retries = 3 never triggered vs none, in a task",
        env.rounds(31),
        [leg("retries = 3", "retrying"), leg("no policy", "plain")],
        Ratio::Time,
        Target::AtMost(1.05),
        "op",
    )]
}

pub fn b10(env: &Env) -> Vec<Row> {
    const LIMIT: usize = 4;
    let rt = env.rt;
    let n = env.size(20_000, 2_000);
    let manager = WorkerManager::new();
    rt.block_on(manager.register_with(
        "bounded",
        WorkerOptions::new().concurrency(LIMIT),
        |_ctx| async { Ok(()) },
    ))
    .expect("register bounded");
    let project = Leg::new("concurrency = 4", Ops::Fixed(n), |n| {
        let manager = manager.clone();
        Context::InTask.block_on(rt, async move {
            let mut handles = Vec::with_capacity(n as usize);
            let start = Instant::now();
            for _ in 0..n {
                handles.push(manager.call("bounded", None, None).await.expect("call"));
            }
            for handle in handles {
                handle.await_result().await.expect("result");
            }
            start.elapsed()
        })
    });
    let raw = Leg::new("Semaphore(4) + spawn", Ops::Fixed(n), |n| {
        Context::InTask.block_on(rt, async move {
            let permits = Arc::new(Semaphore::new(LIMIT));
            let mut handles = Vec::with_capacity(n as usize);
            let start = Instant::now();
            for _ in 0..n {
                let permits = permits.clone();
                handles.push(tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("open semaphore");
                }));
            }
            for handle in handles {
                handle.await.expect("task");
            }
            start.elapsed()
        })
    });
    vec![compare(
        "B10",
        &format!(
            "burst of {}: call with concurrency = 4 vs Semaphore(4)-guarded spawn, in a task",
            count(n)
        ),
        env.rounds(15),
        [project, raw],
        Ratio::Time,
        Target::AtMost(1.5),
        "run",
    )]
}
