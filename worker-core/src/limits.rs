//! Limits on how many attempts of a worker run at once and how many start
//! per period, for the whole worker or per value of a payload field: what
//! `global_concurrency`, `rate`, `limit_by`, `key_concurrency` and
//! `key_rate` declare, and what their current use is.
//!
//! In-process, the process is the whole cluster: the worker's gate applies
//! them. A durable backend applies them in the transaction that claims a
//! run, across every node.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::{format_duration, parse_duration};
use crate::error::{Error, Result};

/// At most `count` attempts started in any interval of `period`: a
/// sliding window, so no burst of twice the rate straddles the turn of a
/// minute. Written `"100/1m"`, `"10/1s"`, `"5000/1h"`: a count, a slash
/// and a duration.
///
/// ```
/// use std::time::Duration;
/// use worker_core::Rate;
///
/// let rate: Rate = "100/1m".parse().unwrap();
/// assert_eq!((rate.count(), rate.period()), (100, Duration::from_secs(60)));
/// assert_eq!(rate.to_string(), "100/1m");
/// let error = "100/1week".parse::<Rate>().unwrap_err();
/// assert!(error.contains("unknown unit `week`"), "{error}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period: Duration,
}

impl Rate {
    /// The hint every rate error ends with.
    const HINT: &'static str =
        "write a count, a slash and a period, like \"100/1m\", \"10/1s\" or \"5000/1h\"";

    /// At most `count` starts per `period`; both must be above zero.
    pub fn new(count: u32, period: Duration) -> std::result::Result<Rate, String> {
        if count == 0 {
            return Err(format!("the count must be at least 1; {}", Rate::HINT));
        }
        if period < Duration::from_millis(1) {
            return Err(format!("the period must be at least 1ms; {}", Rate::HINT));
        }
        Ok(Rate { count, period })
    }

    /// How many starts a window allows.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The window's length.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Rate, String> {
        let Some((count, period)) = text.split_once('/') else {
            return Err(format!("it has no `/`; {}", Rate::HINT));
        };
        let count: u32 = count
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number of starts; {}", Rate::HINT))?;
        let period =
            parse_duration(period).map_err(|problem| format!("{problem}; {}", Rate::HINT))?;
        Rate::new(count, period)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.period))
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Rate, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A worker's limits in use now, in [`WorkerStats::limits`](crate::WorkerStats::limits):
/// in-process, this process's; in durable mode, the cluster's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitUse {
    /// Attempts executing now, against `global_concurrency`.
    pub running: u64,
    /// The `global_concurrency`, if declared.
    pub global_concurrency: Option<u64>,
    /// Attempts started within the last `rate` period.
    pub started: u64,
    /// The `rate`, if declared.
    pub rate: Option<Rate>,
    /// The busiest values of `limit_by` (most running, then most started),
    /// at most 10.
    pub keys: Vec<KeyUse>,
}

/// One value of a worker's `limit_by` field, and its use now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    /// The field's value, as text (see [`limit_key`]).
    pub key: String,
    /// Its attempts executing now, against `key_concurrency`.
    pub running: u64,
    /// Its attempts started within the last `key_rate` period.
    pub started: u64,
    /// Its runs waiting to start.
    pub queued: u64,
}

/// How many keys [`LimitUse::keys`] shows.
pub const BUSIEST_KEYS: usize = 10;

/// The `limit_by` value of a call's payload: a string as it is, any other
/// value as its JSON (as `unique` reads its field). A payload without the
/// field is refused: it could not be limited.
pub(crate) fn limit_key(worker: &str, field: &str, payload: Option<&Value>) -> Result<String> {
    match payload.and_then(|p| p.get(field)) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(Error::validation(format!(
            "invalid payload for worker '{worker}': its `limit_by` field `{field}` is missing; give the payload that field, since the worker's limits apply per value of it"
        ))),
        Some(other) => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_back() {
        for (text, count, period) in [
            ("10/1s", 10, Duration::from_secs(1)),
            ("100/1m", 100, Duration::from_secs(60)),
            ("5000/1h", 5000, Duration::from_secs(3600)),
            ("3/1m30s", 3, Duration::from_secs(90)),
            ("1/250ms", 1, Duration::from_millis(250)),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!((rate.count(), rate.period()), (count, period), "{text}");
            assert_eq!(rate.to_string(), text);
        }
    }

    #[test]
    fn a_malformed_rate_says_what_is_wrong() {
        for (text, problem) in [
            ("100", "has no `/`"),
            ("x/1m", "`x` is not a whole number"),
            ("0/1m", "count must be at least 1"),
            ("10/0s", "period must be at least 1ms"),
            ("10/1d", "unknown unit `d`"),
            ("10/m", "expected a number"),
        ] {
            let error = text.parse::<Rate>().unwrap_err();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains("like \"100/1m\""), "{error}");
        }
    }

    #[test]
    fn limit_keys_read_the_field_as_text() {
        let payload = serde_json::json!({"account": "a-1", "n": 7});
        assert_eq!(limit_key("w", "account", Some(&payload)).unwrap(), "a-1");
        assert_eq!(limit_key("w", "n", Some(&payload)).unwrap(), "7");
        let error = limit_key("sync", "user", Some(&payload)).unwrap_err();
        assert!(error.is_validation());
        assert!(error.to_string().contains("'sync'") && error.to_string().contains("`user`"));
    }
}
