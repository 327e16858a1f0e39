//! A handle's view of a stored workflow: a task of the handle's process
//! follows the workflow in the database (its steps released, started and
//! ended, their messages in order, its end) and writes what it reads to a
//! `WorkflowLog`, which the handle reads like a workflow of this process.
//! The workflow itself needs no process: the database's trigger moves it
//! on as its steps end, on whatever node.

use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use uuid::Uuid;
use worker_core::backend::{
    BoxFuture, Plan, PlannedStep, RemoteWorkflow, Resolved, WorkflowEnd, WorkflowId, WorkflowLog,
};
use worker_core::{Duplicate, Error, Outcome, Result, RunId, WorkflowEvent};

use crate::db::Db;
use crate::handle;
use crate::workflows;

/// How soon the follower reads the workflow's steps again after a round
/// that found something new; each round that finds nothing doubles it, up
/// to [`FOLLOW_AT_MOST`]. Its steps' messages and endings wake it at once
/// (the bus), so the wait mostly bounds how soon a start is seen.
const FOLLOW_EVERY: Duration = Duration::from_millis(20);
const FOLLOW_AT_MOST: Duration = Duration::from_millis(500);

/// A handle on one stored workflow.
pub(crate) struct PgWorkflow {
    log: Arc<WorkflowLog>,
    plan: Arc<Plan>,
    run_ids: Vec<Uuid>,
    db: Arc<Db>,
    cursor: usize,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for PgWorkflow {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl PgWorkflow {
    /// Follows `plan`, whose steps are the runs `run_ids`, from its first
    /// event.
    pub(crate) fn follow(db: Arc<Db>, plan: Arc<Plan>, run_ids: Vec<Uuid>) -> Self {
        let log = Arc::new(WorkflowLog::new(
            plan.clone(),
            run_ids.iter().copied().map(RunId::from).collect(),
        ));
        let follower = tokio::spawn(follow(
            db.clone(),
            plan.clone(),
            log.clone(),
            run_ids.clone(),
        ));
        PgWorkflow {
            log,
            plan,
            run_ids,
            db,
            cursor: 0,
            follower,
        }
    }

    /// A handle on the stored workflow `id`.
    pub(crate) async fn attach(db: Arc<Db>, id: WorkflowId) -> Result<Self> {
        type Row = (String, String, String, Uuid, Vec<String>);
        let rows: Vec<Row> = sqlx::query_as(db.sql.workflow_plan.clone())
            .persistent(false)
            .bind(id.as_uuid())
            .fetch_all(&mut *db.reach.connection("look up a workflow").await?)
            .await
            .map_err(|err| db.reach.error(&format!("look up workflow {id}"), err))?;
        let Some((name, ..)) = rows.first() else {
            return Err(Error::validation(format!(
                "workflow {id} is unknown: it was never stored, or it ended more than the retention period ({}) ago",
                worker_core::format_duration(db.config.retention)
            )));
        };
        let name = name.clone();
        let names: Vec<&str> = rows.iter().map(|row| row.1.as_str()).collect();
        let steps = rows
            .iter()
            .map(|(_, step, worker, _, parents)| PlannedStep {
                name: step.clone(),
                worker: worker.clone(),
                call: stored_call(),
                parents: parents
                    .iter()
                    .filter_map(|parent| names.iter().position(|name| name == parent))
                    .collect(),
            })
            .collect();
        let run_ids = rows.iter().map(|row| row.3).collect();
        let plan = Arc::new(Plan::stored(id, name, steps));
        Ok(PgWorkflow::follow(db, plan, run_ids))
    }
}

/// A step's call as a follower needs it: nothing (its payload and options
/// are its run's).
fn stored_call() -> Resolved {
    Resolved {
        payload: None,
        timeout: None,
        start: None,
        key: None,
        on_duplicate: Duplicate::Join,
        priority: 0,
        limit_key: None,
    }
}

impl RemoteWorkflow for PgWorkflow {
    fn id(&self) -> &str {
        self.log.id_text()
    }

    fn name(&self) -> &str {
        self.log.name()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<WorkflowEvent>> {
        self.log.poll_event(&mut self.cursor, cx)
    }

    fn try_event(&mut self) -> Option<WorkflowEvent> {
        self.log.try_event(&mut self.cursor)
    }

    fn is_finished(&self) -> bool {
        self.log.is_finished()
    }

    fn cancel(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            workflows::mark_cancelled(&self.db, self.plan.id).await?;
            for &run_id in &self.run_ids {
                match handle::cancel(&self.db, RunId::from(run_id)).await {
                    Err(error) if error.is_run_not_found() => {}
                    other => other?,
                }
            }
            let _ = self.log.outcome().await;
            Ok(())
        })
    }

    fn outcome(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.log.outcome())
    }

    fn output(&self, step: &str) -> BoxFuture<'_, Result<Value>> {
        let step = step.to_owned();
        Box::pin(async move { self.log.output(&step).await })
    }

    fn worker_of(&self, step: &str) -> Option<&str> {
        self.log.worker_of(step)
    }
}

/// What the follower has written of one step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Followed {
    released: bool,
    started: bool,
    ended: bool,
    next_seq: i32,
}

/// Reads the workflow until it has ended, writing what it finds to `log`.
/// A database it can't reach is tried again on the next round.
async fn follow(db: Arc<Db>, plan: Arc<Plan>, log: Arc<WorkflowLog>, run_ids: Vec<Uuid>) {
    let mut followed = vec![Followed::default(); plan.steps.len()];
    let mut watches = Watches::new(db.clone(), &run_ids);
    let mut wait = FOLLOW_EVERY;
    loop {
        let before = followed.clone();
        match follow_once(&db, &plan, &log, &run_ids, &mut followed).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => {
                log::debug!(target: "worker_postgres", "following workflow {}: {error}", plan.id)
            }
        }
        wait = if followed == before {
            (wait * 2).min(FOLLOW_AT_MOST)
        } else {
            FOLLOW_EVERY
        };
        watches.changed_or(wait).await;
    }
}

/// The bus's watches on a workflow's steps' runs, let go of when the
/// follower ends, however it ends (a dropped handle aborts it).
struct Watches {
    db: Arc<Db>,
    watches: Vec<(Uuid, tokio::sync::watch::Receiver<u64>)>,
}

impl Watches {
    fn new(db: Arc<Db>, run_ids: &[Uuid]) -> Self {
        let watches = run_ids
            .iter()
            .map(|&run| (run, db.bus.watch(run)))
            .collect();
        Watches { db, watches }
    }

    /// Until a step's run has new messages or ended, or `wait` passed.
    async fn changed_or(&mut self, wait: Duration) {
        if self.watches.is_empty() {
            tokio::time::sleep(wait).await;
            return;
        }
        let changes = self
            .watches
            .iter_mut()
            .map(|(_, watch)| Box::pin(watch.changed()));
        tokio::select! {
            _ = futures::future::select_all(changes) => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for (run, watch) in self.watches.drain(..) {
            self.db.bus.unwatch(run, watch);
        }
    }
}

/// One round; `true` once the workflow's end is written.
async fn follow_once(
    db: &Db,
    plan: &Plan,
    log: &WorkflowLog,
    run_ids: &[Uuid],
    followed: &mut [Followed],
) -> Result<bool> {
    type StepRow = (
        i32,
        String,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Value>,
    );
    type FlowRow = (String, Option<String>, Option<String>, Option<String>);
    let mut conn = db.reach.connection("follow a workflow").await?;
    // One snapshot for the steps and the workflow: an end read here has
    // every step's ending with it.
    let mut tx = conn
        .begin()
        .await
        .map_err(|err| db.reach.error("follow a workflow", err))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|err| db.reach.error("follow a workflow", err))?;
    let steps: Vec<StepRow> = sqlx::query_as(db.sql.workflow_steps_now.clone())
        .persistent(false)
        .bind(plan.id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(|err| db.reach.error("follow a workflow", err))?;
    let flow: Option<FlowRow> = sqlx::query_as(db.sql.workflow_now.clone())
        .persistent(false)
        .bind(plan.id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|err| db.reach.error("follow a workflow", err))?;
    for (position, state, started, ended, error_kind, error, output) in steps {
        let at = usize::try_from(position).unwrap_or(usize::MAX);
        let Some(step) = followed.get_mut(at) else {
            continue;
        };
        if step.ended {
            continue;
        }
        if !step.released && state != "waiting" {
            step.released = true;
            log.released(at);
        }
        if started && !step.started {
            step.started = true;
            log.started(at);
        }
        if step.started {
            let run_id = run_ids[at];
            loop {
                let messages: Vec<(i32, Value)> = sqlx::query_as(db.sql.messages_after.clone())
                    .bind(run_id)
                    .bind(step.next_seq)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|err| db.reach.error("read a step's messages", err))?;
                let read = messages.len();
                for (seq, body) in messages {
                    step.next_seq = seq + 1;
                    log.message(at, body);
                }
                if read < 1000 {
                    break;
                }
            }
        }
        // The step's own record once its run is past the retention.
        let recorded = (state != "waiting" && state != "queued").then_some(state);
        let Some(ended) = ended.or(recorded) else {
            continue;
        };
        step.ended = true;
        let outcome = Outcome::from_str(&ended).unwrap_or(Outcome::Failed);
        if outcome == Outcome::Succeeded {
            log.ended(at, outcome, Some(output.unwrap_or(Value::Null)), None);
            continue;
        }
        let planned = &plan.steps[at];
        let text = match (error_kind.as_deref(), error) {
            (Some("cancelled"), Some(error)) => error,
            (Some("cancelled"), None) => format!("cancelled with workflow '{}'", plan.name),
            (kind, detail) => Error::from_kind(
                kind.unwrap_or("error"),
                detail.as_deref().unwrap_or_default(),
                &planned.worker,
                &run_ids[at].to_string(),
            )
            .to_string(),
        };
        log.ended(at, outcome, None, Some(text));
    }
    let Some((state, failed_step, error_kind, error)) = flow else {
        return Ok(false);
    };
    if state == "running" || followed.iter().any(|step| !step.ended) {
        return Ok(false);
    }
    log.finish(match state.as_str() {
        "succeeded" => WorkflowEnd::Succeeded,
        "cancelled" => WorkflowEnd::Cancelled,
        _ => WorkflowEnd::Failed {
            step: failed_step
                .and_then(|failed| plan.step_index(&failed))
                .unwrap_or_default(),
            error_kind: error_kind.unwrap_or_else(|| "error".to_owned()),
            error: error.unwrap_or_default(),
        },
    });
    Ok(true)
}
