//! B7: startup cost of `#[worker]` declarations.
//!
//! `build.rs` generates 1,000 `#[worker("gen-NNNN")]` fns, included into
//! this binary by [`generated`]; `WorkerManager::register_declared()`
//! gathers them from `inventory` into a fresh manager. Inventory can't be
//! subset, so linearity is checked against `register` of 250, 500, 1,000
//! and 2,000 closures into fresh managers: the cost per item should not
//! grow with the count. "Linear" is read as: the per-item cost at 2,000 is
//! at most 1.5× the per-item cost at 250.

use std::time::{Duration, Instant};

use serde_json::json;
use worker_core::prelude::*;

use super::Env;
use crate::harness::{Spread, median};
use crate::report::{Row, Target, Unit, seconds};

/// The generated workers; see `build.rs`.
#[allow(dead_code)]
mod generated {
    use worker_core::prelude::*;
    use worker_core::worker;

    include!(concat!(env!("OUT_DIR"), "/generated_workers.rs"));
}

/// How many `#[worker]` fns `build.rs` generates.
pub const DECLARED: usize = 1_000;

pub fn b7(env: &Env) -> Vec<Row> {
    let repeats = if env.quick { 10 } else { 200 };

    // Every gather into a fresh manager, timed alone (creating and dropping
    // the manager is not part of it).
    let mut declared = Vec::with_capacity(repeats);
    let mut gathered = 0;
    for _ in 0..repeats {
        let manager = WorkerManager::new();
        let start = Instant::now();
        gathered = manager.register_declared().expect("register_declared");
        declared.push(start.elapsed().as_secs_f64());
        drop(manager);
    }
    assert_eq!(gathered, DECLARED, "build.rs generates {DECLARED} workers");
    let total = Spread::of(&declared);

    // Sizes interleaved (rotating which goes first), like the timed legs,
    // so that drift during the case affects every size alike.
    let sizes = [250usize, 500, 1_000, 2_000];
    let mut times = vec![Vec::new(); sizes.len()];
    for repeat in 0..repeats.min(50) {
        for k in 0..sizes.len() {
            let i = (repeat + k) % sizes.len();
            let took = register_closures(env, sizes[i]).as_secs_f64();
            times[i].push(took / sizes[i] as f64);
        }
    }
    let per_item: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let growth = per_item[per_item.len() - 1] / per_item[0];

    let sizes_text = sizes
        .iter()
        .zip(&per_item)
        .map(|(size, cost)| format!("{size}: {}", seconds(*cost)))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        Row {
            id: "B7".to_owned(),
            what: format!("register_declared() of {gathered} #[worker] fns, fresh manager"),
            project: format!(
                "{} total, {}/item",
                seconds(total.median),
                seconds(total.median / gathered as f64)
            ),
            raw: String::new(),
            headline: Some(total),
            unit: Unit::Seconds,
            target: Some(Target::Below(1e-3)),
            details: json!({ "repeats": repeats, "declared": gathered, "seconds": declared }),
        },
        Row {
            id: "B7 lin".to_owned(),
            what: "per-item cost of register() ×250..2000; ratio = 2000 ÷ 250".to_owned(),
            project: format!("{sizes_text} /item"),
            raw: String::new(),
            headline: Some(Spread::single(growth)),
            unit: Unit::Factor,
            target: Some(Target::AtMost(1.5)),
            details: json!({ "sizes": sizes, "seconds_per_item": per_item }),
        },
    ]
}

/// Registers `count` no-op closures into a fresh manager; names are made
/// before the clock starts.
fn register_closures(env: &Env, count: usize) -> Duration {
    let names: Vec<String> = (0..count).map(|i| format!("synthetic-{i:04}")).collect();
    let manager = WorkerManager::new();
    env.rt.block_on(async {
        let start = Instant::now();
        for name in names {
            manager
                .register(name, |_ctx| async { Ok(()) })
                .await
                .expect("register");
        }
        start.elapsed()
    })
}
