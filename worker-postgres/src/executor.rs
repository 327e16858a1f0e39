//! This node executing runs: it claims due runs of its workers (as many as
//! it has room for), executes each attempt as a local run, streams its
//! messages to the outbox and records its ending there; it renews its
//! leases, reaps the runs of nodes that died, and purges what outlived its
//! retention.
//!
//! At least once, fenced: a run is claimed with a fresh lease token, every
//! write about it carries that token, and a node that lost its lease (it
//! was stopped, cut off or too slow) can no longer write anything about
//! that run. So each run has exactly one recorded outcome, whatever
//! crashes, though its worker may have started more than once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use uuid::Uuid;
use worker_core::backend::{ClaimedRun, Node};
use worker_core::{Error, Result};

use crate::Config;
use crate::bus::{self, Bus};
use crate::sql::Sql;
use crate::writer::{self, Ending, Item};

/// How often leases lapsed elsewhere are looked for: it bounds how long a
/// dead node's run waits past its lease.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// How often ended runs past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Most runs claimed in one statement.
const CLAIM_BATCH: usize = 256;

/// The runs this node executes, with their lease tokens.
#[derive(Debug, Default)]
struct InFlight {
    runs: HashMap<Uuid, Lease>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    token: Uuid,
    /// The lease was lost: nothing about the run may be written any more.
    lost: bool,
}

/// One node's executor.
pub(crate) struct Executor {
    config: Arc<Config>,
    name: String,
    node: Node,
    pool: PgPool,
    sql: Arc<Sql>,
    bus: Arc<Bus>,
    outbox: mpsc::Sender<Item>,
    slots: Arc<Semaphore>,
    /// A held run was let go: the claim loop may claim again.
    room_freed: Notify,
    in_flight: Mutex<InFlight>,
    /// Shutting down: claim nothing more; what is cancelled goes back.
    stopping: AtomicBool,
    stopped: Notify,
    all_done: Notify,
}

impl Executor {
    /// Starts maintenance (every node reaps, renews and purges) and, unless
    /// the config says this process only calls, claiming.
    pub(crate) fn start(
        config: Arc<Config>,
        node: Node,
        pool: PgPool,
        sql: Arc<Sql>,
        bus: Arc<Bus>,
    ) -> Result<Arc<Executor>> {
        let outbox = writer::start(pool.clone(), sql.clone());
        let executor = Arc::new(Executor {
            name: node_name(),
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
            node,
            pool,
            sql,
            bus,
            outbox,
            room_freed: Notify::new(),
            in_flight: Mutex::default(),
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
            all_done: Notify::new(),
        });
        // Every node reaps and purges, also one that only calls: a cluster
        // of callers still recovers what the dead left behind.
        tokio::spawn(executor.clone().maintain());
        if executor.config.execute {
            tokio::spawn(executor.clone().claim_loop());
            tokio::spawn(executor.clone().cancel_loop());
        }
        Ok(executor)
    }

    fn in_flight(&self) -> MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// How many runs this node holds at most: those executing, those
    /// claimed ahead waiting for a slot (a local queue, so that a busy node
    /// claims in batches), and those whose ending is being written.
    fn hold_limit(&self) -> usize {
        self.config.concurrency * 2
    }

    /// Claims due runs while there is room, waiting for a notification,
    /// room, the next delayed run or the backstop in between.
    async fn claim_loop(self: Arc<Self>) {
        let lease_ms = self.config.lease.as_secs_f64() * 1e3;
        // Under load, wait for a batch's worth of room (or a moment) rather
        // than claim one run per statement.
        let batch = (self.config.concurrency / 4).max(1);
        while !self.is_stopping() {
            let held = self.in_flight().runs.len();
            let room = self.hold_limit().saturating_sub(held).min(CLAIM_BATCH);
            if room == 0 || (room < batch && held > 0) {
                tokio::select! {
                    () = self.room_freed.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(2)), if room > 0 => {}
                    () = self.stopped.notified() => {}
                }
                if room == 0 {
                    continue;
                }
            }
            let room = self
                .hold_limit()
                .saturating_sub(self.in_flight().runs.len())
                .min(CLAIM_BATCH);
            if room == 0 {
                continue;
            }
            let workers = self.node.workers();
            let claimed: std::result::Result<Vec<ClaimRow>, sqlx::Error> =
                sqlx::query_as(self.sql.claim.clone())
                    .bind(&self.name)
                    .bind(lease_ms)
                    .bind(&workers)
                    .bind(room as i64)
                    .fetch_all(&self.pool)
                    .await;
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(err) => {
                    log::warn!(target: "worker_postgres", "can't claim runs: {err}; trying again shortly");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let full = claimed.len() == room;
            for run in claimed.into_iter().map(Claimed::from) {
                // Held (and its lease renewed) from now on.
                self.in_flight().runs.insert(
                    run.id,
                    Lease {
                        token: run.token,
                        lost: false,
                    },
                );
                tokio::spawn(self.clone().execute(run));
            }
            if full {
                continue;
            }
            let wait = self.next_due(&workers).await;
            tokio::select! {
                () = self.bus.queued.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = self.stopped.notified() => {}
            }
        }
    }

    /// How long until the next delayed run of these workers is due, at most
    /// the backstop.
    async fn next_due(&self, workers: &[String]) -> Duration {
        let due: std::result::Result<Option<f64>, _> =
            sqlx::query_scalar(self.sql.next_due.clone())
                .bind(workers)
                .fetch_one(&self.pool)
                .await;
        match due {
            Ok(Some(ms)) if ms > 0.0 => Duration::from_secs_f64(ms / 1e3).min(bus::BACKSTOP),
            Ok(Some(_)) => Duration::from_millis(5),
            _ => bus::BACKSTOP,
        }
    }

    /// One attempt of one run, from claim to recorded ending: waits for one
    /// of this process's slots, executes, and hands the ending to the
    /// outbox; the slot is free again then, while the lease is kept until
    /// the ending is written.
    async fn execute(self: Arc<Self>, run: Claimed) {
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let ending = if self.is_stopping() {
            // Claimed ahead, never started: straight back to the queue.
            self.release(&run, 0.0).await
        } else {
            self.attempt(&run).await
        };
        drop(permit);
        if let Some(recorded) = ending
            && let Ok(false) = recorded.await
        {
            log::warn!(
                target: "worker_postgres",
                "[Worker:{} run:{}] its lease lapsed before its outcome was written: another node runs it again",
                run.worker,
                &run.id.hyphenated().to_string()[..8]
            );
        }
        let emptied = {
            let mut in_flight = self.in_flight();
            in_flight.runs.remove(&run.id);
            in_flight.runs.is_empty()
        };
        self.room_freed.notify_one();
        if emptied {
            self.all_done.notify_waiters();
        }
    }

    /// Executes the attempt here and queues its ending; `None` if the lease
    /// was lost meanwhile (then nothing about it may be written).
    async fn attempt(&self, run: &Claimed) -> Option<oneshot::Receiver<bool>> {
        let started = Instant::now();
        let run_id = run.id.hyphenated().to_string();
        let claimed = ClaimedRun {
            run_id: run_id.clone(),
            worker: run.worker.clone(),
            payload: run.payload.clone(),
            attempt: u32::try_from(run.attempt).unwrap_or(1),
            timeout: run
                .timeout_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        };
        let result = match self.node.execute(claimed) {
            Ok(mut handle) => {
                // Asked to stop before we started: stop at once.
                if run.cancel_requested || self.is_stopping() {
                    tokio::spawn(self.node.cancel_local(&run_id));
                }
                let mut seq = run.next_seq;
                while let Some(body) = handle.recv().await {
                    let message = Item::Message {
                        run: run.id,
                        token: run.token,
                        seq,
                        attempt: run.attempt,
                        body,
                    };
                    // Waits while the outbox is full: back-pressure.
                    if self.outbox.send(message).await.is_err() {
                        break;
                    }
                    seq += 1;
                }
                handle.await_output::<Value>().await
            }
            Err(error) => Err(error),
        };
        if self.in_flight().runs.get(&run.id).is_some_and(|l| l.lost) {
            log::warn!(
                target: "worker_postgres",
                "[Worker:{} run:{}] lost its lease: its outcome is not recorded here; another node runs it again",
                run.worker,
                &run_id[..8]
            );
            return None;
        }
        let took = started.elapsed().as_secs_f64() * 1e3;
        self.record(run, result, took).await
    }

    /// Gives a run back to the queue, due again after `delay_ms`.
    async fn release(&self, run: &Claimed, delay_ms: f64) -> Option<oneshot::Receiver<bool>> {
        let (done, recorded) = oneshot::channel();
        let item = Item::Release {
            run: run.id,
            token: run.token,
            delay_ms,
            done,
        };
        self.outbox.send(item).await.ok()?;
        Some(recorded)
    }

    /// Writes an attempt's ending: the outcome, a retry, or (shutting down,
    /// stopped by it) the run given back to the queue.
    async fn record(
        &self,
        run: &Claimed,
        result: Result<Value>,
        took_ms: f64,
    ) -> Option<oneshot::Receiver<bool>> {
        let (done, recorded) = oneshot::channel();
        let item = match result {
            Ok(output) => Item::Finish {
                run: run.id,
                token: run.token,
                ending: Ending {
                    state: "succeeded",
                    kind: None,
                    error: None,
                    output: Some(output).filter(|o| !o.is_null()),
                    duration_ms: took_ms,
                },
                done,
            },
            // Stopped because this node is going away: not the run's
            // failure, and not a cancel anyone asked for.
            Err(error)
                if error.is_cancelled()
                    && self.is_stopping()
                    && !self.cancel_was_asked(run).await =>
            {
                Item::Release {
                    run: run.id,
                    token: run.token,
                    delay_ms: 0.0,
                    done,
                }
            }
            // The worker's own queue here is full (`queue_limit`): not the
            // run's failure; it waits a moment and any node may take it.
            Err(error) if error.is_overloaded() => Item::Release {
                run: run.id,
                token: run.token,
                delay_ms: 250.0,
                done,
            },
            Err(error) => {
                let jitter = (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64;
                let delay = self.node.options(&run.worker).and_then(|o| {
                    o.retry_delay(u32::try_from(run.attempt).unwrap_or(1), &error, jitter)
                });
                match delay {
                    Some(delay) => Item::Retry {
                        run: run.id,
                        token: run.token,
                        delay_ms: delay.as_secs_f64() * 1e3,
                        done,
                    },
                    None => Item::Finish {
                        run: run.id,
                        token: run.token,
                        ending: Ending {
                            state: state_of(&error),
                            kind: Some(error.kind()),
                            error: Some(error.detail()),
                            output: None,
                            duration_ms: took_ms,
                        },
                        done,
                    },
                }
            }
        };
        self.outbox.send(item).await.ok()?;
        Some(recorded)
    }

    /// Whether someone asked for this run to stop (then its cancellation is
    /// its outcome, even during shutdown).
    async fn cancel_was_asked(&self, run: &Claimed) -> bool {
        sqlx::query_scalar::<_, bool>(self.sql.cancel_asked.clone())
            .bind(run.id)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Stops the runs asked to stop that execute here.
    async fn cancel_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.bus.cancel_requested.notified() => {}
                () = self.stopped.notified() => return,
            }
            for run in self.bus.take_cancels() {
                if self.in_flight().runs.contains_key(&run) {
                    tokio::spawn(self.node.cancel_local(&run.hyphenated().to_string()));
                }
            }
        }
    }

    /// Renews leases, reaps lapsed ones, beats the node's heart and purges,
    /// each on its own period, until the process stops.
    async fn maintain(self: Arc<Self>) {
        let renew_every = self.config.lease / 3;
        let mut last_renew = Instant::now();
        let mut last_purge = Instant::now() - PURGE_EVERY + Duration::from_secs(5);
        // The first pass at once: the node shows up in `nodes()` as soon
        // as it has started.
        let mut beat = true;
        while !self.is_stopping() {
            if let Err(err) = self.reap().await {
                log::debug!(target: "worker_postgres", "can't look for lapsed leases: {err}");
            }
            if last_renew.elapsed() >= renew_every || beat {
                beat = false;
                last_renew = Instant::now();
                if let Err(err) = self.renew().await {
                    log::warn!(target: "worker_postgres", "can't renew leases: {err}");
                }
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = Instant::now();
                if let Err(err) = self.purge().await {
                    log::warn!(target: "worker_postgres", "can't purge old runs: {err}");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(REAP_EVERY) => {}
                () = self.stopped.notified() => {}
            }
        }
    }

    /// Requeues (or fails as stalled) the runs whose lease lapsed.
    async fn reap(&self) -> std::result::Result<(), sqlx::Error> {
        let max_stalls = i32::try_from(self.config.max_stalls).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await?;
        let changed: Vec<(Uuid, String)> = sqlx::query_as(self.sql.reap.clone())
            .bind(max_stalls)
            .fetch_all(&mut *tx)
            .await?;
        if changed.is_empty() {
            return tx.commit().await;
        }
        let stalled: Vec<Uuid> = changed
            .iter()
            .filter(|(_, state)| state == "stalled")
            .map(|(id, _)| *id)
            .collect();
        let mut notes = bus::payloads("e", &stalled);
        if stalled.len() < changed.len() {
            notes.push("q".to_owned());
        }
        for note in notes {
            sqlx::query(self.sql.notify.clone())
                .bind(&self.sql.channel)
                .bind(note)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        log::warn!(
            target: "worker_postgres",
            "{} run(s) lost their node: {} queued again, {} failed as stalled",
            changed.len(),
            changed.len() - stalled.len(),
            stalled.len()
        );
        Ok(())
    }

    /// Renews this node's leases; a lease not renewed was lost, and its run
    /// is stopped here. Also stops runs asked to stop (a lost
    /// notification's backstop) and records the node's heartbeat.
    async fn renew(&self) -> std::result::Result<(), sqlx::Error> {
        sqlx::query(self.sql.node_beat.clone())
            .bind(&self.name)
            .bind(self.config.execute)
            .execute(&self.pool)
            .await?;
        let held: Vec<(Uuid, Uuid)> = self
            .in_flight()
            .runs
            .iter()
            .filter(|(_, lease)| !lease.lost)
            .map(|(id, lease)| (*id, lease.token))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = held.iter().copied().unzip();
        let renewed: Vec<(Uuid, bool)> = sqlx::query_as(self.sql.renew.clone())
            .bind(&ids)
            .bind(&tokens)
            .bind(self.config.lease.as_secs_f64() * 1e3)
            .fetch_all(&self.pool)
            .await?;
        let mut stop = Vec::new();
        {
            let mut in_flight = self.in_flight();
            for (id, _) in &held {
                match renewed.iter().find(|(renewed, _)| renewed == id) {
                    Some((_, true)) => stop.push(*id),
                    Some((_, false)) => {}
                    None => {
                        // Already ended here, or lost: only the latter
                        // is still listed.
                        if let Some(lease) = in_flight.runs.get_mut(id) {
                            lease.lost = true;
                            stop.push(*id);
                        }
                    }
                }
            }
        }
        for id in stop {
            tokio::spawn(self.node.cancel_local(&id.hyphenated().to_string()));
        }
        Ok(())
    }

    async fn purge(&self) -> std::result::Result<(), sqlx::Error> {
        let deleted: i64 = sqlx::query_scalar(self.sql.purge.clone())
            .bind(self.config.retention.as_secs_f64() * 1e3)
            .fetch_one(&self.pool)
            .await?;
        if deleted > 0 {
            log::info!(target: "worker_postgres", "purged {deleted} run(s) past their retention");
        }
        Ok(())
    }

    /// Stops claiming; stops the runs in flight (each gets the grace
    /// period); what they didn't finish goes back to the queue; waits until
    /// all of it is written.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.stopped.notify_waiters();
        let running: Vec<Uuid> = self.in_flight().runs.keys().copied().collect();
        for id in &running {
            tokio::spawn(self.node.cancel_local(&id.hyphenated().to_string()));
        }
        // Each run ends within the grace period; then its ending is written.
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let notified = self.all_done.notified();
            if self.in_flight().runs.is_empty() || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        let (flushed, written) = oneshot::channel();
        if self.outbox.send(Item::Flush(flushed)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), written).await;
        }
        let _ = sqlx::query(self.sql.node_gone.clone())
            .bind(&self.name)
            .execute(&self.pool)
            .await;
    }
}

/// A claimed run.
#[derive(Debug)]
struct Claimed {
    id: Uuid,
    worker: String,
    payload: Option<Value>,
    attempt: i32,
    timeout_ms: Option<i64>,
    token: Uuid,
    next_seq: i32,
    cancel_requested: bool,
}

/// A row of the claim statement.
type ClaimRow = (
    Uuid,
    String,
    Option<Value>,
    i32,
    Option<i64>,
    Uuid,
    i32,
    bool,
);

impl From<ClaimRow> for Claimed {
    fn from(row: ClaimRow) -> Self {
        let (id, worker, payload, attempt, timeout_ms, token, next_seq, cancel_requested) = row;
        Claimed {
            id,
            worker,
            payload,
            attempt,
            timeout_ms,
            token,
            next_seq,
            cancel_requested,
        }
    }
}

/// The state a failed run is stored in.
fn state_of(error: &Error) -> &'static str {
    if error.is_timeout() {
        "timed_out"
    } else if error.is_panic() {
        "panicked"
    } else if error.is_cancelled() {
        "cancelled"
    } else {
        "failed"
    }
}

/// This process's name among the nodes: `host:pid:xxxx`.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let tag = Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &tag[..4])
}
