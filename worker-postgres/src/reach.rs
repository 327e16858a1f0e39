//! How a client operation (a call, a cancel, a read for a handle or the
//! dashboard) reaches the database: with a pooled connection within the
//! acquire timeout, or with an [`Error::Unavailable`] that names the
//! database and says what was not done.
//!
//! Why not the pool's own timeout: while PostgreSQL refuses connections,
//! sqlx's pool retries connecting until its acquire timeout runs out and
//! then reports only "pool timed out", so a call would wait the whole
//! timeout and fail without saying why. The node's own loops keep that
//! longer, patient timeout (they retry anyway); a caller gets its answer
//! within [`Postgres::acquire_timeout`](crate::Postgres::acquire_timeout).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use worker_core::Error;

/// How long a client operation may wait for a pooled connection unless
/// set: well under a second, and far longer than a connection takes to
/// hand over from a healthy pool.
pub(crate) const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a client operation keeps waiting, past its acquire timeout,
/// while every pooled connection is open and busy: the database is up,
/// only loaded, so the caller waits rather than fail.
const BUSY_POOL_PATIENCE: Duration = Duration::from_secs(10);

/// A pool as client operations use it.
#[derive(Clone)]
pub(crate) struct Reach {
    pool: PgPool,
    /// The database, without its password, for messages.
    shown: String,
    acquire_timeout: Duration,
}

impl Reach {
    pub(crate) fn new(pool: PgPool, shown: String, acquire_timeout: Duration) -> Reach {
        Reach {
            pool,
            shown,
            acquire_timeout,
        }
    }

    /// A connection for `what` (as in "can't {what}"), or the error that
    /// the database is unreachable, within the acquire timeout.
    pub(crate) async fn connection(
        &self,
        what: &str,
    ) -> Result<PoolConnection<sqlx::Postgres>, Error> {
        self.connection_for(what, Instant::now()).await
    }

    /// The same for an operation asked for at `asked`: the acquire timeout
    /// counts from then, so that a call that waited behind another batch
    /// doesn't wait a whole timeout more.
    pub(crate) async fn connection_for(
        &self,
        what: &str,
        asked: Instant,
    ) -> Result<PoolConnection<sqlx::Postgres>, Error> {
        let mut deadline = asked + self.acquire_timeout;
        let acquire = self.pool.acquire();
        tokio::pin!(acquire);
        loop {
            match tokio::time::timeout_at(deadline.into(), &mut acquire).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(err)) => return Err(self.error(what, err)),
                // Up, only loaded: wait on, a timeout at a time.
                Err(_) if self.busy() && asked.elapsed() < BUSY_POOL_PATIENCE => {
                    deadline = Instant::now() + self.acquire_timeout;
                }
                Err(_) => {
                    return Err(Error::unavailable(format!(
                        "PostgreSQL at {} is unreachable: can't {what}: no connection within {}, so nothing was done. Try again once the database is back",
                        self.shown,
                        worker_core::format_duration(self.acquire_timeout),
                    )));
                }
            }
        }
    }

    /// Whether every connection the pool may open is open and in use.
    fn busy(&self) -> bool {
        self.pool.num_idle() == 0
            && self.pool.size() >= self.pool.options().get_max_connections()
            && !self.pool.is_closed()
    }

    /// The error for a statement that failed on the way to the database or
    /// in it.
    pub(crate) fn error(&self, what: &str, err: sqlx::Error) -> Error {
        error(&self.shown, what, err)
    }
}

/// The error for a statement of `what` that failed: [`Error::Unavailable`]
/// when the database could not be reached or dropped the connection,
/// otherwise a plain error with PostgreSQL's own words.
pub(crate) fn error(shown: &str, what: &str, err: sqlx::Error) -> Error {
    if lost_connection(&err) {
        Error::unavailable(format!(
            "PostgreSQL at {shown} is unreachable: can't {what}: {err}. Try again once the database is back"
        ))
    } else {
        Error::msg(format!("PostgreSQL at {shown}: can't {what}: {err}"))
    }
}

/// Whether `err` means the database can't be reached (or went away), as
/// opposed to a statement it refused.
pub(crate) fn lost_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception) and 57P (operator intervention:
        // the server shutting down, or not yet accepting connections).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_unavailable_and_a_refused_statement_is_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let err = error("postgres://app@db/app", "store the run", refused);
        assert!(err.is_unavailable(), "{err}");
        assert!(
            err.to_string().starts_with(
                "PostgreSQL at postgres://app@db/app is unreachable: can't store the run"
            ),
            "{err}"
        );
        let refused_statement = sqlx::Error::RowNotFound;
        assert!(!error("db", "read", refused_statement).is_unavailable());
    }
}
