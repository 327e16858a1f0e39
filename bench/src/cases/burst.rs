//! B3: a burst of 100,000 runs started before any is awaited — the cost of
//! admitting, listing and spawning many runs at once, and of collecting
//! their results. B3j is the seed's own pattern: `join_all` over the `call`
//! futures, then each handle awaited.

use std::time::Instant;

use futures::future::join_all;
use worker_core::prelude::*;

use super::{Env, Ratio, compare, noop_manager};
use crate::harness::{Context, Leg, Ops};
use crate::report::{Row, Target};

/// Runs per burst (per measurement).
fn burst(env: &Env) -> u64 {
    env.size(100_000, 10_000)
}

pub fn b3(env: &Env) -> Vec<Row> {
    vec![loop_burst(
        env,
        Context::Outside,
        "B3",
        "burst: call ×{n}, then await all, outside",
        1.20,
    )]
}

pub fn b3t(env: &Env) -> Vec<Row> {
    vec![loop_burst(
        env,
        Context::InTask,
        "B3t",
        "burst: call ×{n}, then await all, in a task",
        1.5,
    )]
}

fn loop_burst(env: &Env, ctx: Context, id: &str, what: &str, target: f64) -> Row {
    let rt = env.rt;
    let manager = noop_manager(rt);
    let n = burst(env);
    let what = what.replace("{n}", &crate::report::count(n));
    let project = Leg::new("call burst", Ops::Fixed(n), |n| {
        let manager = manager.clone();
        ctx.block_on(rt, async move {
            let mut handles = Vec::with_capacity(n as usize);
            let start = Instant::now();
            for _ in 0..n {
                handles.push(manager.call("noop", None, None).await.expect("call"));
            }
            for handle in handles {
                handle.await_result().await.expect("noop result");
            }
            start.elapsed()
        })
    });
    let raw = Leg::new("spawn burst", Ops::Fixed(n), |n| {
        ctx.block_on(rt, async move {
            let mut handles = Vec::with_capacity(n as usize);
            let start = Instant::now();
            for _ in 0..n {
                handles.push(tokio::spawn(async {}));
            }
            for handle in handles {
                handle.await.expect("task");
            }
            start.elapsed()
        })
    });
    compare(
        id,
        &what,
        env.rounds(15),
        [project, raw],
        Ratio::Time,
        Target::AtMost(target),
        "run",
    )
}

pub fn b3j(env: &Env) -> Vec<Row> {
    let rt = env.rt;
    let manager = noop_manager(rt);
    let n = burst(env);
    // Outside, like the body of the seed's `#[tokio::main]`.
    let project = Leg::new("join_all(call)", Ops::Fixed(n), |n| {
        let manager = manager.clone();
        rt.block_on(async move {
            let start = Instant::now();
            let calls = (0..n).map(|_| manager.call("noop", None, None));
            let handles: Vec<Result<WorkerHandle>> = join_all(calls).await;
            for handle in handles {
                let handle = handle.expect("call");
                handle.await_result().await.expect("noop result");
            }
            start.elapsed()
        })
    });
    let raw = Leg::new("join_all(spawn)", Ops::Fixed(n), |n| {
        rt.block_on(async move {
            let start = Instant::now();
            let results = join_all((0..n).map(|_| tokio::spawn(async {}))).await;
            for result in results {
                result.expect("task");
            }
            start.elapsed()
        })
    });
    vec![compare(
        "B3j",
        &format!(
            "join_all(call ×{}), then each handle, outside",
            crate::report::count(n)
        ),
        env.rounds(15),
        [project, raw],
        Ratio::Time,
        Target::AtMost(1.5),
        "run",
    )]
}
