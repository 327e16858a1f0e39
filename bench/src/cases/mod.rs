//! The benchmark cases, one module per concern, and what they share.

use std::time::Duration;

use serde_json::json;
use tokio::runtime::Runtime;
use worker_core::prelude::*;

use crate::harness::{Leg, Spread, alternate, median, per_round};
use crate::report::{Row, Target, Unit, seconds};

pub mod burst;
pub mod compile;
pub mod memory;
pub mod policies;
pub mod scaling;
pub mod sequential;
pub mod startup;
pub mod streaming;
pub mod workflows;

/// What every case gets: the shared runtime and the run's size.
pub struct Env<'a> {
    /// The 2-worker multi-thread runtime all timed cases run on.
    pub rt: &'a Runtime,
    /// `--quick`: tiny sizes and few rounds, to prove the harness works.
    pub quick: bool,
    /// `--budget-ms`: overrides the time per budgeted measurement (useful
    /// under a profiler, where everything runs 50× slower).
    pub budget: Option<Duration>,
}

impl Env<'_> {
    /// Rounds for a case that would use `full` rounds in a full run.
    pub fn rounds(&self, full: usize) -> usize {
        if self.quick { full.min(3) } else { full }
    }

    /// `full` operations, or `quick` in a smoke run.
    pub fn size(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }

    /// How long one measurement of a budgeted leg should take: long enough
    /// to dwarf timer resolution and wake-up latency, short enough that
    /// many rounds fit in a few seconds.
    pub fn budget(&self) -> Duration {
        if let Some(budget) = self.budget {
            budget
        } else if self.quick {
            Duration::from_millis(2)
        } else {
            Duration::from_millis(15)
        }
    }
}

/// A selectable case: `--case ID` runs it; it may produce several rows.
pub struct Case {
    pub id: &'static str,
    /// Skipped by `--quick` (too slow for a smoke run).
    pub full_only: bool,
    pub run: fn(&Env) -> Vec<Row>,
}

/// Every case, in the order they run and print.
pub const CASES: &[Case] = &[
    Case::new("B1", sequential::b1),
    Case::new("B1t", sequential::b1t),
    Case::new("B2", sequential::b2),
    Case::new("B2t", sequential::b2t),
    Case::new("B3", burst::b3),
    Case::new("B3t", burst::b3t),
    Case::new("B3j", burst::b3j),
    Case::new("B4", streaming::b4),
    Case::new("B4s", streaming::b4s),
    Case::new("B5", memory::b5),
    Case::new("B6", scaling::b6),
    Case::new("B7", startup::b7),
    Case::new("B9", policies::b9),
    Case::new("B10", policies::b10),
    Case::new("B11", workflows::b11),
    Case {
        id: "B8",
        full_only: true,
        run: compile::b8,
    },
];

impl Case {
    const fn new(id: &'static str, run: fn(&Env) -> Vec<Row>) -> Case {
        Case {
            id,
            full_only: false,
            run,
        }
    }
}

/// How the per-round ratio of the two legs is formed.
#[derive(Debug, Clone, Copy)]
pub enum Ratio {
    /// project time ÷ raw time: lower is better.
    Time,
    /// raw time ÷ project time, i.e. project throughput ÷ raw throughput:
    /// higher is better.
    Throughput,
}

/// The common shape of a case: a project leg and a raw leg, alternated
/// over `rounds` rounds; figures are medians per operation, the headline
/// is the median of the per-round ratios.
pub fn compare(
    id: &str,
    what: &str,
    rounds: usize,
    mut legs: [Leg<'_>; 2],
    ratio: Ratio,
    target: Target,
    per: &str,
) -> Row {
    let per_op = alternate(rounds, &mut legs);
    let (project, raw) = (&per_op[0], &per_op[1]);
    let ratios = match ratio {
        Ratio::Time => per_round(project, raw, |p, r| p / r),
        Ratio::Throughput => per_round(project, raw, |p, r| r / p),
    };
    Row {
        id: id.to_owned(),
        what: what.to_owned(),
        project: format!("{}/{per}", seconds(median(project))),
        raw: format!("{}/{per}", seconds(median(raw))),
        headline: Some(Spread::of(&ratios)),
        unit: Unit::Factor,
        target: Some(target),
        details: json!({
            "rounds": rounds,
            "legs": [legs[0].label, legs[1].label],
            "ops_per_round": [legs[0].ops(), legs[1].ops()],
            "project_s_per_op": project,
            "raw_s_per_op": raw,
            "ratios": ratios,
        }),
    }
}

/// A fresh manager with a `"noop"` worker that returns at once: what every
/// per-call-overhead case runs.
pub fn noop_manager(rt: &Runtime) -> WorkerManager {
    let manager = WorkerManager::new();
    rt.block_on(manager.register("noop", |_ctx| async { Ok(()) }))
        .expect("register noop");
    manager
}
