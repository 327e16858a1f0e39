//! Storing jobs: runs with a start time, a priority or a unique key, one
//! or many, in one transaction (the caller's, or one of our own).
//!
//! New runs go in one statement: an `unnest` insert, or for a large batch
//! that starts at once, a `COPY`.
//!
//! A key is taken by inserting it into `run_keys`, whose primary key is
//! the rule "one run per worker and key": two processes calling at once
//! can't both insert, whatever they read before. The call that finds its
//! key taken answers with the holder's id (`Join`), changes the holder
//! while it has never started (`Replace`), or fails (`Reject`).

use std::collections::{HashMap, HashSet};
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

/// From how many new runs a batch that starts at once is streamed with
/// `COPY` rather than inserted (below it, the round trips of `COPY` cost
/// more than they save).
const COPY_FROM: usize = 1_000;

/// What the database needs of a call's start time: a delay in ms, or an
/// epoch time in ms (the database's clock decides when "now" is).
pub(crate) fn start_ms(start: Option<Start>) -> (Option<f64>, Option<f64>) {
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

pub(crate) fn timeout_ms(timeout: Option<Duration>) -> Option<i64> {
    timeout.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

/// Stores `calls` of `worker` on `conn`, which should be in a transaction
/// (the batch is then all or nothing), and says which run each call is on,
/// in order (a duplicate is on the run that holds its key). New runs are
/// announced on commit.
pub(crate) async fn store(
    conn: &mut PgConnection,
    sql: &Sql,
    worker: &str,
    mut calls: Vec<Resolved>,
) -> Result<Vec<Uuid>> {
    let failed =
        |err: sqlx::Error| Error::msg(format!("can't store runs of worker '{worker}': {err}"));
    let ids: Vec<Uuid> = calls.iter().map(|_| Uuid::now_v7()).collect();
    // Within the batch, the first call with a key speaks for it; later
    // ones are its duplicates, answered as if it were already stored (a
    // later Replace's payload, priority and time become the first's).
    let mut speaker: Vec<usize> = (0..calls.len()).collect();
    let mut first_with: HashMap<String, usize> = HashMap::new();
    let mut wants_replace: HashSet<usize> = HashSet::new();
    for at in 0..calls.len() {
        let Some(key) = calls[at].key.clone() else {
            continue;
        };
        let on_duplicate = calls[at].on_duplicate;
        let Some(&first) = first_with.get(&key) else {
            if on_duplicate == Duplicate::Replace {
                wants_replace.insert(at);
            }
            first_with.insert(key, at);
            continue;
        };
        speaker[at] = first;
        match on_duplicate {
            Duplicate::Reject => {
                return Err(Error::Duplicate {
                    worker: worker.to_owned(),
                    key,
                    run_id: "of an earlier call in this batch".to_owned(),
                });
            }
            Duplicate::Replace => {
                let payload = calls[at].payload.take();
                let (priority, start, timeout) =
                    (calls[at].priority, calls[at].start, calls[at].timeout);
                let kept = &mut calls[first];
                kept.payload = payload;
                kept.priority = priority;
                kept.start = start;
                kept.timeout = timeout;
                wants_replace.insert(first);
            }
            Duplicate::Join => {}
        }
    }
    // The keys: taken for the first call with each, or found held by a
    // stored run (by which first call, the holder, and whether it has
    // never started).
    let mut open: Vec<String> = first_with.keys().cloned().collect();
    let mut held: HashMap<usize, (Uuid, bool)> = HashMap::new();
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
        open.retain(|key| !taken.contains(key));
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
                held.insert(first_with[&key], (holder, unstarted));
                open.retain(|open| *open != key);
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
        // What is still open was freed meanwhile (its holder ended, or a
        // stale key was cleared): taken in the next round.
    }
    if let Some(key) = open.first() {
        return Err(Error::msg(format!(
            "can't store runs of worker '{worker}': the key '{key}' changed hands {KEY_ROUNDS} times while the call looked; try again"
        )));
    }
    // First calls whose key a stored run holds.
    let mut replaced = false;
    for (&first, &(holder, unstarted)) in &held {
        let call = &calls[first];
        if call.on_duplicate == Duplicate::Reject {
            return Err(Error::Duplicate {
                worker: worker.to_owned(),
                key: call.key.clone().unwrap_or_default(),
                run_id: holder.to_string(),
            });
        }
        // Started meanwhile: the call joins it instead.
        if wants_replace.contains(&first) && unstarted {
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
            replaced = true;
        }
    }
    // The new runs, in one statement.
    let new_at: Vec<usize> = (0..calls.len())
        .filter(|&at| speaker[at] == at && !held.contains_key(&at))
        .collect();
    let streamed = new_at.len() >= COPY_FROM && new_at.iter().all(|&at| calls[at].start.is_none());
    if streamed {
        let mut rows = Copied::with_capacity(new_at.len());
        for &at in &new_at {
            rows.push(ids[at], worker, &mut calls[at]).map_err(|err| {
                Error::msg(format!("can't store runs of worker '{worker}': {err}"))
            })?;
        }
        let mut copy = conn
            .copy_in_raw(sql.copy_jobs.as_str())
            .await
            .map_err(failed)?;
        if let Err(err) = copy.send(rows.text).await {
            let _ = copy.abort(err.to_string()).await;
            return Err(failed(err));
        }
        copy.finish().await.map_err(failed)?;
    } else if !new_at.is_empty() {
        let mut columns = Columns::with_capacity(new_at.len());
        for &at in &new_at {
            columns.push(ids[at], &mut calls[at]);
        }
        sqlx::query(sql.insert_jobs.clone())
            .bind(worker)
            .bind(&columns.ids)
            .bind(&columns.payloads)
            .bind(&columns.timeouts)
            .bind(&columns.delays)
            .bind(&columns.times)
            .bind(&columns.priorities)
            .bind(&columns.keys)
            .bind(&columns.limit_keys)
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
    }
    // Claimers wake for new runs, and for a replaced one whose time moved.
    if !new_at.is_empty() || replaced {
        bus::notify(&mut *conn, sql, Note::Queued, &[])
            .await
            .map_err(failed)?;
    }
    Ok(speaker
        .iter()
        .map(|&first| held.get(&first).map_or(ids[first], |&(holder, _)| holder))
        .collect())
}

/// The new runs of a batch as `COPY`'s text format: a line a run, columns
/// by tabs, `\N` for none, and a backslash, tab, newline or carriage
/// return in a value escaped.
struct Copied {
    text: Vec<u8>,
}

impl Copied {
    fn with_capacity(runs: usize) -> Self {
        Copied {
            text: Vec::with_capacity(runs * 96),
        }
    }

    /// Adds a call's run (id, worker, payload, timeout, priority, key,
    /// limit key), taking its payload and keys.
    fn push(&mut self, id: Uuid, worker: &str, call: &mut Resolved) -> serde_json::Result<()> {
        use std::io::Write;
        let text = &mut self.text;
        let _ = write!(text, "{}\t", id.hyphenated());
        escape(text, worker);
        text.push(b'\t');
        match call.payload.take() {
            Some(payload) => escape(text, &serde_json::to_string(&payload)?),
            None => text.extend_from_slice(b"\\N"),
        }
        text.push(b'\t');
        match timeout_ms(call.timeout) {
            Some(ms) => {
                let _ = write!(text, "{ms}");
            }
            None => text.extend_from_slice(b"\\N"),
        }
        let _ = write!(text, "\t{}", call.priority);
        for key in [call.key.take(), call.limit_key.take()] {
            text.push(b'\t');
            match key {
                Some(key) => escape(text, &key),
                None => text.extend_from_slice(b"\\N"),
            }
        }
        text.push(b'\n');
        Ok(())
    }
}

/// Writes `value` as a column of `COPY`'s text format.
fn escape(text: &mut Vec<u8>, value: &str) {
    for byte in value.bytes() {
        match byte {
            b'\\' => text.extend_from_slice(b"\\\\"),
            b'\t' => text.extend_from_slice(b"\\t"),
            b'\n' => text.extend_from_slice(b"\\n"),
            b'\r' => text.extend_from_slice(b"\\r"),
            other => text.push(other),
        }
    }
}

/// The new runs of a batch as the insert's arrays, one per column.
struct Columns {
    ids: Vec<Uuid>,
    payloads: Vec<Option<Value>>,
    timeouts: Vec<Option<i64>>,
    delays: Vec<Option<f64>>,
    times: Vec<Option<f64>>,
    priorities: Vec<i32>,
    keys: Vec<Option<String>>,
    limit_keys: Vec<Option<String>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Columns {
            ids: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            timeouts: Vec::with_capacity(n),
            delays: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            limit_keys: Vec::with_capacity(n),
        }
    }

    /// Adds a call's run, taking its payload and key.
    fn push(&mut self, id: Uuid, call: &mut Resolved) {
        let (delay, at) = start_ms(call.start);
        self.ids.push(id);
        self.payloads.push(call.payload.take());
        self.timeouts.push(timeout_ms(call.timeout));
        self.delays.push(delay);
        self.times.push(at);
        self.priorities.push(call.priority);
        self.keys.push(call.key.take());
        self.limit_keys.push(call.limit_key.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_its_format_reads_specially() {
        let mut text = Vec::new();
        escape(&mut text, "a\tb\\c\nd\re \\N ü");
        assert_eq!(text, "a\\tb\\\\c\\nd\\re \\\\N ü".as_bytes());
    }

    #[test]
    fn a_copied_run_is_one_line_of_seven_columns() {
        let mut rows = Copied::with_capacity(1);
        let mut call = worker_core::Call::new()
            .payload(serde_json::json!({"s": "x\ty"}))
            .priority(-2)
            .resolve_plain("w")
            .unwrap();
        call.limit_key = Some("acct".to_owned());
        let id = Uuid::nil();
        rows.push(id, "w", &mut call).unwrap();
        let line = String::from_utf8(rows.text).unwrap();
        assert_eq!(
            line,
            format!("{id}\tw\t{{\"s\":\"x\\\\ty\"}}\t\\N\t-2\t\\N\tacct\n")
        );
    }
}
