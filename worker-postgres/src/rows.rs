//! The rows the caller's side reads, each a named struct filled by column
//! name: a statement and its reader can't drift apart by position.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use uuid::Uuid;

/// A run as `RUN_COLUMNS` gives it (history, run pages).
#[derive(Debug)]
pub(crate) struct RunRow {
    pub(crate) id: Uuid,
    pub(crate) worker: String,
    pub(crate) state: String,
    pub(crate) attempt: i32,
    pub(crate) error_kind: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) payload: Option<Value>,
    pub(crate) output: Option<Value>,
    pub(crate) created_ms: f64,
    pub(crate) started_ms: Option<f64>,
    pub(crate) ended_ms: Option<f64>,
    pub(crate) duration_ms: Option<f64>,
    pub(crate) node: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) priority: i32,
    /// Its `run_at`: when it may start (or might have).
    pub(crate) due_ms: f64,
}

impl<'r> FromRow<'r, PgRow> for RunRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(RunRow {
            id: row.try_get("id")?,
            worker: row.try_get("worker")?,
            state: row.try_get("state")?,
            attempt: row.try_get("attempt")?,
            error_kind: row.try_get("error_kind")?,
            error: row.try_get("error")?,
            payload: row.try_get("payload")?,
            output: row.try_get("output")?,
            created_ms: row.try_get("created_ms")?,
            started_ms: row.try_get("started_ms")?,
            ended_ms: row.try_get("ended_ms")?,
            duration_ms: row.try_get("duration_ms")?,
            node: row.try_get("node")?,
            key: row.try_get("key")?,
            priority: row.try_get("priority")?,
            due_ms: row.try_get("due_ms")?,
        })
    }
}

/// One attempt as `attempts_of` gives it.
#[derive(Debug)]
pub(crate) struct AttemptRow {
    pub(crate) attempt: i32,
    pub(crate) node: Option<String>,
    pub(crate) started_ms: f64,
    pub(crate) ended_ms: f64,
    /// An outcome's name, or `released` (handed back by a node shutting
    /// down).
    pub(crate) outcome: String,
    pub(crate) error_kind: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: Option<f64>,
}

impl<'r> FromRow<'r, PgRow> for AttemptRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(AttemptRow {
            attempt: row.try_get("attempt")?,
            node: row.try_get("node")?,
            started_ms: row.try_get("started_ms")?,
            ended_ms: row.try_get("ended_ms")?,
            outcome: row.try_get("outcome")?,
            error_kind: row.try_get("error_kind")?,
            error: row.try_get("error")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    }
}

/// A stalled attempt as `recent_stalls` gives it.
#[derive(Debug)]
pub(crate) struct StallRow {
    pub(crate) run_id: Uuid,
    pub(crate) worker: String,
    pub(crate) attempt: i32,
    pub(crate) node: Option<String>,
    pub(crate) at_ms: f64,
    /// What the reaper wrote: which node stopped renewing, how late.
    pub(crate) error: Option<String>,
}

impl<'r> FromRow<'r, PgRow> for StallRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(StallRow {
            run_id: row.try_get("run_id")?,
            worker: row.try_get("worker")?,
            attempt: row.try_get("attempt")?,
            node: row.try_get("node")?,
            at_ms: row.try_get("at_ms")?,
            error: row.try_get("error")?,
        })
    }
}

/// A node as `nodes` gives it.
#[derive(Debug)]
pub(crate) struct NodeRow {
    pub(crate) node: String,
    pub(crate) started_ms: f64,
    pub(crate) heartbeat_ms: f64,
    pub(crate) executes: bool,
    pub(crate) running: Vec<Uuid>,
}

impl<'r> FromRow<'r, PgRow> for NodeRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(NodeRow {
            node: row.try_get("node")?,
            started_ms: row.try_get("started_ms")?,
            heartbeat_ms: row.try_get("heartbeat_ms")?,
            executes: row.try_get("executes")?,
            running: row.try_get("running")?,
        })
    }
}

/// A run's outcome as `outcome` gives it.
#[derive(Debug)]
pub(crate) struct OutcomeRow {
    pub(crate) state: String,
    pub(crate) error_kind: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<Value>,
}

impl<'r> FromRow<'r, PgRow> for OutcomeRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(OutcomeRow {
            state: row.try_get("state")?,
            error_kind: row.try_get("error_kind")?,
            error: row.try_get("error")?,
            output: row.try_get("output")?,
        })
    }
}
