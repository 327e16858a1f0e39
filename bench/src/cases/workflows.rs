//! What a workflow costs in this process (the in-process half of case
//! (h)): diamonds of 4 steps (1 → 2 → 1) against the same number of
//! independent runs of the same worker, each started and awaited. The
//! difference is the workflow's: a held job per step, its driver task,
//! the event log and the parents' outputs handed on.

use std::time::Instant;

use worker_core::prelude::*;

use super::{Env, Ratio, compare};
use crate::harness::{Context, Leg, Ops};
use crate::report::{Row, Target, count};

pub fn b11(env: &Env) -> Vec<Row> {
    let rt = env.rt;
    let diamonds = env.size(1_000, 50);
    let manager = WorkerManager::new();
    rt.block_on(manager.register("step", |_ctx| async { Ok(()) }))
        .expect("register step");
    let flows = {
        let manager = manager.clone();
        Leg::new("diamond workflows", Ops::Fixed(diamonds * 4), move |_| {
            let manager = manager.clone();
            Context::InTask.block_on(rt, async move {
                let start = Instant::now();
                let mut handles = Vec::with_capacity(diamonds as usize);
                for _ in 0..diamonds {
                    let flow = Workflow::new("diamond")
                        .step("a", "step", Call::new())
                        .step("b", "step", Call::new())
                        .after(["a"])
                        .step("c", "step", Call::new())
                        .after(["a"])
                        .step("d", "step", Call::new())
                        .after(["b", "c"]);
                    handles.push(manager.start_workflow(flow).await.expect("start"));
                }
                for handle in handles {
                    handle.await_result().await.expect("workflow");
                }
                start.elapsed()
            })
        })
    };
    let runs = {
        let manager = manager.clone();
        Leg::new("independent runs", Ops::Fixed(diamonds * 4), move |n| {
            let manager = manager.clone();
            Context::InTask.block_on(rt, async move {
                let start = Instant::now();
                let mut handles = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    handles.push(manager.call("step", None, None).await.expect("call"));
                }
                for handle in handles {
                    handle.await_result().await.expect("run");
                }
                start.elapsed()
            })
        })
    };
    vec![compare(
        "B11",
        &format!(
            "{} diamond workflows (1 → 2 → 1) vs {} independent runs, per step, in a task",
            count(diamonds),
            count(diamonds * 4)
        ),
        env.rounds(11),
        [flows, runs],
        Ratio::Time,
        Target::AtMost(1.5),
        "step",
    )]
}
