//! A backend's settings, as `Postgres`'s builder methods set them and
//! every part of the started backend reads them.

use std::time::Duration;

/// A backend's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) execute: bool,
    pub(crate) concurrency: usize,
    pub(crate) retention: Duration,
    pub(crate) max_stalls: u32,
    /// `None`: [`Config::default_pool_size`].
    pub(crate) pool_size: Option<u32>,
    /// The application's own pool, used instead of connecting to `url`.
    pub(crate) pool: Option<sqlx::PgPool>,
    /// How long a client operation waits for a pooled connection.
    pub(crate) acquire_timeout: Duration,
}

impl Config {
    /// The pool's size unless set: a quarter of the concurrency, between 4
    /// and 32 (16 at the default concurrency of 64).
    pub(crate) fn default_pool_size(&self) -> u32 {
        (u32::try_from(self.concurrency / 4).unwrap_or(u32::MAX)).clamp(4, 32)
    }

    /// How long PostgreSQL lets one of the backend's sessions sit idle in
    /// a transaction before it ends the session (and the transaction).
    ///
    /// Why: a node stopped (SIGSTOP, a frozen VM) between two statements
    /// of a transaction keeps that transaction's locks for as long as it
    /// is stopped. Its ending of a workflow's step holds the workflow's
    /// row; a limited claim holds the worker's lock; a lane's clearing
    /// holds the lane. Every other node would wait for them. The node's
    /// own transactions never idle between statements for long, and one
    /// idle for twice its lease belongs to a node whose runs are already
    /// being taken back: what it was writing is rolled back, and written
    /// again (fenced) if the node wakes.
    pub(crate) fn idle_in_transaction_timeout(&self) -> Duration {
        (self.lease * 2).max(Duration::from_secs(1))
    }
}
