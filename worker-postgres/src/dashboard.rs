//! What the dashboard reads from the database: ended runs, one run with
//! its attempts, the nodes, the latest stalls and the timeline. The
//! [`History`] of a started backend, over every node's runs.

use std::time::{Duration, SystemTime};

use uuid::Uuid;
use worker_core::backend::{
    BoxFuture, History, HistoryQuery, NodeInfo, Stall, StoredAttempt, StoredRun, TimelineBucket,
};
use worker_core::{Outcome, Result, RunId, RunState};

use crate::db::Db;
use crate::handle::{outcome_of, stored_state};
use crate::rollup::{self, ROLLUP_SECONDS};
use crate::rows::{AttemptRow, NodeRow, RunRow, StallRow};

impl History for Db {
    fn recent(&self, query: HistoryQuery) -> BoxFuture<'_, Result<Vec<StoredRun>>> {
        Box::pin(self.recent_runs(query))
    }

    fn run(&self, run_id: RunId) -> BoxFuture<'_, Result<Option<StoredRun>>> {
        Box::pin(self.stored_run(run_id))
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>>> {
        Box::pin(self.node_list())
    }

    fn workflows(&self, limit: usize) -> BoxFuture<'_, Result<Vec<worker_core::WorkflowStatus>>> {
        Box::pin(self.workflow_statuses(limit, None))
    }

    fn workflow(
        &self,
        id: worker_core::WorkflowId,
    ) -> BoxFuture<'_, Result<Option<worker_core::WorkflowStatus>>> {
        Box::pin(async move { Ok(self.workflow_statuses(1, Some(id)).await?.pop()) })
    }

    fn stalls(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Stall>>> {
        Box::pin(self.recent_stalls(limit))
    }

    fn timeline(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> BoxFuture<'_, Result<Vec<TimelineBucket>>> {
        Box::pin(self.timeline_buckets(window, bucket))
    }
}

impl Db {
    async fn recent_runs(&self, query: HistoryQuery) -> Result<Vec<StoredRun>> {
        let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
        const WHAT: &str = "read the history of runs";
        let read = |err| self.reach.error(WHAT, err);
        let mut conn = self.reach.connection(WHAT).await?;
        let mut rows: Vec<RunRow> = Vec::new();
        if query.failed_first && query.outcome.is_none() {
            rows = sqlx::query_as(self.sql.history_failures.clone())
                .persistent(false)
                .bind(query.worker.as_deref())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
                .map_err(read)?;
        }
        let left = limit - rows.len() as i64;
        if left > 0 {
            let rest: Vec<RunRow> = sqlx::query_as(self.sql.history.clone())
                .persistent(false)
                .bind(query.worker.as_deref())
                .bind(query.outcome.map(Outcome::as_str))
                // Failures already listed come back here: ask for enough.
                .bind(left + rows.len() as i64)
                .fetch_all(&mut *conn)
                .await
                .map_err(read)?;
            let listed: std::collections::HashSet<Uuid> = rows.iter().map(|row| row.id).collect();
            rows.extend(
                rest.into_iter()
                    .filter(|row| !listed.contains(&row.id))
                    .take(usize::try_from(left).unwrap_or(0)),
            );
        }
        Ok(rows.into_iter().map(stored).collect())
    }

    async fn stored_run(&self, run_id: RunId) -> Result<Option<StoredRun>> {
        let id = run_id.as_uuid();
        let mut conn = self.reach.connection("read a run").await?;
        let row: Option<RunRow> = sqlx::query_as(self.sql.stored_run.clone())
            .persistent(false)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|err| self.reach.error(&format!("read run '{run_id}'"), err))?;
        let Some(mut run) = row.map(stored) else {
            return Ok(None);
        };
        let attempts: Vec<AttemptRow> = sqlx::query_as(self.sql.attempts_of.clone())
            .persistent(false)
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| {
                self.reach
                    .error(&format!("read the attempts of run '{run_id}'"), err)
            })?;
        run.attempts = attempts
            .into_iter()
            .map(|row| stored_attempt(&run, row))
            .collect();
        Ok(Some(run))
    }

    /// Reads a stall as the `recent_stalls` statement selects it: run id,
    /// worker, attempt, node, when (epoch seconds) and the reaper's detail.
    async fn recent_stalls(&self, limit: usize) -> Result<Vec<Stall>> {
        let rows: Vec<StallRow> = sqlx::query_as(self.sql.recent_stalls.clone())
            .persistent(false)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.reach.connection("list the recent stalls").await?)
            .await
            .map_err(|err| self.reach.error("list the recent stalls", err))?;
        Ok(rows
            .into_iter()
            .map(|row| Stall {
                run_id: row.run_id.into(),
                worker: row.worker,
                attempt: u32::try_from(row.attempt).unwrap_or(1),
                node: row.node,
                at: time_of(row.at_ms),
                detail: row.error,
            })
            .collect())
    }

    async fn node_list(&self) -> Result<Vec<NodeInfo>> {
        let rows: Vec<NodeRow> = sqlx::query_as(self.sql.nodes.clone())
            .persistent(false)
            .fetch_all(&mut *self.reach.connection("list the nodes").await?)
            .await
            .map_err(|err| self.reach.error("list the nodes", err))?;
        Ok(rows
            .into_iter()
            .map(|row| NodeInfo {
                node: row.node,
                started_at: time_of(row.started_ms),
                last_heartbeat: time_of(row.heartbeat_ms),
                executes: row.executes,
                running: row.running.into_iter().map(RunId::from).collect(),
            })
            .collect())
    }

    /// Read from the rollup (see `rollup.rs`): its resolution is 5 s, so
    /// `bucket` is rounded to a multiple of 5 s, and each bucket's p95 is
    /// read from duration classes, within 19 % of the exact one.
    async fn timeline_buckets(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> Result<Vec<TimelineBucket>> {
        let bucket_s = (bucket.as_secs_f64() / ROLLUP_SECONDS).round().max(1.0) * ROLLUP_SECONDS;
        let window_ms = window.as_secs_f64() * 1e3;
        const WHAT: &str = "read the timeline";
        let mut conn = self.reach.connection(WHAT).await?;
        let rows: Vec<(f64, String, i16, i64)> = sqlx::query_as(self.sql.timeline.clone())
            .bind(bucket_s)
            .bind(window_ms)
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| self.reach.error(WHAT, err))?;
        // Per bucket start (ms): the count per outcome, per duration class.
        type Counts = (Vec<(Outcome, u64)>, Vec<(i16, u64)>);
        let mut buckets: std::collections::BTreeMap<i64, Counts> = Default::default();
        for (start_s, state, class, count) in rows {
            let Ok(outcome) = state.parse::<Outcome>() else {
                continue;
            };
            let count = u64::try_from(count).unwrap_or(0);
            let (outcomes, classes) = buckets
                .entry((start_s * 1000.0).round() as i64)
                .or_default();
            match outcomes.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, n)) => *n += count,
                None => outcomes.push((outcome, count)),
            }
            // Cancelled and stalled runs are filed under `NO_DURATION`,
            // which the percentile leaves out, as `stats()`'s does.
            classes.push((class, count));
        }
        Ok(buckets
            .into_iter()
            .map(|(start_ms, (counts, classes))| TimelineBucket {
                start: time_of(start_ms as f64),
                counts,
                p95_ms: rollup::percentile(&classes, 0.95),
            })
            .collect())
    }
}

fn time_of(unix_ms: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix_ms.max(0.0) / 1e3)
}

fn stored(row: RunRow) -> StoredRun {
    let RunRow {
        id,
        worker,
        state,
        attempt,
        error_kind: kind,
        error: detail,
        payload,
        output,
        created_ms: created,
        started_ms: started,
        ended_ms: ended,
        duration_ms,
        node,
        key,
        priority,
        due_ms,
    } = row;
    let state = stored_state(&state);
    let run_id = RunId::from(id);
    let error = outcome_of(
        run_id,
        &worker,
        state,
        kind.as_deref(),
        detail.as_deref(),
        None,
    )
    .and_then(Result::err)
    .map(|error| error.to_string());
    StoredRun {
        run_id,
        worker,
        state,
        attempt: u32::try_from(attempt).unwrap_or(1),
        error,
        payload,
        output,
        created_at: time_of(created),
        started_at: started.map(time_of),
        ended_at: ended.map(time_of),
        duration_ms,
        node,
        attempts: Vec::new(),
        // Messages are read by attaching, from the first; none are dropped
        // within the retention.
        messages: None,
        messages_dropped: 0,
        progress: None,
        key,
        priority,
        due_at: Some(time_of(due_ms)),
    }
}

fn stored_attempt(run: &StoredRun, row: AttemptRow) -> StoredAttempt {
    let AttemptRow {
        attempt,
        node,
        started_ms: started,
        ended_ms: ended,
        outcome,
        error_kind: kind,
        error: detail,
        duration_ms,
    } = row;
    // `released` is the one attempt ending that is no run outcome.
    let outcome = outcome.parse::<Outcome>().ok();
    let error = match outcome {
        None => None,
        // The reaper's sentence (which node, how late), as it wrote it.
        Some(Outcome::Stalled) => detail,
        Some(
            ended @ (Outcome::Succeeded
            | Outcome::Failed
            | Outcome::TimedOut
            | Outcome::Panicked
            | Outcome::Cancelled),
        ) => outcome_of(
            run.run_id,
            &run.worker,
            RunState::Ended(ended),
            kind.as_deref(),
            detail.as_deref(),
            None,
        )
        .and_then(Result::err)
        .map(|error| error.to_string()),
    };
    StoredAttempt {
        attempt: u32::try_from(attempt).unwrap_or(1),
        node,
        started_at: Some(time_of(started)),
        ended_at: time_of(ended),
        outcome,
        error,
        duration_ms,
        retry_in: None,
    }
}
