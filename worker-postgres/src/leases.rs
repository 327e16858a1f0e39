//! The leases this node holds, and their renewal.
//!
//! A node holds a run from its claim until its ending is committed: claimed
//! ahead and waiting for a slot, executing, and ended with the ending still
//! in the outbox. Another node's reaper takes any run whose lease lapsed on
//! the database's clock, so a lease that lapses on a healthy node means a
//! run executed twice. Hence:
//!
//! - Renewal has its **own connection** and its own period (a third of the
//!   lease), so it never waits for a pooled connection behind claims, the
//!   outbox, calls or slow statements. It skips rows locked by another
//!   transaction (the outbox writing their ending) instead of waiting for
//!   them, so one slow commit can't hold every other lease back. A pass
//!   that starts late is logged with how late it was.
//! - Each held run keeps a **local deadline**: the instant the statement
//!   that last set its lease was sent, plus the lease. The database's
//!   `now()` in that statement can only be later, so the deadline is never
//!   past the real one. Before a claimed-ahead run starts, the executor
//!   asks [`Leases::may_start`]: with less than [`Leases::margin`] left, the
//!   run is handed back unexecuted rather than started on a lease that may
//!   lapse under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::events;
use crate::sql::Sql;

/// One held run.
#[derive(Debug, Clone, Copy)]
struct Held {
    token: Uuid,
    /// The lease certainly holds until then (see the module's docs).
    valid_until: Instant,
    /// The database says the lease is someone else's now: nothing about
    /// the run may be written or started here any more.
    lost: bool,
}

/// Why a held run may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsafe {
    /// Another node owns it now.
    Lost,
    /// Its lease has less than the margin left (zero: it may have
    /// lapsed): renewal is late.
    Lapsing { left: Duration },
}

/// What one renewal pass found, for its caller.
#[derive(Debug, Default)]
pub(crate) struct Renewed {
    /// Runs asked to stop (a lost notification's backstop).
    pub(crate) cancel: Vec<Uuid>,
    /// Runs whose lease another node holds now.
    pub(crate) lost: Vec<Uuid>,
}

/// The runs this node holds, with their leases.
#[derive(Debug)]
pub(crate) struct Leases {
    lease: Duration,
    held: Mutex<HashMap<Uuid, Held>>,
    /// Test hook: no renewal pass starts before this instant.
    paused_until: Mutex<Option<Instant>>,
    /// The last held run was let go.
    pub(crate) emptied: Notify,
}

impl Leases {
    pub(crate) fn new(lease: Duration) -> Self {
        Leases {
            lease,
            held: Mutex::default(),
            paused_until: Mutex::default(),
            emptied: Notify::new(),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Uuid, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How often leases are renewed.
    pub(crate) fn period(&self) -> Duration {
        self.lease / 3
    }

    /// How much of its lease a claimed-ahead run must still have to start:
    /// one renewal period, so that a run starts only while renewal is at
    /// most one period late.
    pub(crate) fn margin(&self) -> Duration {
        self.lease / 3
    }

    /// Holds a run claimed by a statement sent at `sent`; `false` if an
    /// earlier attempt of it is still held here (its lease lapsed, it was
    /// reaped, and this node claimed it again before that attempt
    /// stopped): then the new claim must not start here.
    pub(crate) fn hold(&self, run: Uuid, token: Uuid, sent: Instant) -> bool {
        let mut held = self.held();
        if held.contains_key(&run) {
            return false;
        }
        held.insert(
            run,
            Held {
                token,
                valid_until: sent + self.lease,
                lost: false,
            },
        );
        true
    }

    /// Lets the attempt of `run` claimed with `token` go, once its ending
    /// is committed (or it was lost).
    pub(crate) fn let_go(&self, run: Uuid, token: Uuid) {
        let emptied = {
            let mut held = self.held();
            if held.get(&run).is_some_and(|h| h.token == token) {
                held.remove(&run);
            }
            held.is_empty()
        };
        if emptied {
            self.emptied.notify_waiters();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.held().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held().is_empty()
    }

    pub(crate) fn holds(&self, run: Uuid) -> bool {
        self.held().contains_key(&run)
    }

    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.held().keys().copied().collect()
    }

    /// Whether the lease of `run` was lost to another node.
    pub(crate) fn is_lost(&self, run: Uuid) -> bool {
        self.held().get(&run).is_some_and(|h| h.lost)
    }

    /// Whether `run` may start now: held, not lost, and with at least the
    /// margin of its lease left.
    pub(crate) fn may_start(&self, run: Uuid) -> Result<(), Unsafe> {
        let Some(held) = self.held().get(&run).copied() else {
            return Err(Unsafe::Lost);
        };
        if held.lost {
            return Err(Unsafe::Lost);
        }
        let now = Instant::now();
        let left = held.valid_until.saturating_duration_since(now);
        if left < self.margin() {
            return Err(Unsafe::Lapsing { left });
        }
        Ok(())
    }

    /// Test hook: no renewal pass starts for `pause`.
    pub(crate) fn pause_renewals(&self, pause: Duration) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + pause);
    }

    fn paused_until(&self) -> Option<Instant> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_some_and(|until| until <= Instant::now()) {
            *paused = None;
        }
        *paused
    }

    /// One renewal pass on `conn`, sent at `sent`.
    async fn renew(
        &self,
        conn: &mut PgConnection,
        sql: &Sql,
        sent: Instant,
    ) -> Result<Renewed, sqlx::Error> {
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = self
            .held()
            .iter()
            .filter(|(_, held)| !held.lost)
            .map(|(id, held)| (*id, held.token))
            .unzip();
        if ids.is_empty() {
            return Ok(Renewed::default());
        }
        // (id, renewed, asked to stop, still ours)
        let rows: Vec<(Uuid, bool, bool, bool)> = sqlx::query_as(sql.renew.clone())
            .bind(&ids)
            .bind(&tokens)
            .bind(self.lease.as_secs_f64() * 1e3)
            .fetch_all(&mut *conn)
            .await?;
        let mut found = Renewed::default();
        let mut held = self.held();
        for (id, renewed, cancel_requested, ours) in rows {
            let Some(run) = held.get_mut(&id) else {
                continue; // its ending was committed meanwhile
            };
            if renewed {
                run.valid_until = sent + self.lease;
                if cancel_requested {
                    found.cancel.push(id);
                }
            } else if !ours {
                // Ended by our own outbox meanwhile, or reaped: only the
                // latter is still held once the outbox has answered, and
                // marking an ended run lost changes nothing.
                run.lost = true;
                found.lost.push(id);
            }
            // Neither: locked by a transaction in progress (our outbox
            // writing its ending, a cancel): renewed on the next pass.
        }
        Ok(found)
    }
}

/// Opens renewal's own connection (with the pool's settings) and prepares
/// its statement: done before the node claims anything, so that the first
/// pass after a cold start pays for neither while leases run.
pub(crate) async fn connect(pool: &PgPool, sql: &Sql) -> Result<PgConnection, sqlx::Error> {
    // Indexes only, for the whole session (see `sql::INDEXES_ONLY`): the
    // statement is prepared once, and its plan must hold as lanes fill.
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("enable_seqscan", "off"), ("jit", "off")]);
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::query(sql.renew.clone())
        .bind(Vec::<Uuid>::new())
        .bind(Vec::<Uuid>::new())
        .bind(0.0_f64)
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Renews this node's leases every period on `conn` (reconnecting when it
/// fails), until the task is aborted; hands what each pass finds to
/// `found`. It outlives the claim loop: runs finishing during a shutdown
/// still need their leases.
pub(crate) async fn renew_loop(
    leases: Arc<Leases>,
    conn: PgConnection,
    pool: PgPool,
    sql: Arc<Sql>,
    found: impl Fn(Renewed),
) {
    let period = leases.period();
    let mut conn = Some(conn);
    let mut due = Instant::now() + period;
    loop {
        tokio::time::sleep_until(due.into()).await;
        // The test hook: as a process too starved to run this task would,
        // it comes back late, and says so.
        if let Some(until) = leases.paused_until() {
            tokio::time::sleep_until(until.into()).await;
        }
        let sent = Instant::now();
        let late = sent.saturating_duration_since(due);
        if late > period / 2 {
            events::renewal_late(late, period, leases.lease);
        }
        due = sent + period;
        if leases.is_empty() {
            continue;
        }
        // Whatever happens, a pass must not outlive the leases it renews.
        let pass = tokio::time::timeout(leases.lease * 2 / 3, async {
            if conn.is_none() {
                conn = Some(connect(&pool, &sql).await?);
            }
            let conn = conn.as_mut().expect("connected above");
            leases.renew(conn, &sql, sent).await
        })
        .await;
        match pass {
            Ok(Ok(renewed)) => found(renewed),
            Ok(Err(err)) => {
                log::warn!(target: "worker_postgres", "can't renew leases: {err}; reconnecting");
                conn = None;
            }
            Err(_) => {
                log::warn!(
                    target: "worker_postgres",
                    "a lease renewal took over {} ms; reconnecting",
                    (leases.lease * 2 / 3).as_millis()
                );
                conn = None;
            }
        }
    }
}
