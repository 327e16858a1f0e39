//! A workflow run by this process: its record (what its handles read), its
//! steps' runs, and what happens as each step ends: the steps waiting for
//! it are released once all their parents have succeeded, or doomed when
//! it failed. Each step reports to it from its own task (it is the steps'
//! [`StepSink`]), so a workflow has no task of its own. The registry finds
//! workflows by id for `attach_workflow` and keeps the last ended ones.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::Value;

use crate::error::Result;
use crate::job::Stored;
use crate::run::Run;
use crate::run_state::Outcome;
use crate::signal::Signal;
use crate::step::StepSink;
use crate::sync::lock;
use crate::workflow::{Plan, WorkflowId};
use crate::workflow_log::{FlowEnd, FlowLog};

/// How many ended workflows a manager keeps for `attach_workflow`, with
/// every event: the newest, beyond the ones still running.
pub(crate) const KEPT_ENDED: usize = 100;

/// One workflow of this process.
#[derive(Debug)]
pub(crate) struct LocalFlow {
    pub(crate) log: FlowLog,
    plan: Arc<Plan>,
    /// Its steps' runs (each carries its `StepOf`), in the plan's order:
    /// set once they are all made, let go of when the workflow ends.
    steps: OnceLock<Mutex<Vec<Arc<Run>>>>,
    progress: Mutex<Progress>,
    cancelled: AtomicBool,
    registry: Weak<Mutex<FlowRegistry>>,
}

/// How far the workflow has come.
#[derive(Debug)]
struct Progress {
    steps: Vec<StepProgress>,
    /// The first step that failed for good, and its error.
    failed: Option<(usize, Stored)>,
    ended: usize,
}

#[derive(Debug)]
struct StepProgress {
    /// How many of its parents haven't succeeded yet.
    waiting_for: usize,
    /// Its output once it succeeded.
    output: Option<Value>,
    /// If it won't run: the step whose failure doomed it.
    doomed: Option<usize>,
}

impl LocalFlow {
    pub(crate) fn new(plan: Arc<Plan>, log: FlowLog, registry: Weak<Mutex<FlowRegistry>>) -> Self {
        LocalFlow {
            log,
            progress: Mutex::new(Progress {
                steps: plan
                    .steps
                    .iter()
                    .map(|step| StepProgress {
                        waiting_for: step.parents.len(),
                        output: None,
                        doomed: None,
                    })
                    .collect(),
                failed: None,
                ended: 0,
            }),
            plan,
            steps: OnceLock::new(),
            cancelled: AtomicBool::new(false),
            registry,
        }
    }

    /// Its steps are made (each a run held until released): the ones that
    /// wait for nothing start.
    pub(crate) fn begin(&self, steps: Vec<Arc<Run>>) {
        let _ = self.steps.set(Mutex::new(steps));
        let progress = lock(&self.progress);
        for (step, planned) in self.plan.steps.iter().enumerate() {
            if planned.parents.is_empty() {
                self.release(&progress, step);
            }
        }
    }

    fn run(&self, step: usize) -> Option<Arc<Run>> {
        lock(self.steps.get()?).get(step).cloned()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Every step that hasn't ended is asked to stop: one waiting for its
    /// parents, its time or a slot ends at once; one executing gets the
    /// grace period. Waits until the workflow has ended.
    pub(crate) async fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::AcqRel) {
            if let Some(steps) = self.steps.get() {
                for run in lock(steps).iter() {
                    run.signals.fire(Signal::Cancel);
                }
            }
        }
        let _ = self.log.outcome().await;
    }

    /// `step`'s parents have all succeeded: it gets their outputs and may
    /// start (after its delay, if its call has one).
    fn release(&self, progress: &Progress, step: usize) {
        let Some(run) = self.run(step) else {
            return;
        };
        let Some(job) = run.job() else {
            return;
        };
        let planned = &self.plan.steps[step];
        if let Some(step_of) = &job.step {
            let outputs = planned
                .parents
                .iter()
                .map(|&parent| progress.steps[parent].output.clone().unwrap_or(Value::Null))
                .collect();
            step_of.set_outputs(outputs);
        }
        self.log.released(step);
        job.release(planned.call.start);
    }

    /// Every step after `failed` (they are all still held: none can start
    /// before it) is cancelled: it ends at once, as cancelled, counted
    /// once, and never starts.
    fn doom_descendants(&self, progress: &mut Progress, failed: usize) {
        let children = self.plan.children();
        let mut next: Vec<usize> = children[failed].clone();
        while let Some(step) = next.pop() {
            if progress.steps[step].doomed.is_some() {
                continue;
            }
            progress.steps[step].doomed = Some(failed);
            if let Some(run) = self.run(step) {
                run.signals.fire(Signal::Cancel);
            }
            next.extend(&children[step]);
        }
    }
}

impl StepSink for LocalFlow {
    fn started(&self, step: usize) {
        self.log.started(step);
    }

    fn message(&self, step: usize, message: &Value) {
        self.log.message(step, message.clone());
    }

    fn ended(&self, step: usize, outcome: &Result<Value>) {
        let mut progress = lock(&self.progress);
        match outcome {
            Ok(output) => {
                self.log
                    .ended(step, Outcome::Succeeded, Some(output.clone()), None);
                progress.steps[step].output = Some(output.clone());
                for &child in &self.plan.children()[step] {
                    let waiting = &mut progress.steps[child];
                    waiting.waiting_for -= 1;
                    if waiting.waiting_for == 0 && waiting.doomed.is_none() && !self.is_cancelled()
                    {
                        self.release(&progress, child);
                    }
                }
            }
            Err(error) => {
                let ending = Outcome::of(error);
                let doomed = progress.steps[step].doomed;
                let text = match doomed {
                    Some(by) => format!("not run: step '{}' failed", self.plan.steps[by].name),
                    None if self.is_cancelled() && ending == Outcome::Cancelled => {
                        format!("cancelled with workflow '{}'", self.plan.name)
                    }
                    None => error.to_string(),
                };
                self.log.ended(step, ending, None, Some(text));
                if doomed.is_none() && !self.is_cancelled() {
                    if progress.failed.is_none() {
                        progress.failed = Some((step, Stored::of(outcome)));
                    }
                    self.doom_descendants(&mut progress, step);
                }
            }
        }
        progress.ended += 1;
        if progress.ended < self.plan.steps.len() {
            return;
        }
        let end = match progress.failed.take() {
            _ if self.is_cancelled() => FlowEnd::Cancelled,
            Some((step, error)) => FlowEnd::Failed(step, error),
            None => FlowEnd::Succeeded,
        };
        drop(progress);
        // The steps' runs point back here (weakly); nothing else needs them.
        if let Some(steps) = self.steps.get() {
            lock(steps).clear();
        }
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry).ended(self.plan.id);
        }
        self.log.finish(end);
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

    /// Every workflow kept: running ones (newest first), then ended ones,
    /// newest first.
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
