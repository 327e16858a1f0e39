//! Checking payloads before a run starts.
//!
//! Why: a `#[worker]` fn's typed payload is deserialized when the run
//! *starts*, inside the run. By then `POST /workers/{name}/runs` has
//! already answered `202` and the run is counted, so a bad payload would
//! show up as a failed run instead of a `422` to the client that sent it.
//! A [`Validator`] does the same deserialization (plus the type's own
//! checks) up front, and the request is turned away before anything starts.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks a payload (`None` when the request had no body) without running
/// anything; `Err` holds what is wrong, e.g. ``missing field `to` ``.
pub type Validator = fn(Option<&Value>) -> Result<(), String>;

/// A typed payload: what serde checks, plus the checks serde can't express.
pub trait Payload: DeserializeOwned {
    /// Rules beyond the shape, such as "an email address has an `@`".
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The validator of payload type `T`: deserialize as `#[worker]` does (no
/// payload is read as `null`, so `Option<T>` accepts none), then
/// [`Payload::check`].
///
/// ```
/// use serde::Deserialize;
/// use serde_json::json;
/// use worker_web::payloads::{Payload, validator};
///
/// #[derive(Deserialize)]
/// struct Email { to: String }
/// impl Payload for Email {}
///
/// let check = validator::<Email>();
/// assert!(check(Some(&json!({"to": "a@b.c"}))).is_ok());
/// assert_eq!(check(Some(&json!({}))), Err("missing field `to`".to_owned()));
/// ```
pub fn validator<T: Payload>() -> Validator {
    |payload| {
        let value = payload.unwrap_or(&Value::Null);
        let decoded = T::deserialize(value).map_err(|err| err.to_string())?;
        decoded.check()
    }
}

impl<T: Payload> Payload for Option<T> {
    fn check(&self) -> Result<(), String> {
        self.as_ref().map_or(Ok(()), T::check)
    }
}

/// The message of a payload turned away, worded like worker-core's own:
/// ``invalid payload for worker 'send-email': missing field `to` ``.
pub fn invalid(worker: &str, detail: &str) -> String {
    format!("invalid payload for worker '{worker}': {detail}")
}
