//! The process's one `LISTEN` connection, and who it wakes.
//!
//! Notifications on the schema's channel are short texts, a [`Note`]'s
//! letter and what it is about, sent with [`notify`]. Handles wait on a
//! watch per run
//! id, created by the first handle on that run and removed with the last;
//! the claim loop and the executor have their own wake-ups.
//!
//! A notification can be lost (the connection dropped while it was sent),
//! so every watch is also woken when the listener reconnects, and every
//! [`BACKSTOP`] anyway: a handle then looks at the database once more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::cursor::{self, Cursor};
use crate::sql::Sql;

/// How often every waiting handle looks again without a notification.
pub(crate) const BACKSTOP: Duration = Duration::from_secs(2);

/// Most run ids in one notification: payloads must stay under 8,000 bytes.
pub(crate) const IDS_PER_NOTIFICATION: usize = 150;

/// What a notification tells: its first word, a letter spelled here (and
/// in `cursor::QUEUED_AT`, which writes `q` in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// `q <micros>`: runs were queued, none earlier than that (see
    /// `cursor`).
    Queued,
    /// `m <id> …`: runs have new messages.
    Messages,
    /// `e <id> …`: runs ended.
    Ended,
    /// `c <id> …`: runs were asked to stop.
    Cancel,
}

impl Note {
    fn letter(self) -> &'static str {
        match self {
            Note::Queued => "q",
            Note::Messages => "m",
            Note::Ended => "e",
            Note::Cancel => "c",
        }
    }

    fn of(letter: &str) -> Option<Note> {
        [Note::Queued, Note::Messages, Note::Ended, Note::Cancel]
            .into_iter()
            .find(|note| note.letter() == letter)
    }
}

/// Who is woken by what.
#[derive(Debug, Default)]
pub(crate) struct Bus {
    watches: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    /// Runs were queued (or leases lapsed): claimers look.
    pub(crate) queued: Notify,
    /// Runs were queued or ended somewhere: the claimers of limited
    /// workers look (an ending may have freed a slot of theirs). Woken
    /// with `notify_waiters`: each waiting limited claimer looks once.
    pub(crate) limited: Notify,
    /// Where this node's claims read from; queued runs rewind it.
    pub(crate) cursor: Cursor,
    /// Runs asked to stop, for the executor.
    cancels: Mutex<Vec<Uuid>>,
    pub(crate) cancel_requested: Notify,
}

impl Bus {
    fn watches(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<u64>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A watch on `run`: changes whenever the run may have new messages or
    /// have ended. Drop it with [`Bus::unwatch`].
    pub(crate) fn watch(&self, run: Uuid) -> watch::Receiver<u64> {
        self.watches()
            .entry(run)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Lets go of a watch; the run's entry goes with its last watcher.
    pub(crate) fn unwatch(&self, run: Uuid, receiver: watch::Receiver<u64>) {
        drop(receiver);
        let mut watches = self.watches();
        if watches
            .get(&run)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            watches.remove(&run);
        }
    }

    /// How many runs are watched (for tests of the bound).
    pub(crate) fn watched(&self) -> usize {
        self.watches().len()
    }

    fn wake(&self, run: &Uuid) {
        if let Some(sender) = self.watches().get(run) {
            sender.send_modify(|version| *version += 1);
        }
    }

    /// After a reconnect: whatever was sent meanwhile is lost, so claims
    /// read from the front and every handle looks again.
    pub(crate) fn reconnected(&self) {
        self.cursor.rewind(None);
        self.wake_all();
    }

    /// Wakes every handle: the backstop.
    pub(crate) fn wake_all(&self) {
        for sender in self.watches().values() {
            sender.send_modify(|version| *version += 1);
        }
        self.queued.notify_one();
        self.limited.notify_waiters();
        self.cancel_requested.notify_one();
    }

    /// The runs asked to stop since the last call.
    pub(crate) fn take_cancels(&self) -> Vec<Uuid> {
        std::mem::take(&mut *self.cancels.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Acts on one notification's payload.
    pub(crate) fn dispatch(&self, payload: &str) {
        let (kind, rest) = match payload.split_once(' ') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (payload, None),
        };
        let ids = rest
            .unwrap_or("")
            .split(' ')
            .filter_map(|id| Uuid::try_parse(id).ok());
        match Note::of(kind) {
            Some(Note::Queued) => {
                self.cursor.rewind(cursor::queued_from(rest));
                self.queued.notify_one();
                self.limited.notify_waiters();
            }
            Some(Note::Ended) => {
                ids.for_each(|id| self.wake(&id));
                self.limited.notify_waiters();
            }
            Some(Note::Messages) => ids.for_each(|id| self.wake(&id)),
            Some(Note::Cancel) => {
                self.cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(ids);
                self.cancel_requested.notify_one();
            }
            None => log::debug!(target: "worker_postgres", "unknown notification {payload:?}"),
        }
    }
}

/// Tells every node's listener `note` about `ids` (in a transaction: once
/// it commits), in as few notifications as the size limit allows.
/// [`Note::Queued`] is about no ids: the database's clock says since when.
pub(crate) async fn notify(
    conn: &mut PgConnection,
    sql: &Sql,
    note: Note,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if note == Note::Queued {
        sqlx::query(sql.notify_queued.clone())
            .bind(&sql.channel)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    for payload in payloads(note, ids) {
        sqlx::query(sql.notify.clone())
            .bind(&sql.channel)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The texts to notify about `ids`, as few as the size limit allows.
fn payloads(note: Note, ids: &[Uuid]) -> Vec<String> {
    ids.chunks(IDS_PER_NOTIFICATION)
        .map(|chunk| {
            let mut text = String::with_capacity(2 + chunk.len() * 37);
            text.push_str(note.letter());
            for id in chunk {
                text.push(' ');
                text.push_str(&id.hyphenated().to_string());
            }
            text
        })
        .collect()
}

/// Listens until the process stops: dispatches notifications, reconnects
/// by itself, and wakes everyone on reconnect and every [`BACKSTOP`].
pub(crate) async fn listen(pool: PgPool, channel: String, bus: Arc<Bus>) {
    let mut listener: Option<PgListener> = None;
    let mut backstop = tokio::time::interval(BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(active) = listener.as_mut() else {
            match connect(&pool, &channel).await {
                Ok(connected) => {
                    listener = Some(connected);
                    bus.reconnected();
                }
                Err(err) => {
                    log::warn!(target: "worker_postgres", "can't listen for notifications yet: {err}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            continue;
        };
        tokio::select! {
            received = active.try_recv() => match received {
                Ok(Some(notification)) => bus.dispatch(notification.payload()),
                // The connection dropped; sqlx reconnects on the next call.
                Ok(None) => {
                    log::warn!(target: "worker_postgres", "notification connection lost; reconnecting");
                    listener = None;
                }
                Err(err) => {
                    log::warn!(target: "worker_postgres", "notification connection failed: {err}; reconnecting");
                    listener = None;
                }
            },
            _ = backstop.tick() => bus.wake_all(),
        }
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
