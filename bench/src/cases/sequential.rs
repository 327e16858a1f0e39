//! B1/B2: one run at a time, the per-call overhead a caller pays.
//!
//! `run` executes the worker inline in the caller's task, so from outside
//! the runtime it saves the cross-thread hop a `spawn(..).await` pays (B1),
//! and inside a task it must stay close to a local spawn (B1t). `call`
//! always spawns; its handle is compared with spawn + oneshot (B2, B2t).

use std::time::Instant;

use tokio::sync::oneshot;
use worker_core::prelude::*;

use super::{Env, Ratio, compare, noop_manager};
use crate::harness::{Context, Leg, Ops};
use crate::report::{Row, Target};

pub fn b1(env: &Env) -> Vec<Row> {
    vec![run_vs_spawn(
        env,
        Context::Outside,
        "B1",
        "run(noop) vs spawn().await, outside",
        0.10,
    )]
}

pub fn b1t(env: &Env) -> Vec<Row> {
    vec![run_vs_spawn(
        env,
        Context::InTask,
        "B1t",
        "run(noop) vs spawn().await, in a task",
        1.5,
    )]
}

pub fn b2(env: &Env) -> Vec<Row> {
    vec![call_vs_oneshot(
        env,
        Context::Outside,
        "B2",
        "call+await_result vs spawn+oneshot, outside",
        1.10,
    )]
}

pub fn b2t(env: &Env) -> Vec<Row> {
    vec![call_vs_oneshot(
        env,
        Context::InTask,
        "B2t",
        "call+await_result vs spawn+oneshot, in a task",
        1.5,
    )]
}

fn run_vs_spawn(env: &Env, ctx: Context, id: &str, what: &str, target: f64) -> Row {
    let rt = env.rt;
    let manager = noop_manager(rt);
    let project = Leg::new("run", Ops::Budget(env.budget()), |n| {
        let manager = manager.clone();
        ctx.block_on(rt, async move {
            let start = Instant::now();
            for _ in 0..n {
                manager.run("noop", None).await.expect("run noop");
            }
            start.elapsed()
        })
    });
    let raw = Leg::new("spawn", Ops::Budget(env.budget()), |n| {
        ctx.block_on(rt, async move {
            let start = Instant::now();
            for _ in 0..n {
                tokio::spawn(async {}).await.expect("task");
            }
            start.elapsed()
        })
    });
    compare(
        id,
        what,
        env.rounds(31),
        [project, raw],
        Ratio::Time,
        Target::AtMost(target),
        "op",
    )
}

fn call_vs_oneshot(env: &Env, ctx: Context, id: &str, what: &str, target: f64) -> Row {
    let rt = env.rt;
    let manager = noop_manager(rt);
    let project = Leg::new("call", Ops::Budget(env.budget()), |n| {
        let manager = manager.clone();
        ctx.block_on(rt, async move {
            let start = Instant::now();
            for _ in 0..n {
                let handle = manager.call("noop", None, None).await.expect("call");
                handle.await_result().await.expect("noop result");
            }
            start.elapsed()
        })
    });
    // What a hand-rolled "handle with a result" is: a task that reports
    // through a oneshot, awaited by the caller.
    let raw = Leg::new("spawn+oneshot", Ops::Budget(env.budget()), |n| {
        ctx.block_on(rt, async move {
            let start = Instant::now();
            for _ in 0..n {
                let (tx, rx) = oneshot::channel::<Result<()>>();
                tokio::spawn(async move {
                    let _ = tx.send(Ok(()));
                });
                rx.await.expect("sender dropped").expect("result");
            }
            start.elapsed()
        })
    });
    compare(
        id,
        what,
        env.rounds(31),
        [project, raw],
        Ratio::Time,
        Target::AtMost(target),
        "op",
    )
}
