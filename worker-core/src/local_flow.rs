//! A workflow run by this process: its record (what its handles read), its
//! steps' runs (what a cancel reaches) and the registry that finds it by
//! id for `attach_workflow`, which keeps the last ended ones for a while.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::run::Run;
use crate::signal::Signal;
use crate::sync::lock;
use crate::workflow::WorkflowId;
use crate::workflow_log::FlowLog;

/// How many ended workflows a manager keeps for `attach_workflow`, with
/// every event: the newest, beyond the ones still running.
pub(crate) const KEPT_ENDED: usize = 100;

/// One workflow of this process.
#[derive(Debug)]
pub(crate) struct LocalFlow {
    pub(crate) log: FlowLog,
    /// Its steps' runs, in the plan's order; let go of when it ends.
    runs: Mutex<Vec<Arc<Run>>>,
    cancelled: AtomicBool,
}

impl LocalFlow {
    pub(crate) fn new(log: FlowLog, runs: Vec<Arc<Run>>) -> Self {
        LocalFlow {
            log,
            runs: Mutex::new(runs),
            cancelled: AtomicBool::new(false),
        }
    }

    /// The run of step `step`, until the workflow ends.
    pub(crate) fn run(&self, step: usize) -> Option<Arc<Run>> {
        lock(&self.runs).get(step).cloned()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Every step that hasn't ended is asked to stop: one waiting for its
    /// parents, its time or a slot ends at once; one executing gets the
    /// grace period. Waits until the workflow has ended.
    pub(crate) async fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::AcqRel) {
            for run in lock(&self.runs).iter() {
                run.signals.fire(Signal::Cancel);
            }
        }
        let _ = self.log.outcome().await;
    }

    /// It ended: its runs are let go of (the log keeps what handles read).
    pub(crate) fn ended(&self) {
        lock(&self.runs).clear();
    }
}

/// A manager's workflows: those running, and the last [`KEPT_ENDED`]
/// that ended.
#[derive(Debug, Default)]
pub(crate) struct FlowRegistry {
    live: HashMap<WorkflowId, Arc<LocalFlow>>,
    ended: VecDeque<Arc<LocalFlow>>,
}

impl FlowRegistry {
    pub(crate) fn insert(&mut self, flow: Arc<LocalFlow>) {
        self.live.insert(flow.log.id(), flow);
    }

    /// `id` ended: kept among the recent ones, the oldest of which goes.
    pub(crate) fn ended(&mut self, id: WorkflowId) {
        if let Some(flow) = self.live.remove(&id) {
            if self.ended.len() == KEPT_ENDED {
                self.ended.pop_front();
            }
            self.ended.push_back(flow);
        }
    }

    pub(crate) fn find(&self, id: WorkflowId) -> Option<Arc<LocalFlow>> {
        self.live
            .get(&id)
            .or_else(|| self.ended.iter().find(|flow| flow.log.id() == id))
            .cloned()
    }

    /// Every workflow kept: running ones, then ended ones, newest first.
    pub(crate) fn all(&self) -> Vec<Arc<LocalFlow>> {
        let mut live: Vec<&Arc<LocalFlow>> = self.live.values().collect();
        live.sort_by_key(|flow| std::cmp::Reverse(flow.log.created_at()));
        live.into_iter()
            .chain(self.ended.iter().rev())
            .cloned()
            .collect()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.live.len()
    }
}
