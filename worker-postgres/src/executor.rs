//! This node executing runs: it claims due runs of its workers (as many as
//! it has room for), executes each attempt as a local run, streams its
//! messages to the outbox and records its ending there, and renews its
//! leases (`leases`). It starts the node's upkeep (`upkeep`) beside it.
//!
//! At least once, fenced: a run is claimed with a fresh lease token, every
//! write about it carries that token, and a node that lost its lease (it
//! was stopped, cut off or too slow) can no longer write anything about
//! that run. So each run has exactly one recorded outcome, whatever
//! crashes, though its worker may have started more than once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use uuid::Uuid;
use worker_core::backend::{ClaimedRun, ClaimedStep, Node, WorkflowId};
use worker_core::{Outcome, Result, RunId};

use crate::ahead::Ahead;
use crate::bus::{self, Bus};
use crate::config::Config;
use crate::cursor;
use crate::events;
use crate::lanes::Cleared;
use crate::leases::{self, Leases, Renewed, Unsafe};
use crate::limits::{self, Limits};
use crate::sql::{INDEXES_ONLY, Sql};
use crate::stop::Stop;
use crate::upkeep::Upkeep;
use crate::writer::{self, Ending, Item};

/// Most runs claimed in one statement.
const CLAIM_BATCH: usize = 256;

/// How soon a limited worker's claimer looks again while its runs wait
/// for a limit and no notification came: a slot freed by another node is
/// announced with that run's ending, this is the fallback.
const LIMITED_POLL: Duration = Duration::from_millis(25);

/// How long a limited worker's claimer waits for a batch's worth of room.
const BATCH_WAIT: Duration = Duration::from_millis(2);

/// How often a limited worker's claimer drops the token sets of keys that
/// are all free again.
const KEY_TOKENS_EVERY: Duration = Duration::from_secs(30);

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
    /// The runs this node holds, from claim to committed ending.
    leases: Arc<Leases>,
    /// How many of them it may hold.
    ahead: Ahead,
    /// Renews `leases`; ends after shutdown has written every ending.
    renewal: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The node's upkeep of the shared tables, on loops of its own.
    upkeep: Arc<Upkeep>,
    /// Shutting down: claim nothing more; what is cancelled goes back.
    stop: Arc<Stop>,
    /// The limited workers that have a claimer of their own, and the
    /// worker list they were found in.
    limited: Mutex<(Vec<String>, HashSet<String>)>,
}

impl Executor {
    /// Starts maintenance (every node reaps and purges) and, unless the
    /// config says this process only calls, lease renewal on `renewal` (see
    /// [`leases::connect`]) and claiming.
    pub(crate) fn start(
        config: Arc<Config>,
        node: Node,
        pool: PgPool,
        sql: Arc<Sql>,
        bus: Arc<Bus>,
        renewal: Option<sqlx::PgConnection>,
    ) -> Result<Arc<Executor>> {
        let name = node_name();
        let outbox = writer::start(pool.clone(), sql.clone(), name.clone());
        let stop = Arc::new(Stop::default());
        let upkeep = Upkeep::start(
            config.clone(),
            name.clone(),
            pool.clone(),
            sql.clone(),
            stop.clone(),
        );
        let executor = Arc::new(Executor {
            name,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            leases: Arc::new(Leases::new(config.lease)),
            ahead: Ahead::new(config.concurrency),
            config,
            node,
            pool,
            sql,
            bus,
            outbox,
            room_freed: Notify::new(),
            renewal: Mutex::default(),
            upkeep,
            stop,
            limited: Mutex::default(),
        });
        if let Some(conn) = renewal.filter(|_| executor.config.execute) {
            let found = executor.clone();
            let renewal = tokio::spawn(leases::renew_loop(
                executor.leases.clone(),
                conn,
                executor.pool.clone(),
                executor.sql.clone(),
                move |renewed| found.renewed(renewed),
            ));
            *executor.renewal.lock().unwrap_or_else(|p| p.into_inner()) = Some(renewal);
            tokio::spawn(executor.clone().claim_loop());
            tokio::spawn(executor.clone().cancel_loop());
        }
        Ok(executor)
    }

    /// Test hook: clears `lane` now (see `lanes::clear`).
    pub(crate) async fn clear_lane(&self, lane: usize) -> Result<Cleared> {
        self.upkeep.clear_lane(lane).await
    }

    /// Test hook: this node's lease renewal stops for `pause`.
    pub(crate) fn pause_renewals(&self, pause: Duration) {
        self.leases.pause_renewals(pause);
    }

    fn is_stopping(&self) -> bool {
        self.stop.is_set()
    }

    /// A worker's options as this node declares them.
    pub(crate) fn options(&self, worker: &str) -> Option<worker_core::WorkerOptions> {
        self.node.options(worker)
    }

    /// Starts a claimer for each limited worker among `workers` that has
    /// none yet (workers may be registered after the node started).
    fn claim_limited_workers(self: &Arc<Self>, workers: &[String]) {
        let mut limited = self.limited.lock().unwrap_or_else(|p| p.into_inner());
        if limited.0 == workers {
            return;
        }
        limited.0 = workers.to_vec();
        for worker in workers {
            if limited.1.contains(worker) {
                continue;
            }
            let Some(limits) = self.node.options(worker).as_ref().and_then(Limits::of) else {
                continue;
            };
            limited.1.insert(worker.clone());
            let options = self.node.options(worker);
            let local = options.and_then(|o| o.get_concurrency());
            tokio::spawn(self.clone().limited_loop(worker.clone(), limits, local));
        }
    }

    /// Claims runs of one limited worker, as many as the limits and this
    /// node have room for, in batches (a claim a run would be a commit a
    /// run).
    ///
    /// A worker with a concurrency limit (`global_concurrency`,
    /// `key_concurrency`) is claimed only with a free slot of this node to
    /// start each run in, taken first, and never past its own
    /// `concurrency` here: a claimed run holds a cluster-wide slot, which
    /// must not wait here while another node could use it. A worker
    /// limited by rates only is claimed ahead as the others are (a start
    /// is its claim).
    async fn limited_loop(self: Arc<Self>, worker: String, limits: Limits, local: Option<usize>) {
        let lease_ms = self.config.lease.as_secs_f64() * 1e3;
        let stopped = Arc::new(Stopped {
            releases: limits.holds_slots(),
            ..Stopped::default()
        });
        while let Err(err) = limits::prepare(&self.pool, &self.sql, &worker, &limits).await {
            log::warn!(target: "worker_postgres", "can't prepare the rate of limited worker '{worker}': {err}; trying again shortly");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = self.stop.wait() => return,
            }
        }
        let slotted = limits.holds_slots();
        let most = local
            .unwrap_or(self.config.concurrency)
            .min(self.config.concurrency)
            .min(CLAIM_BATCH);
        let batch = (most / 4).max(1);
        let mut waiting_since: Option<Instant> = None;
        let mut tokens_freed = Instant::now();
        while !self.is_stopping() {
            if tokens_freed.elapsed() >= KEY_TOKENS_EVERY {
                tokens_freed = Instant::now();
                if let Err(err) =
                    limits::free_key_tokens(&self.pool, &self.sql, &worker, &limits).await
                {
                    log::debug!(target: "worker_postgres", "can't drop the free key tokens of '{worker}': {err}");
                }
            }
            let busy = stopped.executing.load(Ordering::Acquire);
            // The room: free slots of this node to start in (taken now),
            // or, without a concurrency limit, room to hold runs.
            let mut permits = Vec::new();
            let room = if slotted {
                let want = most.saturating_sub(busy);
                while permits.len() < want {
                    match self.slots.clone().try_acquire_owned() {
                        Ok(permit) => permits.push(permit),
                        Err(_) => break,
                    }
                }
                permits.len()
            } else {
                self.hold_limit()
                    .saturating_sub(self.leases.len())
                    .min(CLAIM_BATCH)
            };
            // Wait for a batch's worth of room (a slotted worker: all its
            // room, since its runs' slots turn over once a claim), for at
            // most BATCH_WAIT from the first look: a claim a run or two
            // would be a commit a run or two.
            let enough = if slotted { most } else { batch };
            let patient = waiting_since.is_none_or(|since| since.elapsed() < BATCH_WAIT);
            if room == 0 || (room < enough && busy > 0 && patient) {
                drop(permits);
                let since = *waiting_since.get_or_insert_with(Instant::now);
                let wait = if room == 0 {
                    LIMITED_POLL
                } else {
                    BATCH_WAIT.saturating_sub(since.elapsed())
                };
                tokio::select! {
                    () = stopped.notify.notified() => {}
                    () = self.room_freed.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = self.stop.wait() => {}
                }
                continue;
            }
            waiting_since = None;
            let room = if slotted { permits.len() } else { room };
            let listening = self.bus.limited.notified();
            let sent = Instant::now();
            let releasing = stopped.take();
            let claimed: Vec<ClaimRow> = match limits::claim(
                &self.pool, &self.sql, &worker, &self.name, lease_ms, room, &limits, &releasing,
            )
            .await
            {
                Ok(claimed) => claimed,
                Err(err) => {
                    log::warn!(target: "worker_postgres", "can't claim runs of limited worker '{worker}': {err}; trying again shortly");
                    stopped.put_back(releasing);
                    drop(permits);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let full = claimed.len() == room;
            let mut claimed: Vec<Claimed> = claimed.into_iter().map(Claimed::from).collect();
            claimed.sort_by_key(|run| (std::cmp::Reverse(run.priority), run.run_at));
            let mut in_order = Vec::with_capacity(claimed.len());
            for run in claimed {
                if !self.leases.hold(run.id, run.token, sent) {
                    let executor = self.clone();
                    tokio::spawn(async move { executor.release(&run, 250.0, None).await });
                    continue;
                }
                stopped.executing.fetch_add(1, Ordering::AcqRel);
                in_order.push((run, permits.pop()));
            }
            drop(permits);
            if !in_order.is_empty() {
                let (executor, stopped) = (self.clone(), stopped.clone());
                tokio::spawn(async move {
                    for (run, permit) in in_order {
                        let permit = match permit {
                            Some(permit) => permit,
                            None => match executor.slots.clone().acquire_owned().await {
                                Ok(permit) => permit,
                                Err(_) => return,
                            },
                        };
                        tokio::spawn(executor.clone().execute(run, permit, Some(stopped.clone())));
                    }
                });
            }
            if full {
                continue;
            }
            // Held back by a limit (look again when a run ends anywhere,
            // or shortly), or nothing due (look when runs are queued, or
            // when the next delayed one is due).
            let wait = match limits::next_due_ms(&self.pool, &self.sql, &worker).await {
                Ok(Some(ms)) if ms > 0.0 => Duration::from_secs_f64(ms / 1e3).min(bus::BACKSTOP),
                Ok(Some(_)) => LIMITED_POLL,
                Ok(None) => bus::BACKSTOP,
                Err(_) => Duration::from_millis(500),
            };
            tokio::select! {
                () = listening => {}
                () = stopped.notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = self.stop.wait() => {}
            }
        }
    }

    /// How many runs this node holds at most: those executing, those
    /// claimed ahead waiting for a slot, and those whose ending is being
    /// written (see `ahead`).
    fn hold_limit(&self) -> usize {
        self.ahead.hold_limit()
    }

    /// Claims due runs while there is room, waiting for a notification,
    /// room, the next delayed run or the backstop in between.
    async fn claim_loop(self: Arc<Self>) {
        let lease_ms = self.config.lease.as_secs_f64() * 1e3;
        // Under load, wait for a batch's worth of room (or a moment) rather
        // than claim one run per statement.
        let batch = (self.config.concurrency / 4).max(1);
        while !self.is_stopping() {
            let held = self.leases.len();
            let room = self.hold_limit().saturating_sub(held).min(CLAIM_BATCH);
            if room == 0 || (room < batch && held > 0) {
                tokio::select! {
                    () = self.room_freed.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(2)), if room > 0 => {}
                    () = self.stop.wait() => {}
                }
                if room == 0 {
                    continue;
                }
            }
            let room = self
                .hold_limit()
                .saturating_sub(self.leases.len())
                .min(CLAIM_BATCH);
            if room == 0 {
                continue;
            }
            let workers = self.node.workers();
            self.claim_limited_workers(&workers);
            // The leases are set by the database's now(), which can't be
            // earlier than this.
            let sent = Instant::now();
            let from = self.bus.cursor.begin();
            let claimed = async {
                let mut tx = self.pool.begin().await?;
                sqlx::raw_sql(INDEXES_ONLY).execute(&mut *tx).await?;
                let claimed: Vec<ClaimRow> = sqlx::query_as(self.sql.claim.clone())
                    .persistent(false)
                    .bind(&self.name)
                    .bind(lease_ms)
                    .bind(&workers)
                    .bind(room as i64)
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(claimed)
            }
            .await;
            let latest = claimed
                .as_ref()
                .ok()
                .and_then(|rows| rows.iter().filter_map(|row| row.8).max());
            self.bus.cursor.end(from, latest, sent);
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(err) => {
                    log::warn!(target: "worker_postgres", "can't claim runs: {err}; trying again shortly");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let full = claimed.len() == room;
            let took = sent.elapsed();
            if took > self.leases.margin() && !claimed.is_empty() {
                log::warn!(
                    target: "worker_postgres",
                    "claiming {} run(s) took {} ms of their {} ms lease",
                    claimed.len(),
                    took.as_millis(),
                    self.config.lease.as_millis()
                );
            }
            // Started in the claim's order (priority, then `run_at`): one
            // task takes the slots for the batch in turn, as the rows come
            // back in no particular order and tasks first run in no
            // particular order either.
            let mut claimed: Vec<Claimed> = claimed.into_iter().map(Claimed::from).collect();
            claimed.sort_by_key(|run| (std::cmp::Reverse(run.priority), run.run_at));
            let mut in_order = Vec::with_capacity(claimed.len());
            for run in claimed {
                // Held (and its lease renewed) from now on.
                if self.leases.hold(run.id, run.token, sent) {
                    in_order.push(run);
                } else {
                    // An earlier attempt of it still runs here, stopping:
                    // the run waits a moment, for any node.
                    let executor = self.clone();
                    tokio::spawn(async move { executor.release(&run, 250.0, None).await });
                }
            }
            if !in_order.is_empty() {
                let executor = self.clone();
                tokio::spawn(async move {
                    for run in in_order {
                        let Ok(permit) = executor.slots.clone().acquire_owned().await else {
                            return;
                        };
                        tokio::spawn(executor.clone().execute(run, permit, None));
                    }
                });
            }
            if full {
                continue;
            }
            let wait = self.next_due(&workers, self.bus.cursor.position()).await;
            tokio::select! {
                () = self.bus.queued.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = self.stop.wait() => {}
            }
        }
    }

    /// How long until the next delayed run of these workers queued from
    /// `from` on is due, at most the backstop.
    async fn next_due(&self, workers: &[String], from: cursor::From) -> Duration {
        let due: std::result::Result<Option<f64>, _> =
            sqlx::query_scalar(self.sql.next_due.clone())
                .persistent(false)
                .bind(workers)
                .bind(from)
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
    async fn execute(
        self: Arc<Self>,
        run: Claimed,
        permit: tokio::sync::OwnedSemaphorePermit,
        stopped: Option<Arc<Stopped>>,
    ) {
        let ending = if self.is_stopping() {
            // Claimed ahead, never started: straight back to the queue.
            self.release(&run, 0.0, None).await
        } else if let Err(why) = self.leases.may_start(run.id) {
            // Its lease may lapse under it (renewal is late: this process
            // is starved or cut off) or has gone to another node: it must
            // not start here. Handed back as it is, same attempt; if the
            // lease has lapsed already, the fenced release changes nothing
            // and the reaper requeues it.
            self.refuse_start(&run, why);
            match why {
                Unsafe::Lost => None,
                Unsafe::Lapsing { .. } => self.release(&run, 0.0, None).await,
            }
        } else {
            self.attempt(&run).await
        };
        drop(permit);
        if let Some(stopped) = stopped {
            stopped.stop(run.id, run.token);
        }
        if let Some(recorded) = ending
            && let Ok(false) = recorded.await
        {
            events::ending_refused(&run.worker, run.id);
        }
        self.leases.let_go(run.id, run.token);
        self.ahead.ended();
        self.room_freed.notify_one();
    }

    fn refuse_start(&self, run: &Claimed, why: Unsafe) {
        let left = match why {
            Unsafe::Lost => None,
            Unsafe::Lapsing { left } => Some(left),
        };
        events::start_refused(
            &run.worker,
            run.id,
            &self.name,
            left,
            self.config.lease,
            self.leases.period(),
        );
    }

    /// Executes the attempt here and queues its ending; `None` if the lease
    /// was lost meanwhile (then nothing about it may be written).
    async fn attempt(&self, run: &Claimed) -> Option<oneshot::Receiver<bool>> {
        let started = Instant::now();
        let run_id = RunId::from(run.id);
        let claimed = ClaimedRun {
            run_id,
            worker: run.worker.clone(),
            payload: run.payload.clone(),
            attempt: u32::try_from(run.attempt).unwrap_or(1),
            priority: run.priority,
            timeout: run
                .timeout_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            step: run.step.clone(),
        };
        let result = match self.node.execute(claimed) {
            Ok(mut handle) => {
                // Asked to stop before we started: stop at once.
                if run.cancel_requested || self.is_stopping() {
                    tokio::spawn(self.node.cancel_local(run_id));
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
        if self.leases.is_lost(run.id) {
            events::lease_lost(&run.worker, run.id);
            return None;
        }
        let took = started.elapsed().as_secs_f64() * 1e3;
        self.record(run, result, took).await
    }

    /// Gives a run back to the queue, due again after `delay_ms`;
    /// `ran_ms` if it had started.
    async fn release(
        &self,
        run: &Claimed,
        delay_ms: f64,
        ran_ms: Option<f64>,
    ) -> Option<oneshot::Receiver<bool>> {
        let (done, recorded) = oneshot::channel();
        let item = Item::Release {
            run: run.id,
            token: run.token,
            delay_ms,
            ran_ms,
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
                    outcome: Outcome::Succeeded,
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
                    ran_ms: Some(took_ms),
                    done,
                }
            }
            // The worker's own queue here is full (`queue_limit`): not the
            // run's failure; it waits a moment and any node may take it.
            Err(error) if error.is_overloaded() => Item::Release {
                run: run.id,
                token: run.token,
                delay_ms: 250.0,
                ran_ms: None,
                done,
            },
            Err(error) => {
                let jitter = (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64;
                let delay = self.node.options(&run.worker).and_then(|o| {
                    o.retry_delay(u32::try_from(run.attempt).unwrap_or(1), &error, jitter)
                });
                let ending = Ending {
                    outcome: Outcome::of(&error),
                    kind: Some(error.kind()),
                    error: Some(error.detail()),
                    output: None,
                    duration_ms: took_ms,
                };
                match delay {
                    Some(delay) => Item::Retry {
                        run: run.id,
                        token: run.token,
                        delay_ms: delay.as_secs_f64() * 1e3,
                        ending,
                        done,
                    },
                    None => Item::Finish {
                        run: run.id,
                        token: run.token,
                        ending,
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
            .persistent(false)
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
                () = self.stop.wait() => return,
            }
            for run in self.bus.take_cancels() {
                if self.leases.holds(run) {
                    tokio::spawn(self.node.cancel_local(RunId::from(run)));
                }
            }
        }
    }

    /// Acts on a renewal pass: runs whose lease is lost and runs asked to
    /// stop are stopped here.
    fn renewed(&self, renewed: Renewed) {
        for id in renewed.lost.into_iter().chain(renewed.cancel) {
            tokio::spawn(self.node.cancel_local(RunId::from(id)));
        }
    }

    /// Stops claiming; stops the runs in flight (each gets the grace
    /// period); what they didn't finish goes back to the queue; waits until
    /// all of it is written.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.stop.set();
        let running: Vec<Uuid> = self.leases.ids();
        for &id in &running {
            tokio::spawn(self.node.cancel_local(RunId::from(id)));
        }
        // Each run ends within the grace period; then its ending is written.
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let notified = self.leases.emptied.notified();
            if self.leases.is_empty() || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        let (flushed, written) = oneshot::channel();
        if self.outbox.send(Item::Flush(flushed)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), written).await;
        }
        if let Some(renewal) = self
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            renewal.abort();
        }
        let _ = sqlx::query(self.sql.node_gone.clone())
            .bind(&self.name)
            .execute(&self.pool)
            .await;
    }
}

/// A limited worker's runs on this node, as its claimer sees them: how
/// many execute, and those that stopped executing since its last claim,
/// whose slots its next claim releases.
#[derive(Debug, Default)]
struct Stopped {
    /// Whether the worker's runs hold slots to release (else only the
    /// count and the wake-up are kept).
    releases: bool,
    executing: AtomicUsize,
    runs: Mutex<Vec<(Uuid, Uuid)>>,
    /// A run stopped: the claimer may claim again.
    notify: Notify,
}

impl Stopped {
    /// Run `id` (lease `token`) stopped executing here: its local slot is
    /// free now, its cluster slot at the next claim.
    fn stop(&self, id: Uuid, token: Uuid) {
        if self.releases {
            self.lock().push((id, token));
        }
        self.executing.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<(Uuid, Uuid)> {
        std::mem::take(&mut *self.lock())
    }

    /// A claim that failed releases nothing: the next one will.
    fn put_back(&self, runs: Vec<(Uuid, Uuid)>) {
        self.lock().extend(runs);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Uuid, Uuid)>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
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
    priority: i32,
    /// Its `run_at`, in epoch microseconds.
    run_at: i64,
    /// For a workflow's step: the workflow, the step and its parents'
    /// outputs.
    step: Option<ClaimedStep>,
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
    // Its `run_at`, in epoch microseconds (for the cursor), for a run of
    // priority 0: the others are read from the front.
    Option<i64>,
    // Its priority, and its `run_at` whatever the priority.
    i32,
    i64,
    // A workflow's step: the workflow, the step, its parents' outputs.
    Option<Uuid>,
    Option<String>,
    Option<Value>,
);

impl From<ClaimRow> for Claimed {
    fn from(row: ClaimRow) -> Self {
        let (
            id,
            worker,
            payload,
            attempt,
            timeout_ms,
            token,
            next_seq,
            cancel_requested,
            _,
            priority,
            run_at,
            workflow_id,
            step,
            inputs,
        ) = row;
        let step = match (workflow_id, step) {
            (Some(workflow_id), Some(name)) => Some(ClaimedStep {
                workflow_id: WorkflowId::from(workflow_id),
                name,
                inputs: inputs.unwrap_or_else(|| Value::Object(Default::default())),
            }),
            _ => None,
        };
        Claimed {
            id,
            worker,
            payload,
            attempt,
            timeout_ms,
            token,
            next_seq,
            cancel_requested,
            priority,
            run_at,
            step,
        }
    }
}

/// This process's name among the nodes: `host:pid:xxxx`, the tag telling
/// a restart with a reused pid apart.
fn node_name() -> String {
    let tag = Uuid::new_v4().simple().to_string();
    format!("{}:{}", worker_core::process_name(), &tag[..4])
}
