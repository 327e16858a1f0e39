//! The one error type of the crate: every way a registration, a call or a run
//! can fail, with a predicate for each kind a caller branches on.

use std::fmt;
use std::time::Duration;

use crate::duration::format_duration;

/// `Result<T, worker_core::Error>`, the return type of workers and of every
/// fallible call in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Its `Display` is a sentence a person can act on, naming
/// the worker, the run or the file involved.
///
/// ```
/// use worker_core::Error;
///
/// let err = Error::validation("'to' address required");
/// assert!(err.is_validation());
/// assert_eq!(err.to_string(), "'to' address required");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a payload that doesn't fit, a field out of range.
    #[error("{0}")]
    Validation(String),

    /// A deadline passed: the run's timeout, or one the worker reports.
    #[error("{0}")]
    Timeout(String),

    /// The run was cancelled (by id, by its handle, or by shutdown) before it
    /// finished.
    #[error("Worker '{worker}' run {run_id} was cancelled")]
    Cancelled {
        /// The worker's name.
        worker: String,
        /// The cancelled run.
        run_id: String,
    },

    /// The worker panicked; the panic was caught and the run failed.
    #[error("Worker '{worker}' panicked: {message}")]
    Panic {
        /// The worker's name.
        worker: String,
        /// The panic's message.
        message: String,
    },

    /// The run's node died or lost its lease on its last attempt, and it
    /// had been run again after a crash as often as its backend allows
    /// (durable mode only).
    #[error(
        "Worker '{worker}' run {run_id} stalled: the node running it died or lost its lease, {starts} starts in a row; it is not run again"
    )]
    Stalled {
        /// The worker's name.
        worker: String,
        /// The run.
        run_id: String,
        /// How many times it was started.
        starts: u32,
    },

    /// No worker of that name is registered.
    #[error("Worker '{0}' not registered")]
    NotRegistered(String),

    /// A worker of that name is registered already.
    #[error("Worker '{name}' is already registered{}", .existing.as_deref().map(|at| format!(" (declared at {at})")).unwrap_or_default())]
    AlreadyRegistered {
        /// The name.
        name: String,
        /// Where the registered one was declared, for a `#[worker]` fn.
        existing: Option<String>,
    },

    /// The same worker name is declared by two `#[worker]` fns.
    #[error("Worker '{name}' is declared twice: at {first} and at {second}; rename one of them")]
    DuplicateDeclaration {
        /// The name.
        name: String,
        /// `file:line` of one declaration.
        first: String,
        /// `file:line` of the other.
        second: String,
    },

    /// A worker name that can't be used.
    #[error("invalid worker name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `cancel` was given a run id that is not in flight.
    #[error("Run '{0}' is not running: it is unknown or has already finished")]
    RunNotFound(String),

    /// The manager is shutting down or shut down; no new runs start.
    #[error("Worker manager is shut down: no new runs are accepted")]
    Shutdown,

    /// One or more discovered worker files failed their `install()`.
    #[error("{} worker file(s) failed to install:{}", .0.len(), .0.iter().map(|f| format!("\n  {}: {}", f.file, f.error)).collect::<String>())]
    Install(Vec<InstallFailure>),

    /// A configuration file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A failure that retrying can't fix: never retried.
    #[error("{0}")]
    Permanent(String),

    /// A failure to retry after exactly `delay` (it still uses up a retry).
    #[error("{message}")]
    RetryAfter {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// What went wrong.
        message: String,
    },

    /// The worker's concurrency queue is full (`queue_limit`): the call was
    /// refused and nothing started.
    #[error(
        "Worker '{worker}' is overloaded: {waiting} runs already wait for one of its concurrency slots (queue_limit); try again later"
    )]
    Overloaded {
        /// The worker's name.
        worker: String,
        /// How many runs were waiting.
        waiting: usize,
    },

    /// A call with a key and [`Duplicate::Reject`](crate::Duplicate::Reject)
    /// found a run with that key queued, scheduled or running: nothing was
    /// stored. See [`Error::is_duplicate`].
    #[error(
        "Worker '{worker}' already has run {run_id} with key '{key}' (queued, scheduled or running); the call was rejected (Duplicate::Reject)"
    )]
    Duplicate {
        /// The worker's name.
        worker: String,
        /// The key.
        key: String,
        /// The existing run's id.
        run_id: String,
    },

    /// The backend's database can't be reached (durable mode): the
    /// connection was refused, dropped, or not had in time. Nothing the
    /// call was to store was stored, so it is safe to try again once the
    /// database is back. See [`Error::is_unavailable`].
    #[error("{0}")]
    Unavailable(String),

    /// `await_output::<T>()` asked for a type the run's output doesn't fit.
    #[error("the output of worker '{worker}' is not the requested type: {reason}")]
    OutputMismatch {
        /// The worker's name.
        worker: String,
        /// serde's reason.
        reason: String,
    },

    /// `ctx.parent_output::<T>()` asked for a type the parent step's output
    /// doesn't fit.
    #[error("the output of step '{step}' (worker '{worker}') is not the requested type: {reason}")]
    StepOutputMismatch {
        /// The parent step.
        step: String,
        /// The worker it ran.
        worker: String,
        /// serde's reason.
        reason: String,
    },

    /// A workflow failed: one of its steps failed for good (after its own
    /// retries). The step's error is inside, and the predicates
    /// (`is_timeout`, `is_panic`, …) answer for it.
    #[error("workflow '{workflow}' failed at step '{step}': {error}")]
    Step {
        /// The workflow's name.
        workflow: String,
        /// The step that failed.
        step: String,
        /// The step's error.
        error: Box<Error>,
    },

    /// A workflow was cancelled before all its steps ended.
    #[error("workflow '{workflow}' {id} was cancelled")]
    WorkflowCancelled {
        /// The workflow's name.
        workflow: String,
        /// Its id.
        id: String,
    },

    /// An I/O error, e.g. from `tokio::fs` inside a worker.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// A JSON error, e.g. from `serde_json::from_value` inside a worker.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// Any other error, wrapped with [`Error::other`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A caught panic's message.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// One file whose `install()` failed, inside [`Error::Install`].
#[derive(Debug)]
pub struct InstallFailure {
    /// The file, as `src/workers/email.rs`.
    pub file: String,
    /// What its `install()` returned.
    pub error: Error,
}

impl Error {
    /// Bad input: `Error::validation("'to' address required")`.
    pub fn validation(message: impl Into<String>) -> Self {
        Error::Validation(message.into())
    }

    /// A deadline passed: `Error::timeout("External API timeout")`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::Timeout(message.into())
    }

    /// Wraps any error, keeping it as the [`source`](std::error::Error::source).
    ///
    /// ```
    /// use worker_core::Error;
    ///
    /// let parse = "x".parse::<u32>().unwrap_err();
    /// let err = Error::other(parse);
    /// assert_eq!(err.to_string(), "invalid digit found in string");
    /// ```
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::Other(error.into())
    }

    /// An error with only a message, for failures no other kind describes.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Other(message.to_string().into())
    }

    /// The backend's database can't be reached: for backends, with a
    /// message that names the database and what could not be done.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }

    /// A caught panic, as the error of the run it ended.
    pub(crate) fn from_panic(worker: &str, panic: &(dyn std::any::Any + Send)) -> Self {
        Error::Panic {
            worker: worker.to_owned(),
            message: panic_text(panic),
        }
    }

    /// A failure that is never retried, whatever the worker's `retries`:
    /// `Error::permanent("account closed")`.
    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent(message.into())
    }

    /// A failure to retry after exactly `delay` rather than the worker's
    /// backoff, e.g. what a rate limit's `Retry-After` says. It still uses
    /// up one of the worker's retries.
    pub fn retry_after(delay: Duration, message: impl Into<String>) -> Self {
        Error::RetryAfter {
            delay,
            message: message.into(),
        }
    }

    /// Whether a run that failed with this error may be tried again (if its
    /// worker has retries left): not for bad input, a permanent failure, a
    /// cancellation, a shutdown or an overload.
    pub(crate) fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Error::Validation(_)
                | Error::Permanent(_)
                | Error::Cancelled { .. }
                | Error::Stalled { .. }
                | Error::Shutdown
                | Error::Overloaded { .. }
                | Error::StepOutputMismatch { .. }
        )
    }

    /// The exact delay an [`Error::retry_after`] asks for.
    pub(crate) fn retry_delay(&self) -> Option<Duration> {
        match self {
            Error::RetryAfter { delay, .. } => Some(*delay),
            _ => None,
        }
    }

    pub(crate) fn run_timed_out(worker: &str, after: Duration) -> Self {
        Error::Timeout(format!(
            "Worker '{worker}' timed out after {}",
            format_duration(after)
        ))
    }

    /// The payload or input was rejected.
    pub fn is_validation(&self) -> bool {
        matches!(self.root(), Error::Validation(_))
    }

    /// A timeout: the run's own, or one the worker returned.
    pub fn is_timeout(&self) -> bool {
        matches!(self.root(), Error::Timeout(_))
    }

    /// The run was cancelled before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self.root(),
            Error::Cancelled { .. } | Error::WorkflowCancelled { .. }
        )
    }

    /// The named worker is not registered.
    pub fn is_not_registered(&self) -> bool {
        matches!(self.root(), Error::NotRegistered(_))
    }

    /// The worker panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.root(), Error::Panic { .. })
    }

    /// The manager refused the call because it is shutting down.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Error::Shutdown)
    }

    /// The call was refused because the worker's `queue_limit` was reached.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, Error::Overloaded { .. })
    }

    /// The worker said retrying can't help ([`Error::permanent`]).
    pub fn is_permanent(&self) -> bool {
        matches!(self.root(), Error::Permanent(_))
    }

    /// `cancel` named a run that is not in flight.
    pub fn is_run_not_found(&self) -> bool {
        matches!(self, Error::RunNotFound(_))
    }

    /// The run's node died or lost its lease on the last attempt, past the
    /// backend's `max_stalls` (durable mode only).
    pub fn is_stalled(&self) -> bool {
        matches!(self.root(), Error::Stalled { .. })
    }

    /// The backend's database can't be reached (durable mode): nothing was
    /// stored, and the same call may be tried again later.
    ///
    /// ```
    /// use worker_core::Error;
    ///
    /// let err = Error::unavailable("PostgreSQL at postgres://app@db/app is unreachable");
    /// assert!(err.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// `true` for a call rejected because a run with its key exists
    /// ([`Duplicate::Reject`](crate::Duplicate::Reject)); the message names
    /// that run's id.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Error::Duplicate { .. })
    }

    /// The kind of a run's error, as a backend stores it: `validation`,
    /// `timeout`, `cancelled`, `panic`, `permanent`, `stalled` or `error`.
    /// [`Error::from_kind`] makes the same error back.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation",
            Error::Timeout(_) => "timeout",
            Error::Cancelled { .. } => "cancelled",
            Error::Panic { .. } => "panic",
            Error::Permanent(_) => "permanent",
            Error::Stalled { .. } => "stalled",
            _ => "error",
        }
    }

    /// The text a backend stores with [`kind`](Self::kind): the panic's own
    /// message for a panic, the whole sentence otherwise.
    pub fn detail(&self) -> String {
        match self {
            Error::Panic { message, .. } => message.clone(),
            Error::Stalled { starts, .. } => starts.to_string(),
            other => other.to_string(),
        }
    }

    /// A run's error read back from a backend: the same predicates and the
    /// same `Display` as the error that was stored.
    ///
    /// ```
    /// use worker_core::Error;
    ///
    /// let panic = Error::from_kind("panic", "boom", "report", "r-1");
    /// assert!(panic.is_panic());
    /// assert_eq!(panic.to_string(), "Worker 'report' panicked: boom");
    /// let back = Error::from_kind(panic.kind(), &panic.detail(), "report", "r-1");
    /// assert_eq!(back.to_string(), panic.to_string());
    /// ```
    pub fn from_kind(kind: &str, detail: &str, worker: &str, run_id: &str) -> Self {
        match kind {
            "validation" => Error::Validation(detail.to_owned()),
            "timeout" => Error::Timeout(detail.to_owned()),
            "cancelled" => Error::Cancelled {
                worker: worker.to_owned(),
                run_id: run_id.to_owned(),
            },
            "panic" => Error::Panic {
                worker: worker.to_owned(),
                message: detail.to_owned(),
            },
            "permanent" => Error::Permanent(detail.to_owned()),
            "stalled" => Error::Stalled {
                worker: worker.to_owned(),
                run_id: run_id.to_owned(),
                starts: detail.parse().unwrap_or(0),
            },
            _ => Error::msg(detail),
        }
    }

    /// The error itself, or for a workflow's [`Error::Step`] the step's:
    /// what the predicates look at.
    fn root(&self) -> &Error {
        match self {
            Error::Step { error, .. } => error.root(),
            other => other,
        }
    }

    /// The step a workflow failed at, for [`Error::Step`].
    pub fn failed_step(&self) -> Option<&str> {
        match self {
            Error::Step { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The panic message, for [`Error::Panic`].
    pub fn panic_message(&self) -> Option<&str> {
        match self.root() {
            Error::Panic { message, .. } => Some(message),
            _ => None,
        }
    }
}
