//! What one call asks for beyond "run this now": a payload, a timeout, a
//! time to start, a unique key with what to do on a duplicate, and a
//! priority. Plain data, the same in both modes: the manager resolves it
//! (the worker's default priority and `unique` field) and hands it to the
//! in-process queue or to the backend.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits::limit_key;
use crate::options::WorkerOptions;

/// One call's options, for [`WORKER::call_with`](crate::WORKER::call_with)
/// and [`WORKER::call_many`](crate::WORKER::call_many). Every option is
/// optional: `Call::new()` alone is `call(name, None, None)`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use std::time::Duration;
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register("send-reminder", |_ctx| async { Ok(()) }).await?;
///
/// let call = Call::new()
///     .payload(json!({"user": 7}))
///     .delay(Duration::from_millis(20)) // not started before then
///     .key("reminder:7")               // at most one such run waiting or running
///     .priority(10);                   // higher starts first
/// let handle = manager.call_with("send-reminder", call).await?;
/// assert_eq!(manager.scheduled(Some("send-reminder")).await?, [handle.id()]);
/// handle.await_result().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Call does nothing until it is passed to call_with or call_many"]
pub struct Call {
    pub(crate) payload: Option<Value>,
    /// A payload that failed to serialize: reported by the call, so that
    /// the builder can stay infallible.
    pub(crate) payload_error: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) start: Option<Start>,
    pub(crate) key: Option<String>,
    pub(crate) on_duplicate: Duplicate,
    pub(crate) priority: Option<i32>,
}

/// When a run may start, if not at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// This long after the call is stored (in durable mode, measured on
    /// the database's clock).
    After(Duration),
    /// At this wall-clock time (in the past: at once).
    At(SystemTime),
}

impl Start {
    /// The wall-clock time this start means, seen from `now`.
    pub fn at(self, now: SystemTime) -> SystemTime {
        match self {
            Start::After(delay) => now + delay,
            Start::At(at) => at,
        }
    }
}

/// What a call with a key does when a run with the same worker and key is
/// already queued, scheduled or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Duplicate {
    /// Gives a handle on the existing run (the default): the same id,
    /// outcome and messages. Nothing new is stored or counted.
    #[default]
    Join,
    /// While the existing run has not started, replaces its payload,
    /// priority and start time with this call's (a call repeated with a
    /// delay is a debounce), and gives a handle on it; once it has
    /// started, as `Join`.
    Replace,
    /// Fails the call with an error that
    /// [`is_duplicate`](crate::Error::is_duplicate) and names the existing
    /// run.
    Reject,
}

impl Call {
    /// A call with no payload, the worker's timeout and priority, to start
    /// at once, without a key.
    pub fn new() -> Self {
        Call::default()
    }

    /// The payload: anything `Serialize`. A value that can't be serialized
    /// fails the call (nothing is stored).
    pub fn payload(mut self, payload: impl Serialize) -> Self {
        match serde_json::to_value(payload) {
            Ok(value) => {
                self.payload = Some(value);
                self.payload_error = None;
            }
            Err(error) => self.payload_error = Some(error.to_string()),
        }
        self
    }

    /// The run's timeout, as `call()`'s: overrides the worker's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Not started before `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.start = Some(Start::After(delay));
        self
    }

    /// Not started before `at` (a time in the past starts at once).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.start = Some(Start::At(at));
        self
    }

    /// At most one run of the worker with this key is queued, scheduled or
    /// running at a time; see [`on_duplicate`](Self::on_duplicate).
    /// Overrides the worker's `unique` field.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// What to do when a run with the key exists (default
    /// [`Duplicate::Join`]).
    pub fn on_duplicate(mut self, on_duplicate: Duplicate) -> Self {
        self.on_duplicate = on_duplicate;
        self
    }

    /// Higher starts first among runs waiting to start; FIFO within a
    /// priority. Default: the worker's `priority`, else 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The payload as given, if any.
    pub fn get_payload(&self) -> Option<&Value> {
        self.payload.as_ref()
    }

    /// The key as given, if any (the worker's `unique` field is resolved
    /// when the call is made).
    pub fn get_key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// A call ready to be stored: the worker's defaults applied, its key
/// found. What the in-process queue and a
/// [`Backend`](crate::backend::Backend) receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The payload, if any.
    pub payload: Option<Value>,
    /// The run's timeout, if the call set one (else the worker's applies).
    pub timeout: Option<Duration>,
    /// When it may start; `None`: at once.
    pub start: Option<Start>,
    /// Its unique key, if any.
    pub key: Option<String>,
    /// What to do on a duplicate key.
    pub on_duplicate: Duplicate,
    /// Its priority: the call's, else the worker's, else 0.
    pub priority: i32,
    /// The value of the worker's `limit_by` field in its payload, which
    /// its `key_concurrency` and `key_rate` apply to; `None` for a worker
    /// without `limit_by`.
    pub limit_key: Option<String>,
}

impl Call {
    /// Applies the worker's defaults: its `priority`, its `unique` field
    /// read from the payload when the call has no key of its own, and its
    /// `limit_by` field.
    pub(crate) fn resolve(self, worker: &str, options: &WorkerOptions) -> Result<Resolved> {
        let unique = options.get_unique();
        if let Some(error) = self.payload_error {
            return Err(Error::validation(format!(
                "invalid payload for worker '{worker}': it can't be serialized to JSON: {error}"
            )));
        }
        let key = match (self.key, unique) {
            (Some(key), _) => Some(key),
            (None, Some(field)) => Some(unique_key(worker, field, self.payload.as_ref())?),
            (None, None) => None,
        };
        let limit_key = options
            .get_limit_by()
            .map(|field| limit_key(worker, field, self.payload.as_ref()))
            .transpose()?;
        Ok(Resolved {
            payload: self.payload,
            timeout: self.timeout,
            start: self.start,
            key,
            on_duplicate: self.on_duplicate,
            priority: self.priority.unwrap_or(options.get_priority()),
            limit_key,
        })
    }
}

impl Call {
    /// The call as a backend stores it without a manager (for example
    /// `worker_postgres::Postgres::enqueue_with`, inside the caller's
    /// transaction): the worker's defaults are not known there, so the
    /// priority is the call's (else 0) and the key is the call's.
    pub fn resolve_plain(self, worker: &str) -> Result<Resolved> {
        self.resolve(worker, &WorkerOptions::default())
    }

    /// The call with `options` applied, as the worker's manager would
    /// (for a backend that knows the worker's options without one).
    pub fn resolve_with(self, worker: &str, options: &WorkerOptions) -> Result<Resolved> {
        self.resolve(worker, options)
    }
}

/// The key a `unique` worker's call has: its payload's field, as text
/// (a string as it is, any other value as its JSON).
fn unique_key(worker: &str, field: &str, payload: Option<&Value>) -> Result<String> {
    match payload.and_then(|p| p.get(field)) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(Error::validation(format!(
            "invalid payload for worker '{worker}': its `unique` field `{field}` is missing; give the payload that field or the call a key (Call::key)"
        ))),
        Some(other) => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_workers_defaults_apply_and_the_call_overrides_them() {
        let plain = Call::new()
            .resolve("w", &WorkerOptions::new().priority(5))
            .unwrap();
        assert_eq!((plain.priority, plain.key), (5, None));
        let own = Call::new()
            .priority(-1)
            .resolve("w", &WorkerOptions::new().priority(5))
            .unwrap();
        assert_eq!(own.priority, -1);

        let by_field = Call::new()
            .payload(json!({"user_id": 7}))
            .resolve("w", &WorkerOptions::new().unique("user_id"));
        assert_eq!(by_field.unwrap().key.as_deref(), Some("7"));
        let text = Call::new()
            .payload(json!({"user_id": "a"}))
            .resolve("w", &WorkerOptions::new().unique("user_id"));
        assert_eq!(text.unwrap().key.as_deref(), Some("a"));
        let own_key = Call::new()
            .payload(json!({"user_id": 7}))
            .key("k")
            .resolve("w", &WorkerOptions::new().unique("user_id"));
        assert_eq!(own_key.unwrap().key.as_deref(), Some("k"));
    }

    #[test]
    fn a_missing_unique_field_is_a_validation_error_naming_worker_and_field() {
        let error = Call::new()
            .payload(json!({"other": 1}))
            .resolve("sync", &WorkerOptions::new().unique("user_id"))
            .unwrap_err();
        assert!(error.is_validation());
        let text = error.to_string();
        assert!(
            text.contains("'sync'") && text.contains("`user_id`"),
            "{text}"
        );
    }

    #[test]
    fn an_unserializable_payload_fails_the_call() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3); // a map with non-string keys has no JSON form
        let error = Call::new()
            .payload(map)
            .resolve("w", &WorkerOptions::new())
            .unwrap_err();
        assert!(error.is_validation(), "{error}");
    }
}
