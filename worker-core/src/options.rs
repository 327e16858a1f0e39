//! A worker's run policy, declared once with the worker: timeout, retries
//! with backoff, a concurrency limit and the queue in front of it.
//!
//! [`WorkerOptions`] is a plain value: the in-process driver reads it, and
//! so can any other executor of runs, which is why the decisions made from
//! it (is this failure retried, after how long) are methods here rather
//! than logic inside the driver.

use std::time::Duration;

use crate::duration::format_duration;
use crate::error::{Error, Result};
use crate::limits::Rate;

/// The delay before the first retry when none is given.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The most retries a worker can have: 65,535 attempts in all.
pub const MAX_RETRIES: u32 = u16::MAX as u32 - 1;

/// The cap on the delay between retries when none is given.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// How runs of one worker are executed: what
/// `#[worker("name", timeout = "30s", retries = 3, concurrency = 4)]`
/// declares, for [`WorkerManager::register_with`](crate::WorkerManager::register_with).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use std::time::Duration;
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// let options = WorkerOptions::new()
///     .timeout(Duration::from_secs(30)) // per attempt
///     .retries(3)                       // 4 attempts in all
///     .backoff(Duration::from_millis(1))
///     .concurrency(4)                   // at most 4 attempts at once
///     .queue_limit(100);                // at most 100 runs waiting for one
/// manager.register_with("sync-crm", options, |ctx| async move {
///     if ctx.attempt() < 3 {
///         return Err(Error::msg("the CRM is busy"));
///     }
///     Ok(json!({"synced": 42}))
/// }).await?;
///
/// let handle = manager.call("sync-crm", None, None).await?;
/// let report: Value = handle.await_output().await?;
/// assert_eq!(report["synced"], 42);
/// assert_eq!(manager.stats("sync-crm").await.unwrap().retries, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerOptions {
    timeout: Option<Duration>,
    retries: u32,
    backoff: Option<Duration>,
    backoff_max: Option<Duration>,
    concurrency: Option<usize>,
    queue_limit: Option<usize>,
    every: Option<Duration>,
    cron: Option<String>,
    tz: Option<String>,
    local: bool,
    priority: i32,
    unique: Option<String>,
    global_concurrency: Option<usize>,
    /// As given: a malformed rate is an error at registration, where the
    /// worker's name is known.
    rate: Option<std::result::Result<Rate, String>>,
    limit_by: Option<String>,
    key_concurrency: Option<usize>,
    key_rate: Option<std::result::Result<Rate, String>>,
}

impl WorkerOptions {
    /// No timeout, no retries, no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// The default timeout of each attempt (a call's own timeout overrides it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many more attempts a failed run gets: `retries(3)` is 4 attempts
    /// in all, and at most [`MAX_RETRIES`]. Retried: a returned error (except [`is_validation`] and
    /// [`Error::permanent`]), a timeout, a panic. Never retried: a
    /// cancellation, a shutdown.
    ///
    /// [`is_validation`]: Error::is_validation
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The delay before the first retry (default 1 s); it doubles for each
    /// next one, up to [`backoff_max`](Self::backoff_max), and a random
    /// 0–25 % is added on top so that failing runs don't retry in lockstep.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = Some(first);
        self
    }

    /// The cap on the delay between two attempts (default 5 min).
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = Some(max);
        self
    }

    /// At most this many attempts of the worker execute at once in this
    /// manager; the other runs wait, first in, first out.
    pub fn concurrency(mut self, attempts: usize) -> Self {
        self.concurrency = Some(attempts);
        self
    }

    /// With [`concurrency`](Self::concurrency): at most this many runs wait
    /// for a slot; past that `call` and `run` fail at once with an error
    /// that [`is_overloaded`](Error::is_overloaded).
    pub fn queue_limit(mut self, runs: usize) -> Self {
        self.queue_limit = Some(runs);
        self
    }

    /// Runs the worker on a fixed cadence: the first run one interval after
    /// its timer starts, then every interval, whatever the runs take. Not
    /// with [`cron`](Self::cron).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// Runs the worker at each instant matching a cron expression: 5 fields
    /// (`"0 3 * * *"`, minute first), or 6 with seconds first; POSIX
    /// weekdays (0 or 7 is Sunday). Evaluated in UTC, or in [`tz`](Self::tz).
    pub fn cron(mut self, expression: &str) -> Self {
        self.cron = Some(expression.to_owned());
        self
    }

    /// The IANA time zone a [`cron`](Self::cron) expression is read in,
    /// like `"Europe/Berlin"`: DST-correct (a tick in a skipped hour runs
    /// at the first instant after it, a tick in a repeated hour runs once).
    pub fn tz(mut self, zone: &str) -> Self {
        self.tz = Some(zone.to_owned());
        self
    }

    /// Always run in this process, never through a backend (for a durable
    /// backend, when one is configured).
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// The priority of its runs among runs waiting to start, unless a
    /// call gives its own ([`Call::priority`](crate::Call::priority)):
    /// higher starts first. Default 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Makes every call's key the payload's `field` (as text: a string as
    /// it is, another value as its JSON), so that at most one run per
    /// value is queued, scheduled or running. A call's own
    /// [`Call::key`](crate::Call::key) overrides it; a payload without the
    /// field fails the call. `#[worker(unique = "user_id")]` checks the
    /// field against the payload type at compile time.
    pub fn unique(mut self, field: &str) -> Self {
        self.unique = Some(field.to_owned());
        self
    }

    /// At most this many attempts of the worker execute at once in the
    /// whole cluster (in durable mode, across every node; in-process, the
    /// process is the cluster). Runs beyond it wait as `queued`.
    pub fn global_concurrency(mut self, attempts: usize) -> Self {
        self.global_concurrency = Some(attempts);
        self
    }

    /// At most so many attempts started per period in the whole cluster,
    /// over any window of that length: `"100/1m"`, `"10/1s"`, `"5000/1h"`
    /// (see [`Rate`]). A malformed rate fails the registration with an
    /// error that [`is_validation`](Error::is_validation).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// let limited = WorkerOptions::new()
    ///     .global_concurrency(16)
    ///     .rate("100/1m")
    ///     .limit_by("account_id")
    ///     .key_concurrency(1)
    ///     .key_rate("10/1m");
    /// manager.register_with("sync-crm", limited.clone(), |_ctx| async { Ok(()) }).await?;
    /// assert_eq!(manager.options("sync-crm").unwrap(), limited);
    ///
    /// let error = manager
    ///     .register_with("bad", WorkerOptions::new().rate("100/1week"), |_ctx| async { Ok(()) })
    ///     .await
    ///     .unwrap_err();
    /// assert!(error.is_validation());
    /// assert!(error.to_string().contains("rate \"100/1week\"")); // and says why
    /// # Ok(()) }
    /// ```
    pub fn rate(mut self, rate: &str) -> Self {
        self.rate = Some(parse_rate("rate", rate));
        self
    }

    /// The payload field whose value the `key_*` limits apply to: each
    /// value (each account, each tenant) gets its own `key_concurrency`
    /// and `key_rate`. Read as `unique` reads its field; a call whose
    /// payload lacks it is refused. `#[worker(limit_by = "account_id")]`
    /// checks the field against the payload type at compile time.
    ///
    /// A value at its limit holds back only its own runs: the runs of
    /// other values start past them. Among values of one priority, values
    /// take turns, so that one value with a thousand runs waiting never
    /// holds back another with one.
    pub fn limit_by(mut self, field: &str) -> Self {
        self.limit_by = Some(field.to_owned());
        self
    }

    /// With [`limit_by`](Self::limit_by): at most this many attempts at
    /// once per value of the field, in the whole cluster.
    pub fn key_concurrency(mut self, attempts: usize) -> Self {
        self.key_concurrency = Some(attempts);
        self
    }

    /// With [`limit_by`](Self::limit_by): at most so many attempts
    /// started per period per value of the field, in the whole cluster
    /// (the notation of [`rate`](Self::rate)).
    pub fn key_rate(mut self, rate: &str) -> Self {
        self.key_rate = Some(parse_rate("key_rate", rate));
        self
    }

    /// The cluster-wide concurrency limit, if any.
    pub fn get_global_concurrency(&self) -> Option<usize> {
        self.global_concurrency
    }

    /// The cluster-wide rate, if one was given and is valid.
    pub fn get_rate(&self) -> Option<Rate> {
        self.rate.clone().and_then(std::result::Result::ok)
    }

    /// The payload field the `key_*` limits apply per value of, if any.
    pub fn get_limit_by(&self) -> Option<&str> {
        self.limit_by.as_deref()
    }

    /// The per-key concurrency limit, if any.
    pub fn get_key_concurrency(&self) -> Option<usize> {
        self.key_concurrency
    }

    /// The per-key rate, if one was given and is valid.
    pub fn get_key_rate(&self) -> Option<Rate> {
        self.key_rate.clone().and_then(std::result::Result::ok)
    }

    /// Whether any cluster-wide limit is declared (`global_concurrency`,
    /// `rate`, `key_concurrency` or `key_rate`).
    pub fn is_limited(&self) -> bool {
        self.global_concurrency.is_some()
            || self.rate.is_some()
            || self.key_concurrency.is_some()
            || self.key_rate.is_some()
    }

    /// The default priority of its runs.
    pub fn get_priority(&self) -> i32 {
        self.priority
    }

    /// The payload field that is every call's key, if any.
    pub fn get_unique(&self) -> Option<&str> {
        self.unique.as_deref()
    }

    /// The fixed interval, if the worker runs on one.
    pub fn get_every(&self) -> Option<Duration> {
        self.every
    }

    /// The cron expression, if the worker runs on one.
    pub fn get_cron(&self) -> Option<&str> {
        self.cron.as_deref()
    }

    /// The zone the cron expression is read in; `None` is UTC.
    pub fn get_tz(&self) -> Option<&str> {
        self.tz.as_deref()
    }

    /// Whether runs always stay in this process.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The timeout of each attempt, if any.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// How many retries a failed run gets.
    pub fn get_retries(&self) -> u32 {
        self.retries
    }

    /// The delay before the first retry.
    pub fn get_backoff(&self) -> Duration {
        self.backoff.unwrap_or(DEFAULT_BACKOFF)
    }

    /// The cap on the delay between attempts. Unless given, never below
    /// [`backoff`](Self::backoff): a first delay longer than the default
    /// cap is taken as meant.
    pub fn get_backoff_max(&self) -> Duration {
        self.backoff_max
            .unwrap_or(DEFAULT_BACKOFF_MAX.max(self.get_backoff()))
    }

    /// The concurrency limit, if any.
    pub fn get_concurrency(&self) -> Option<usize> {
        self.concurrency
    }

    /// The queue limit, if any.
    pub fn get_queue_limit(&self) -> Option<usize> {
        self.queue_limit
    }

    /// Checks that the options make sense together (the cron expression
    /// and the zone themselves are checked by `Schedule::of`). The error
    /// [`is_validation`](Error::is_validation) and names the worker and
    /// the option.
    pub(crate) fn validate(&self, worker: &str) -> Result<()> {
        let problem = if self.timeout == Some(Duration::ZERO) {
            "timeout must be longer than zero".to_owned()
        } else if self.retries > MAX_RETRIES {
            format!("retries must be at most {MAX_RETRIES}")
        } else if self.concurrency == Some(0) {
            "concurrency must be at least 1".to_owned()
        } else if self.queue_limit.is_some() && self.concurrency.is_none() && !self.is_limited() {
            "queue_limit needs concurrency or a limit (global_concurrency, rate, key_concurrency, key_rate): it bounds the runs waiting for a slot"
                .to_owned()
        } else if self.limit_by.is_some() && (self.every.is_some() || self.cron.is_some()) {
            "limit_by can't go with every or cron: a scheduled run has no payload to read the field from".to_owned()
        } else if self.retries == 0 && (self.backoff.is_some() || self.backoff_max.is_some()) {
            "backoff and backoff_max need retries: without them nothing is retried".to_owned()
        } else if self.every.is_some() && self.cron.is_some() {
            "every and cron can't both be given: a worker has one schedule".to_owned()
        } else if self.tz.is_some() && self.cron.is_none() {
            "tz needs cron: it is the zone the cron expression is read in".to_owned()
        } else if self.unique.as_deref().is_some_and(str::is_empty) {
            "unique must name a payload field".to_owned()
        } else if self.global_concurrency == Some(0) {
            "global_concurrency must be at least 1".to_owned()
        } else if self.key_concurrency == Some(0) {
            "key_concurrency must be at least 1".to_owned()
        } else if let Some(Err(problem)) = &self.rate {
            problem.clone()
        } else if let Some(Err(problem)) = &self.key_rate {
            problem.clone()
        } else if self.limit_by.as_deref().is_some_and(str::is_empty) {
            "limit_by must name a payload field".to_owned()
        } else if self.limit_by.is_none()
            && (self.key_concurrency.is_some() || self.key_rate.is_some())
        {
            "key_concurrency and key_rate need limit_by: they apply per value of that payload field"
                .to_owned()
        } else if self.limit_by.is_some()
            && self.key_concurrency.is_none()
            && self.key_rate.is_none()
        {
            "limit_by needs key_concurrency or key_rate: it names the field those apply per value of".to_owned()
        } else if self.every == Some(Duration::ZERO) {
            "every must be longer than zero".to_owned()
        } else if self.get_backoff_max() < self.get_backoff() {
            format!(
                "backoff_max ({}) is shorter than backoff ({})",
                format_duration(self.get_backoff_max()),
                format_duration(self.get_backoff())
            )
        } else {
            return Ok(());
        };
        Err(invalid(worker, &problem))
    }

    /// After attempt number `attempt` (1 for the first) failed with
    /// `error`, how long to wait before the next one; `None` if the run
    /// ends here. `jitter` in `0.0..=1.0` picks the random part. Backends
    /// ask this to retry the way in-process runs do.
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_core::{Error, WorkerOptions};
    ///
    /// let options = WorkerOptions::new().retries(2).backoff(Duration::from_secs(1));
    /// let failed = Error::msg("flaky");
    /// assert_eq!(options.retry_delay(1, &failed, 0.0), Some(Duration::from_secs(1)));
    /// assert_eq!(options.retry_delay(2, &failed, 0.0), Some(Duration::from_secs(2)));
    /// assert_eq!(options.retry_delay(3, &failed, 0.0), None, "no retries left");
    /// assert_eq!(options.retry_delay(1, &Error::validation("bad"), 0.0), None);
    /// ```
    pub fn retry_delay(&self, attempt: u32, error: &Error, jitter: f64) -> Option<Duration> {
        if attempt > self.retries || !error.is_retryable() {
            return None;
        }
        if let Some(exact) = error.retry_delay() {
            return Some(exact);
        }
        let doublings = attempt.saturating_sub(1).min(32);
        let delay = self
            .get_backoff()
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.get_backoff_max());
        Some(delay.saturating_add(delay.mul_f64(0.25 * jitter.clamp(0.0, 1.0))))
    }
}

/// A rate as given to `option`, or what is wrong with it, quoting it.
fn parse_rate(option: &str, text: &str) -> std::result::Result<Rate, String> {
    text.parse()
        .map_err(|problem| format!("{option} \"{text}\" is not a rate: {problem}"))
}

/// The error for options that can't be used, naming the worker.
pub(crate) fn invalid(worker: &str, problem: &str) -> Error {
    Error::validation(format!("invalid options for worker '{worker}': {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .retries(10)
            .backoff(Duration::from_secs(1))
            .backoff_max(Duration::from_secs(5))
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_plus_at_most_a_quarter() {
        let error = Error::msg("boom");
        let delays: Vec<_> = (1..=5)
            .map(|attempt| options().retry_delay(attempt, &error, 0.0).unwrap())
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(5), secs(5)]);
        assert_eq!(
            options().retry_delay(2, &error, 1.0),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn what_is_not_retried() {
        let options = options().retries(2);
        assert_eq!(
            options.retry_delay(3, &Error::msg("x"), 0.5),
            None,
            "retries used up"
        );
        for error in [
            Error::validation("bad payload"),
            Error::permanent("gone for good"),
            Error::Shutdown,
            Error::Cancelled {
                worker: "w".into(),
                run_id: "r".into(),
            },
        ] {
            assert_eq!(options.retry_delay(1, &error, 0.5), None, "{error}");
        }
        let exact = Error::retry_after(Duration::from_millis(7), "rate limited");
        assert_eq!(
            options.retry_delay(1, &exact, 1.0),
            Some(Duration::from_millis(7))
        );
    }

    #[test]
    fn conflicting_options_name_the_worker_and_the_option() {
        let error = |options: WorkerOptions| options.validate("sync").unwrap_err().to_string();
        assert_eq!(
            error(WorkerOptions::new().queue_limit(5)),
            "invalid options for worker 'sync': queue_limit needs concurrency or a limit (global_concurrency, rate, key_concurrency, key_rate): it bounds the runs waiting for a slot"
        );
        assert!(
            error(WorkerOptions::new().concurrency(0)).contains("concurrency must be at least 1")
        );
        assert!(
            error(WorkerOptions::new().backoff(Duration::from_secs(1))).contains("need retries")
        );
        assert!(
            error(
                WorkerOptions::new()
                    .retries(1)
                    .backoff(Duration::from_secs(10))
                    .backoff_max(Duration::from_secs(1))
            )
            .contains("backoff_max (1s) is shorter than backoff (10s)")
        );
        assert!(WorkerOptions::new().validate("sync").is_ok());
    }

    #[test]
    fn limits_are_checked_together_and_bound_a_queue() {
        let error = |options: WorkerOptions| options.validate("sync").unwrap_err().to_string();
        assert!(
            WorkerOptions::new()
                .global_concurrency(4)
                .queue_limit(10)
                .validate("sync")
                .is_ok(),
            "a queue bounded in front of a global limit"
        );
        assert!(error(WorkerOptions::new().key_concurrency(1)).contains("need limit_by"));
        assert!(error(WorkerOptions::new().limit_by("account")).contains("needs key_concurrency"));
        assert!(error(WorkerOptions::new().global_concurrency(0)).contains("at least 1"));
        assert!(
            error(WorkerOptions::new().rate("5 per minute"))
                .contains("rate \"5 per minute\" is not a rate")
        );
        assert!(
            error(
                WorkerOptions::new()
                    .limit_by("account")
                    .key_concurrency(1)
                    .every(Duration::from_secs(1))
            )
            .contains("limit_by can't go with every or cron")
        );
    }
}
