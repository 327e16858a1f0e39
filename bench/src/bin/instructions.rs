//! A loop to count instructions in, under callgrind, where this VM's timing
//! noise doesn't reach: `call` + `await_result` (B2t) or a burst of calls
//! awaited after (B3t), against the raw-tokio code they replace, each in a
//! task on a two-worker runtime as the timed cases run them.
//!
//! ```text
//! cargo build --release -p bench --bin instructions
//! valgrind --tool=callgrind target/release/instructions call 20000
//! valgrind --tool=callgrind target/release/instructions spawn 20000
//! ```
//!
//! Run each with two counts (say 0 and 20,000): the difference of the
//! totals over the difference of the counts is the cost of one op, with
//! the runtime's start-up taken out. Legs: `call` and `spawn` (B2t),
//! `burst` and `spawn-burst` (B3t).

use std::process::ExitCode;

use tokio::sync::oneshot;
use worker_core::WorkerManager;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(leg), Some(count)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: instructions <call|spawn|burst|spawn-burst> <count>");
        return ExitCode::FAILURE;
    };
    let count: usize = count;
    // `WORKERS=1` takes the second worker's stealing and parking out of the
    // count, which makes it repeat to within a few instructions.
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let manager = WorkerManager::new();
    rt.block_on(manager.register("noop", |_ctx| async { Ok(()) }))
        .expect("register noop");
    let leg = leg.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            match leg.as_str() {
                "call" => {
                    for _ in 0..count {
                        let handle = manager.call("noop", None, None).await.expect("call");
                        handle.await_result().await.expect("noop");
                    }
                }
                "spawn" => {
                    for _ in 0..count {
                        let (tx, rx) = oneshot::channel::<Result<(), ()>>();
                        tokio::spawn(async move {
                            let _ = tx.send(Ok(()));
                        });
                        rx.await.expect("sender").expect("result");
                    }
                }
                "burst" => {
                    let mut handles = Vec::with_capacity(count);
                    for _ in 0..count {
                        handles.push(manager.call("noop", None, None).await.expect("call"));
                    }
                    for handle in handles {
                        handle.await_result().await.expect("noop");
                    }
                }
                "spawn-burst" => {
                    let mut receivers = Vec::with_capacity(count);
                    for _ in 0..count {
                        let (tx, rx) = oneshot::channel::<Result<(), ()>>();
                        tokio::spawn(async move {
                            let _ = tx.send(Ok(()));
                        });
                        receivers.push(rx);
                    }
                    for rx in receivers {
                        rx.await.expect("sender").expect("result");
                    }
                }
                other => panic!("unknown leg {other}"),
            }
        })
        .await
        .expect("loop");
    });
    ExitCode::SUCCESS
}
