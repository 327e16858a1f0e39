//! Storing jobs: runs with a start time, a priority or a unique key, one
//! or many, in one transaction (the caller's, or one of our own).
//!
//! A key is taken by inserting it into `run_keys`, whose primary key is
//! the rule "one run per worker and key": two processes calling at once
//! can't both insert, whatever they read before. The call that finds its
//! key taken answers with the holder's id (`Join`), changes the holder
//! while it has never started (`Replace`), or fails (`Reject`).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use worker_core::backend::{Resolved, Start};
use worker_core::{Duplicate, Error, Result};

use crate::bus::{self, Note};
use crate::sql::Sql;

/// How often a call looks again for a key whose holder ended between
/// two of its statements, before it gives up.
const KEY_ROUNDS: usize = 8;

/// One stored call: the run it is on, and whether the call stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) id: Uuid,
    pub(crate) new: bool,
}

/// What the database needs of a call's start time: a delay in ms, or an
/// epoch time in ms (the database's clock decides when "now" is).
fn start_ms(start: Option<Start>) -> (Option<f64>, Option<f64>) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match start {
        None => (None, None),
        Some(Start::After(delay)) => (Some(ms(delay)), None),
        Some(Start::At(at)) => {
            let epoch = match at.duration_since(UNIX_EPOCH) {
                Ok(since) => ms(since),
                Err(_) => 0.0,
            };
            (None, Some(epoch))
        }
    }
}

fn timeout_ms(timeout: Option<Duration>) -> Option<i64> {
    timeout.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

/// Stores `calls` of `worker` on `conn`, which should be in a transaction
/// (the batch is then all or nothing), and says which run each call is on,
/// in order. New runs are announced on commit.
pub(crate) async fn store(
    conn: &mut PgConnection,
    sql: &Sql,
    worker: &str,
    calls: Vec<Resolved>,
) -> Result<Vec<Placed>> {
    let failed =
        |err: sqlx::Error| Error::msg(format!("can't store runs of worker '{worker}': {err}"));
    // Within the batch, the first call with a key speaks for it; later
    // ones are its duplicates, answered as if it were already stored.
    let mut placed: Vec<Option<Placed>> = vec![None; calls.len()];
    let mut first_with: HashMap<&str, usize> = HashMap::new();
    let mut calls_kept: Vec<Resolved> = calls.clone();
    for (at, call) in calls.iter().enumerate() {
        let Some(key) = call.key.as_deref() else {
            continue;
        };
        match first_with.get(key) {
            None => {
                first_with.insert(key, at);
            }
            Some(&first) => match call.on_duplicate {
                Duplicate::Reject => {
                    return Err(Error::Duplicate {
                        worker: worker.to_owned(),
                        key: key.to_owned(),
                        run_id: "of an earlier call in this batch".to_owned(),
                    });
                }
                Duplicate::Replace => {
                    let kept = &mut calls_kept[first];
                    kept.payload = call.payload.clone();
                    kept.priority = call.priority;
                    kept.start = call.start;
                    kept.timeout = call.timeout;
                }
                Duplicate::Join => {}
            },
        }
    }
    let ids: Vec<Uuid> = calls.iter().map(|_| Uuid::now_v7()).collect();
    // The keys: taken, or found held.
    let mut open: Vec<&str> = first_with.keys().copied().collect();
    let mut holders: HashMap<String, (Uuid, bool)> = HashMap::new();
    for _ in 0..KEY_ROUNDS {
        if open.is_empty() {
            break;
        }
        let owners: Vec<Uuid> = open.iter().map(|key| ids[first_with[key]]).collect();
        let taken: Vec<String> = sqlx::query_scalar(sql.take_keys.clone())
            .bind(worker)
            .bind(&open)
            .bind(&owners)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?;
        open.retain(|key| !taken.iter().any(|t| t == key));
        if open.is_empty() {
            break;
        }
        let rows: Vec<(String, Uuid, bool, bool)> = sqlx::query_as(sql.key_holders.clone())
            .bind(worker)
            .bind(&open)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?;
        for (key, holder, in_runs, unstarted) in rows {
            if in_runs {
                holders.insert(key, (holder, unstarted));
            } else {
                sqlx::query(sql.free_stale_key.clone())
                    .bind(worker)
                    .bind(&key)
                    .bind(holder)
                    .execute(&mut *conn)
                    .await
                    .map_err(failed)?;
            }
        }
        // Held: answered below. Freed meanwhile (the holder ended, or a
        // stale key was cleared): taken in the next round.
        open.retain(|key| !holders.contains_key(*key));
    }
    if !open.is_empty() {
        return Err(Error::msg(format!(
            "can't store runs of worker '{worker}': the key '{}' changed hands {KEY_ROUNDS} times while the call looked; try again",
            open[0]
        )));
    }
    // Calls whose key is held by a stored run.
    for (key, &(holder, unstarted)) in &holders {
        let first = first_with[key.as_str()];
        let call = &calls_kept[first];
        if calls[first].on_duplicate == Duplicate::Reject {
            return Err(Error::Duplicate {
                worker: worker.to_owned(),
                key: key.clone(),
                run_id: holder.to_string(),
            });
        }
        let replaces = calls
            .iter()
            .any(|c| c.key.as_deref() == Some(key) && c.on_duplicate == Duplicate::Replace);
        if replaces && unstarted {
            let (delay, at) = start_ms(call.start);
            sqlx::query(sql.replace_run.clone())
                .persistent(false)
                .bind(holder)
                .bind(&call.payload)
                .bind(call.priority)
                .bind(delay)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(failed)?;
        }
        placed[first] = Some(Placed {
            id: holder,
            new: false,
        });
    }
    // The new runs, in one statement.
    let mut new_at = Vec::new();
    for (at, call) in calls.iter().enumerate() {
        let first = call.key.as_deref().map_or(at, |key| first_with[key]);
        if first == at && placed[at].is_none() {
            new_at.push(at);
            placed[at] = Some(Placed {
                id: ids[at],
                new: true,
            });
        }
    }
    if !new_at.is_empty() {
        let kept = |at: &usize| &calls_kept[*at];
        let column_ids: Vec<Uuid> = new_at.iter().map(|&at| ids[at]).collect();
        let payloads: Vec<Option<Value>> =
            new_at.iter().map(|at| kept(at).payload.clone()).collect();
        let timeouts: Vec<Option<i64>> = new_at
            .iter()
            .map(|at| timeout_ms(kept(at).timeout))
            .collect();
        let starts: Vec<(Option<f64>, Option<f64>)> =
            new_at.iter().map(|at| start_ms(kept(at).start)).collect();
        let delays: Vec<Option<f64>> = starts.iter().map(|s| s.0).collect();
        let times: Vec<Option<f64>> = starts.iter().map(|s| s.1).collect();
        let priorities: Vec<i32> = new_at.iter().map(|at| kept(at).priority).collect();
        let keys: Vec<Option<String>> = new_at.iter().map(|at| kept(at).key.clone()).collect();
        sqlx::query(sql.insert_jobs.clone())
            .bind(worker)
            .bind(&column_ids)
            .bind(&payloads)
            .bind(&timeouts)
            .bind(&delays)
            .bind(&times)
            .bind(&priorities)
            .bind(&keys)
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        bus::notify(&mut *conn, sql, Note::Queued, &[])
            .await
            .map_err(failed)?;
    }
    // Every later call with a key is on the run its first call is on.
    Ok(calls
        .iter()
        .enumerate()
        .map(|(at, call)| {
            let first = call.key.as_deref().map_or(at, |key| first_with[key]);
            let on = placed[first].unwrap_or(Placed {
                id: ids[first],
                new: true,
            });
            Placed {
                id: on.id,
                new: on.new && first == at,
            }
        })
        .collect())
}
