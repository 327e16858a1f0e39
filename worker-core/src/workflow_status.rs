//! Where a workflow stands, as dashboards show it: [`WorkflowStatus`] and
//! its steps' [`StepStatus`]. The same shape from this process's
//! workflows and from a backend's.

use std::time::SystemTime;

use crate::run_id::RunId;
use crate::run_state::{Outcome, RunState};
use crate::workflow::WorkflowId;

/// A workflow: its steps' states, and its own.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStatus {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    pub name: String,
    /// Running, or how it ended.
    pub state: WorkflowState,
    /// When it was started.
    pub created_at: SystemTime,
    /// When its last step ended.
    pub ended_at: Option<SystemTime>,
    /// The step it failed at, if it failed.
    pub failed_step: Option<String>,
    /// Its error's text, if it failed or was cancelled.
    pub error: Option<String>,
    /// Its steps, in the order they were declared.
    pub steps: Vec<StepStatus>,
}

impl WorkflowStatus {
    /// How many of its steps have ended, however they ended.
    pub fn steps_done(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| matches!(step.state, StepState::Run(RunState::Ended(_))))
            .count()
    }
}

/// One step of a [`WorkflowStatus`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepStatus {
    /// Its name.
    pub name: String,
    /// The worker it runs.
    pub worker: String,
    /// Its run: the worker's run page.
    pub run_id: RunId,
    /// The steps it waits for.
    pub parents: Vec<String>,
    /// Where it stands.
    pub state: StepState,
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Some step it waits for hasn't succeeded yet.
    Waiting,
    /// Its parents are done: its run is queued, running or ended.
    Run(RunState),
}

impl StepState {
    /// `waiting`, or its run's state (`queued`, `running`, an outcome), as
    /// JSON and the durable backend spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::Run(state) => state.as_str(),
        }
    }
}

/// Where a workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowState {
    /// Some step hasn't ended.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed for good.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl WorkflowState {
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Succeeded => "succeeded",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
        }
    }

    /// The state a workflow is in once it ended with a step's `outcome`
    /// as its failure (`None`: every step succeeded).
    pub fn ended(failure: Option<Outcome>) -> Self {
        match failure {
            None => WorkflowState::Succeeded,
            Some(Outcome::Cancelled) => WorkflowState::Cancelled,
            Some(_) => WorkflowState::Failed,
        }
    }
}
