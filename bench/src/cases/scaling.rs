//! B6: does throughput grow with cores? Two loops on the 2-worker runtime
//! against one loop, for `run("noop")` and for spawn + join.
//!
//! Both loops are spawned from outside the runtime and meet at a start line
//! (see [`loops`]), so that one runs on each worker thread. A leg's op count is the
//! total over its loops; the scaling factor is (per-op time with 1 loop) ÷
//! (per-op time with 2 loops), 2.0 being perfect. Anything shared by all
//! runs of a manager (a lock, a counter, a reference count) makes the two
//! cores bounce its cache line and pulls the factor down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::runtime::Runtime;
use worker_core::prelude::*;

use super::{Env, noop_manager};
use crate::harness::{Leg, Ops, Spread, alternate, median, per_round};
use crate::report::{Row, Target, Unit, seconds};

pub fn b6(env: &Env) -> Vec<Row> {
    let rt = env.rt;
    let manager = noop_manager(rt);
    let budget = Ops::Budget(env.budget());
    let run_loop = |manager: WorkerManager, n: u64| async move {
        for _ in 0..n {
            manager.run("noop", None).await.expect("run noop");
        }
    };
    let spawn_loop = |n: u64| async move {
        for _ in 0..n {
            tokio::spawn(async {}).await.expect("task");
        }
    };
    // Pure computation, nothing shared: how far this machine's two cores
    // scale at all (a VM's vCPUs may be hyperthreads of one core).
    let cpu_loop = |n: u64| async move {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = std::hint::black_box(x);
        }
    };
    let mut legs = [
        Leg::new("run ×1", budget, |n| {
            loops(rt, [run_loop(manager.clone(), n)])
        }),
        Leg::new("run ×2", budget, |n| {
            loops(
                rt,
                [
                    run_loop(manager.clone(), n / 2),
                    run_loop(manager.clone(), n / 2),
                ],
            )
        }),
        Leg::new("spawn ×1", budget, |n| loops(rt, [spawn_loop(n)])),
        Leg::new("spawn ×2", budget, |n| {
            loops(rt, [spawn_loop(n / 2), spawn_loop(n / 2)])
        }),
        Leg::new("cpu ×1", budget, |n| loops(rt, [cpu_loop(n)])),
        Leg::new("cpu ×2", budget, |n| {
            loops(rt, [cpu_loop(n / 2), cpu_loop(n / 2)])
        }),
    ];
    let rounds = env.rounds(31);
    let per_op = alternate(rounds, &mut legs);
    let scaling = |one: usize, two: usize| per_round(&per_op[one], &per_op[two], |a, b| a / b);
    let (project, raw, cpu) = (scaling(0, 1), scaling(2, 3), scaling(4, 5));
    let figures = |one: usize, two: usize| {
        format!(
            "{}/op ×1, {}/op ×2",
            seconds(median(&per_op[one])),
            seconds(median(&per_op[two]))
        )
    };
    let details = json!({
        "rounds": rounds,
        "s_per_op": {
            "run_1": per_op[0], "run_2": per_op[1],
            "spawn_1": per_op[2], "spawn_2": per_op[3],
            "cpu_1": per_op[4], "cpu_2": per_op[5],
        },
        "project_scaling": project,
        "raw_scaling": raw,
        "cpu_scaling": cpu,
        "late_starts": LATE_STARTS.load(SeqCst),
    });
    vec![
        Row {
            id: "B6".to_owned(),
            what: "scaling: 2 run(noop) loops ÷ 1 loop, in tasks".to_owned(),
            project: figures(0, 1),
            raw: format!("scales {}", Unit::Factor.format(median(&raw))),
            headline: Some(Spread::of(&project)),
            unit: Unit::Factor,
            target: Some(Target::AtLeast(1.5)),
            details: details.clone(),
        },
        Row {
            id: "B6 raw".to_owned(),
            what: "scaling: 2 spawn+join loops ÷ 1 loop (reference)".to_owned(),
            project: String::new(),
            raw: figures(2, 3),
            headline: Some(Spread::of(&raw)),
            unit: Unit::Factor,
            target: None,
            details: details.clone(),
        },
        Row {
            id: "B6 cpu".to_owned(),
            what: "scaling: 2 pure-CPU loops ÷ 1 loop (the machine's ceiling)".to_owned(),
            project: String::new(),
            raw: figures(4, 5),
            headline: Some(Spread::of(&cpu)),
            unit: Unit::Factor,
            target: None,
            details,
        },
    ]
}

/// How long a loop waits at the start line for the others.
const BARRIER_PATIENCE: Duration = Duration::from_secs(1);

/// Times the loops had to start without all the others (never expected).
static LATE_STARTS: AtomicUsize = AtomicUsize::new(0);

/// Spawns each loop from outside the runtime, so they land in the shared
/// queue, and times them from a common start line to the last finish.
///
/// The start line is a spinning barrier: a loop that arrives blocks its
/// worker thread until the others have arrived, which forces each loop onto
/// a worker of its own. Without it, a short loop often finishes on the
/// first worker before the second has even woken up, and the "two loops"
/// quietly run one after the other.
fn loops<F, const N: usize>(rt: &Runtime, loops: [F; N]) -> Duration
where
    F: Future<Output = ()> + Send + 'static,
{
    let arrived = Arc::new(AtomicUsize::new(0));
    rt.block_on(async move {
        let tasks = loops.map(|body| {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                arrived.fetch_add(1, SeqCst);
                let give_up = Instant::now() + BARRIER_PATIENCE;
                while arrived.load(SeqCst) < N {
                    if Instant::now() > give_up {
                        LATE_STARTS.fetch_add(1, SeqCst);
                        break;
                    }
                    std::hint::spin_loop();
                }
                let start = Instant::now();
                body.await;
                (start, Instant::now())
            })
        });
        let mut span: Option<(Instant, Instant)> = None;
        for task in tasks {
            let (start, end) = task.await.expect("loop task");
            span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
        }
        let (start, end) = span.expect("at least one loop");
        end - start
    })
}
