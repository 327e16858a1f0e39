//! Storing a workflow: its row, its steps' rows and every step's run, in
//! one transaction. A step that waits for nothing is due at its start
//! time; any other waits with `run_at = 'infinity'` until the trigger on
//! `runs` (migration 12) releases it, in the statement that records the
//! ending of its last parent.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use worker_core::backend::{Plan, WorkflowId};
use worker_core::{Error, Result};

use crate::bus::{self, Note};
use crate::db::Db;
use crate::jobs::{start_ms, timeout_ms};
use crate::sql::Sql;

/// Stores `plan` on `conn`, which should be in a transaction; gives each
/// step's run id, in the plan's order. Its runs are announced on commit.
pub(crate) async fn store(conn: &mut PgConnection, sql: &Sql, plan: &Plan) -> Result<Vec<Uuid>> {
    let failed =
        |err: sqlx::Error| Error::msg(format!("can't store workflow '{}': {err}", plan.name));
    let count = plan.steps.len();
    let run_ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let mut workers = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut timeouts = Vec::with_capacity(count);
    let mut delays = Vec::with_capacity(count);
    let mut ats = Vec::with_capacity(count);
    let mut priorities = Vec::with_capacity(count);
    let mut limit_keys = Vec::with_capacity(count);
    let mut parents = Vec::with_capacity(count);
    let mut waiting = Vec::with_capacity(count);
    for step in &plan.steps {
        let (delay, at) = start_ms(step.call.start);
        workers.push(step.worker.clone());
        names.push(step.name.clone());
        payloads.push(step.call.payload.clone());
        timeouts.push(timeout_ms(step.call.timeout));
        delays.push(delay);
        ats.push(at);
        priorities.push(step.call.priority);
        limit_keys.push(step.call.limit_key.clone());
        parents.push(Value::from(
            step.parents
                .iter()
                .map(|&parent| plan.steps[parent].name.clone())
                .collect::<Vec<_>>(),
        ));
        waiting.push(i32::try_from(step.parents.len()).unwrap_or(i32::MAX));
    }
    sqlx::query(sql.insert_workflow.clone())
        .bind(plan.id.as_uuid())
        .bind(&plan.name)
        .bind(i32::try_from(count).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    sqlx::query(sql.insert_workflow_steps.clone())
        .bind(plan.id.as_uuid())
        .bind(&names)
        .bind(&workers)
        .bind(&run_ids)
        .bind(&parents)
        .bind(&waiting)
        .bind(&delays)
        .bind(&ats)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    sqlx::query(sql.insert_step_runs.clone())
        .bind(plan.id.as_uuid())
        .bind(&run_ids)
        .bind(&workers)
        .bind(&payloads)
        .bind(&timeouts)
        .bind(&delays)
        .bind(&ats)
        .bind(&priorities)
        .bind(&limit_keys)
        .bind(&names)
        .bind(&waiting)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    bus::notify(&mut *conn, sql, Note::Queued, &[])
        .await
        .map_err(failed)?;
    Ok(run_ids)
}

/// Marks workflow `id` cancelled: from now on its steps' endings release
/// and doom nothing. Its steps are then cancelled one by one.
pub(crate) async fn mark_cancelled(db: &Db, id: WorkflowId) -> Result<()> {
    sqlx::query(db.sql.cancel_workflow.clone())
        .bind(id.as_uuid())
        .execute(&mut *db.reach.connection("cancel a workflow").await?)
        .await
        .map_err(|err| db.reach.error(&format!("cancel workflow {id}"), err))?;
    Ok(())
}
