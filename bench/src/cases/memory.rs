//! B5: resident memory per in-flight run.
//!
//! Each leg runs in a fresh child process (this binary re-executed with the
//! hidden `--child b5-project|b5-raw` flag): within one process the second
//! leg would reuse pages the first one freed and look almost free. The
//! child takes a baseline RSS, starts N runs that sleep for an hour
//! (keeping their handles, as a caller would), waits until every one has
//! been polled once (so each has its timer registered and its future in
//! its sleeping state), reads RSS again and prints the difference per run.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::json;
use worker_core::prelude::*;

use super::Env;
use crate::harness::{Spread, median, per_round};
use crate::report::{Row, Target, Unit, bytes, count};

const SLEEP: Duration = Duration::from_secs(3600);

/// The child's answer line: `bytes_per_run=<float>`.
const ANSWER: &str = "bytes_per_run=";

pub fn b5(env: &Env) -> Vec<Row> {
    let runs = env.size(100_000, 10_000);
    let rounds = if env.quick { 2 } else { 7 };
    // Three legs per round, the order rotating: the seed's `ctx.sleep`,
    // `tokio::time::sleep` inside a worker, and raw tokio.
    let kinds = ["b5-project-ctx", "b5-project", "b5-raw"];
    let mut bytes_per = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..kinds.len() {
            let leg = (round + k) % kinds.len();
            bytes_per[leg].push(spawn_child(kinds[leg], runs));
        }
    }
    let [ctx_sleep, tokio_sleep, raw] = bytes_per;
    let row = |id: &str, how: &str, project: &[f64], target: Option<Target>| {
        let ratios = per_round(project, &raw, |p, r| p / r);
        let (p, r) = (median(project), median(&raw));
        let range = Spread::of(&ratios);
        Row {
            id: id.to_owned(),
            what: format!(
                "RSS per in-flight run, {} asleep in {how} (child processes)",
                count(runs)
            ),
            project: format!("{}/run", bytes(p)),
            raw: format!("{}/task", bytes(r)),
            // Ratio of the medians, with the per-round ratios' range.
            headline: Some(Spread {
                median: p / r,
                ..range
            }),
            unit: Unit::Factor,
            target,
            details: json!({
                "runs": runs,
                "project_bytes_per_run": project,
                "raw_bytes_per_task": raw,
                "ratios": ratios,
            }),
        }
    };
    vec![
        row("B5", "ctx.sleep", &ctx_sleep, Some(Target::AtMost(1.6))),
        row("B5t", "tokio::time::sleep", &tokio_sleep, None),
    ]
}

fn spawn_child(kind: &str, runs: u64) -> f64 {
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .args(["--child", kind, "--runs", &runs.to_string()])
        .output()
        .expect("start the B5 child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "B5 child {kind} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(ANSWER))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("B5 child {kind} gave no answer: {stdout}"))
}

/// The child side: measures one leg and exits without tearing down (100k
/// sleeping tasks would otherwise be cancelled one by one).
pub fn child(kind: &str, runs: u64) -> ! {
    let rt = crate::runtime();
    let polled = Arc::new(AtomicU64::new(0));
    let manager = WorkerManager::new();
    rt.block_on(manager.register("sleep", {
        let polled = polled.clone();
        let seed_sleep = kind == "b5-project-ctx";
        move |ctx| {
            let polled = polled.clone();
            async move {
                polled.fetch_add(1, Relaxed);
                if seed_sleep {
                    ctx.sleep(SLEEP).await;
                } else {
                    tokio::time::sleep(SLEEP).await;
                }
                Ok(())
            }
        }
    }))
    .expect("register sleep");
    // Wake the timer driver and the workers before the baseline, in both legs.
    rt.block_on(async {
        for _ in 0..4 {
            tokio::spawn(tokio::time::sleep(Duration::from_millis(1)))
                .await
                .expect("warm-up task");
        }
    });

    let per_run = match kind {
        "b5-project" | "b5-project-ctx" => {
            let mut handles: Vec<WorkerHandle> = Vec::with_capacity(runs as usize);
            let before = rss_bytes();
            rt.block_on(async {
                for _ in 0..runs {
                    handles.push(manager.call("sleep", None, None).await.expect("call"));
                }
                wait_until(&polled, runs).await;
            });
            let after = rss_bytes();
            std::hint::black_box(&handles);
            (after - before) / runs as f64
        }
        "b5-raw" => {
            let mut handles = Vec::with_capacity(runs as usize);
            let before = rss_bytes();
            rt.block_on(async {
                for _ in 0..runs {
                    let polled = polled.clone();
                    handles.push(tokio::spawn(async move {
                        polled.fetch_add(1, Relaxed);
                        tokio::time::sleep(SLEEP).await;
                    }));
                }
                wait_until(&polled, runs).await;
            });
            let after = rss_bytes();
            std::hint::black_box(&handles);
            (after - before) / runs as f64
        }
        other => panic!("unknown child kind {other:?}"),
    };
    println!("{ANSWER}{per_run}");
    std::process::exit(0)
}

async fn wait_until(polled: &AtomicU64, runs: u64) {
    while polled.load(Relaxed) < runs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Let the last ones reach their `sleep` (past the counter).
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Resident set size: `/proc/self/statm`'s second field × the page size.
fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm resident field");
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always valid.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as f64
}
