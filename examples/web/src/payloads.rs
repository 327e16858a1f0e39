//! The demo workers' payload types, and the validators the server runs
//! before it starts anything.
//!
//! The dashboard checks a payload with its worker's [`Validator`] before it
//! starts a run, so a bad one is a `422` to the client rather than a failed
//! run (see `worker_web::payloads`).
//!
//! The types live here rather than in `src/workers/` so both sides use the
//! very same type and the very same [`Payload::check`]: the worker files are
//! modules declared by `#[auto_discover]` and have no stable path of their own.

use serde::Deserialize;
pub use worker_web::payloads::{Payload, Validator, invalid, validator};

/// The validators of the demo workers, by worker name.
pub fn demo_validators() -> Vec<(&'static str, Validator)> {
    vec![
        ("generate-report", validator::<ReportRequest>()),
        ("send-email", validator::<Email>()),
        ("rebuild-index", validator::<Option<Rebuild>>()),
        ("flaky-job", validator::<Option<FlakyJob>>()),
    ]
}

/// `generate-report`: `{"user_id": 7, "type": "monthly", "step_ms": 150}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Whose report.
    pub user_id: u64,
    /// `daily`, `weekly`, `monthly` (the default) or `yearly`.
    #[serde(rename = "type", default = "monthly")]
    pub kind: String,
    /// Pause between progress steps (default 150 ms, at most 1000): the run
    /// takes ten of them.
    #[serde(default = "report_step_ms")]
    pub step_ms: u64,
}

fn monthly() -> String {
    "monthly".to_owned()
}

fn report_step_ms() -> u64 {
    150
}

/// Report kinds `generate-report` knows.
pub const REPORT_KINDS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];

impl Payload for ReportRequest {
    fn check(&self) -> Result<(), String> {
        if !REPORT_KINDS.contains(&self.kind.as_str()) {
            return Err(format!(
                "`type` must be one of {}, not {:?}",
                REPORT_KINDS.join(", "),
                self.kind
            ));
        }
        if self.step_ms > 1000 {
            return Err(format!(
                "`step_ms` must be at most 1000, not {}",
                self.step_ms
            ));
        }
        Ok(())
    }
}

/// `send-email`: `{"to": "a@b.c", "subject": "Hi", "body": "…"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// The recipient; required.
    pub to: String,
    /// Defaults to "No Subject".
    #[serde(default = "no_subject")]
    pub subject: String,
    /// Defaults to empty.
    #[serde(default)]
    pub body: String,
}

fn no_subject() -> String {
    "No Subject".to_owned()
}

impl Payload for Email {
    fn check(&self) -> Result<(), String> {
        match self.to.split_once('@') {
            Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(()),
            _ => Err(format!("`to` must be an email address, not {:?}", self.to)),
        }
    }
}

/// `rebuild-index`: optional `{"seconds": 30}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    /// How long the rebuild takes (default 30, 1 to 600).
    #[serde(default = "rebuild_seconds")]
    pub seconds: u64,
}

fn rebuild_seconds() -> u64 {
    30
}

impl Payload for Rebuild {
    fn check(&self) -> Result<(), String> {
        if (1..=600).contains(&self.seconds) {
            Ok(())
        } else {
            Err(format!(
                "`seconds` must be from 1 to 600, not {}",
                self.seconds
            ))
        }
    }
}

/// `flaky-job`: optional `{"outcome": "ok" | "error" | "panic" | "timeout"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlakyJob {
    /// How the run should end (default `ok`).
    #[serde(default)]
    pub outcome: FlakyOutcome,
}

/// How a `flaky-job` run ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlakyOutcome {
    /// Succeeds.
    #[default]
    Ok,
    /// Returns an error.
    Error,
    /// Panics.
    Panic,
    /// Outlives its 1s timeout.
    Timeout,
}

impl Payload for FlakyJob {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn check(worker: &str, payload: Option<Value>) -> Result<(), String> {
        let (_, validate) = demo_validators()
            .into_iter()
            .find(|(name, _)| *name == worker)
            .unwrap();
        validate(payload.as_ref())
    }

    #[test]
    fn validators_say_what_is_wrong() {
        assert_eq!(
            check("send-email", Some(json!({"subject": "hi"}))),
            Err("missing field `to`".to_owned())
        );
        assert_eq!(
            check("send-email", Some(json!({"to": "nobody"}))),
            Err("`to` must be an email address, not \"nobody\"".to_owned())
        );
        assert_eq!(
            check("send-email", None),
            Err("invalid type: null, expected struct Email".to_owned())
        );
        assert!(check("send-email", Some(json!({"to": "a@b.c"}))).is_ok());
        assert_eq!(
            check(
                "generate-report",
                Some(json!({"user_id": 1, "type": "hourly"}))
            ),
            Err("`type` must be one of daily, weekly, monthly, yearly, not \"hourly\"".to_owned())
        );
        assert!(check("generate-report", Some(json!({"user_id": 1}))).is_ok());
        assert!(check("rebuild-index", None).is_ok());
        assert!(check("rebuild-index", Some(json!({"seconds": 0}))).is_err());
        assert!(check("flaky-job", Some(json!({"outcome": "panic"}))).is_ok());
        assert!(
            check("flaky-job", Some(json!({"outcome": "explode"})))
                .unwrap_err()
                .starts_with("unknown variant `explode`")
        );
    }
}
