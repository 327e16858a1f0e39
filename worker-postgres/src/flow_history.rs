//! Stored workflows as dashboards read them (`History::workflows` and
//! `History::workflow`): each workflow's state and each step's, over every
//! node.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use uuid::Uuid;
use worker_core::backend::WorkflowId;
use worker_core::{
    Outcome, Result, RunId, RunState, StepState, StepStatus, WorkflowState, WorkflowStatus,
};

use crate::db::Db;

/// A workflow's row: id, name, state, created and ended (epoch ms),
/// failed step, error.
type FlowRow = (
    Uuid,
    String,
    String,
    f64,
    Option<f64>,
    Option<String>,
    Option<String>,
);
/// A step's row: workflow, step, worker, run, parents, state, whether its
/// run is executing now.
type StepRow = (Uuid, String, String, Uuid, Vec<String>, String, bool);

impl Db {
    /// Running workflows first (newest first), then the latest ended, at
    /// most `limit`; or the one `only`.
    pub(crate) async fn workflow_statuses(
        &self,
        limit: usize,
        only: Option<WorkflowId>,
    ) -> Result<Vec<WorkflowStatus>> {
        const WHAT: &str = "read the workflows";
        let mut conn = self.reach.connection(WHAT).await?;
        let flows: Vec<FlowRow> = sqlx::query_as(self.sql.workflows_recent.clone())
            .persistent(false)
            .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .bind(only.map(WorkflowId::as_uuid))
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| self.reach.error(WHAT, err))?;
        let ids: Vec<Uuid> = flows.iter().map(|flow| flow.0).collect();
        let steps: Vec<StepRow> = sqlx::query_as(self.sql.workflow_steps_of.clone())
            .persistent(false)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| self.reach.error(WHAT, err))?;
        let mut by_flow: HashMap<Uuid, Vec<StepStatus>> = HashMap::new();
        for (flow, name, worker, run_id, parents, state, executing) in steps {
            by_flow.entry(flow).or_default().push(StepStatus {
                name,
                worker,
                run_id: RunId::from(run_id),
                parents,
                state: step_state(&state, executing),
            });
        }
        Ok(flows
            .into_iter()
            .map(
                |(id, name, state, created_ms, ended_ms, failed_step, error)| WorkflowStatus {
                    id: WorkflowId::from(id),
                    name,
                    state: match state.as_str() {
                        "succeeded" => WorkflowState::Succeeded,
                        "failed" => WorkflowState::Failed,
                        "cancelled" => WorkflowState::Cancelled,
                        _ => WorkflowState::Running,
                    },
                    created_at: time_of(created_ms),
                    ended_at: ended_ms.map(time_of),
                    failed_step,
                    error,
                    steps: by_flow.remove(&id).unwrap_or_default(),
                },
            )
            .collect())
    }
}

/// A step's state as stored: `waiting`, `queued` (released; `running` if
/// its run executes now), or how it ended.
fn step_state(stored: &str, executing: bool) -> StepState {
    match stored {
        "waiting" => StepState::Waiting,
        "queued" if executing => StepState::Run(RunState::Running),
        "queued" => StepState::Run(RunState::Queued),
        ended => StepState::Run(RunState::Ended(
            Outcome::from_str(ended).unwrap_or(Outcome::Failed),
        )),
    }
}

fn time_of(unix_ms: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix_ms.max(0.0) / 1e3)
}
