//! The compile-time rate parser behind `rate = "…"` and `key_rate = "…"`.
//!
//! A rate is a count of starts, a slash and a period: `100/1m`, `10/1s`,
//! `3/1m30s`. The count is a whole number from 1 to `u32::MAX`; the period
//! is a duration as `timeout` takes it (see [`duration`]), at least 1ms.
//! That is the grammar of `worker_core::Rate`, which the runtime parses
//! again; checking it here makes a typo a compile error at the literal
//! rather than a failed registration at startup.

use std::fmt;
use std::time::Duration;

use crate::duration::{self, DurationError};

/// Appended to every error so the user sees what a valid value looks like;
/// it lists the period's units, as the duration errors do.
pub(crate) const HINT: &str = "write a count, a slash and a period (units h, m, s, ms, us, ns), like \"100/1m\", \"10/1s\" or \"5000/1h\"";

/// The shortest period the runtime accepts.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// At most `count` starts per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) period: Duration,
}

impl fmt::Display for Rate {
    /// `100/1m`: the period in the runtime's own notation, so whatever
    /// spelling the macro accepted (`60s`, `µs`), the runtime reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, duration::format(self.period))
    }
}

/// Why a rate string was rejected, in words that fit after
/// `invalid rate "…": `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RateError {
    Whitespace,
    NoSlash,
    TwoSlashes,
    MissingCount,
    NotACount { text: String },
    ZeroCount,
    CountTooLarge { text: String },
    MissingPeriod,
    Period(DurationError),
    PeriodTooShort,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::Whitespace => f.write_str("spaces are not allowed"),
            RateError::NoSlash => f.write_str("it has no `/` between the count and the period"),
            RateError::TwoSlashes => f.write_str("it has more than one `/`"),
            RateError::MissingCount => f.write_str("the count before `/` is missing"),
            RateError::NotACount { text } => {
                write!(f, "`{text}` is not a whole number of starts")
            }
            RateError::ZeroCount => f.write_str("the count must be at least 1"),
            RateError::CountTooLarge { text } => {
                write!(f, "the count {text} is too large: at most {}", u32::MAX)
            }
            RateError::MissingPeriod => f.write_str("the period after `/` is missing"),
            RateError::Period(DurationError::Overflow) => f.write_str("the period is too large"),
            RateError::Period(error) => write!(f, "in the period, {error}"),
            RateError::PeriodTooShort => f.write_str("the period must be at least 1ms"),
        }
    }
}

/// Parses `"100/1m"` into 100 starts per minute.
pub(crate) fn parse(text: &str) -> Result<Rate, RateError> {
    if text.chars().any(char::is_whitespace) {
        return Err(RateError::Whitespace);
    }
    let (count, period) = text.split_once('/').ok_or(RateError::NoSlash)?;
    if period.contains('/') {
        return Err(RateError::TwoSlashes);
    }
    let count = parse_count(count)?;
    if period.is_empty() {
        return Err(RateError::MissingPeriod);
    }
    let period = duration::parse(period).map_err(RateError::Period)?;
    if period < MIN_PERIOD {
        return Err(RateError::PeriodTooShort);
    }
    Ok(Rate { count, period })
}

/// Digits only: no sign, which `u32::from_str` would let through.
fn parse_count(text: &str) -> Result<u32, RateError> {
    if text.is_empty() {
        return Err(RateError::MissingCount);
    }
    if !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(RateError::NotACount {
            text: text.to_owned(),
        });
    }
    match text.parse::<u32>() {
        Ok(0) => Err(RateError::ZeroCount),
        Ok(count) => Ok(count),
        // All digits, so the only way to fail is to be too large.
        Err(_) => Err(RateError::CountTooLarge {
            text: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(text: &str) -> Rate {
        match parse(text) {
            Ok(rate) => rate,
            Err(err) => panic!("{text:?} should parse, got: {err}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(rate) => panic!("{text:?} should fail, got {rate:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_count_and_a_period_parse() {
        for (text, count, period) in [
            ("100/1m", 100, Duration::from_secs(60)),
            ("10/1s", 10, Duration::from_secs(1)),
            ("5000/1h", 5000, Duration::from_secs(3600)),
            ("3/1m30s", 3, Duration::from_secs(90)),
            ("1/250ms", 1, Duration::from_millis(250)),
            ("1/1ms", 1, MIN_PERIOD),
            ("4294967295/1s", u32::MAX, Duration::from_secs(1)),
            ("007/1s", 7, Duration::from_secs(1)),
        ] {
            assert_eq!(ok(text), Rate { count, period }, "{text}");
        }
    }

    #[test]
    fn a_rate_is_written_in_the_runtimes_notation() {
        assert_eq!(ok("100/1m").to_string(), "100/1m");
        assert_eq!(ok("100/60s").to_string(), "100/1m");
        assert_eq!(ok("007/1500ms").to_string(), "7/1s500ms");
        assert_eq!(ok("2/1500\u{b5}s").to_string(), "2/1ms500us");
    }

    #[test]
    fn the_count_is_a_whole_number_of_at_least_one() {
        assert_eq!(err("0/1m"), "the count must be at least 1");
        assert_eq!(err("x/1m"), "`x` is not a whole number of starts");
        assert_eq!(err("-5/1m"), "`-5` is not a whole number of starts");
        assert_eq!(err("+5/1m"), "`+5` is not a whole number of starts");
        assert_eq!(err("1.5/1m"), "`1.5` is not a whole number of starts");
        assert_eq!(err("/1m"), "the count before `/` is missing");
        assert_eq!(
            err("4294967296/1s"),
            "the count 4294967296 is too large: at most 4294967295"
        );
    }

    #[test]
    fn the_period_is_a_duration_of_at_least_a_millisecond() {
        assert_eq!(err("10/1d"), "in the period, unknown unit `d`");
        assert_eq!(err("10/1week"), "in the period, unknown unit `week`");
        assert_eq!(err("10/m"), "in the period, expected a number, found `m`");
        assert_eq!(err("10/5"), "in the period, missing unit after `5`");
        assert_eq!(
            err("10/30s1m"),
            "in the period, `m` comes after `s`; write units from largest to smallest"
        );
        assert_eq!(err("10/"), "the period after `/` is missing");
        assert_eq!(err("10/0s"), "the period must be at least 1ms");
        assert_eq!(err("10/999us"), "the period must be at least 1ms");
        assert_eq!(err("10/99999999999999999999h"), "the period is too large");
    }

    #[test]
    fn the_shape_is_count_slash_period() {
        assert_eq!(err("100"), "it has no `/` between the count and the period");
        assert_eq!(err(""), "it has no `/` between the count and the period");
        assert_eq!(err("1/1m/1s"), "it has more than one `/`");
        assert_eq!(err("100 / 1m"), "spaces are not allowed");
        assert_eq!(err("100/1m "), "spaces are not allowed");
    }

    /// Strings made of what rates are made of, and anything else.
    fn rate_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9hmsun/\u{b5}+-. ]{0,16}",
            "[0-9]{1,11}/([0-9]{1,21}(h|m|s|ms|us|ns|\u{b5}s|d)){1,3}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(crate::testing::config(1024))]

        #[test]
        fn a_written_rate_parses_back(count in 1..=u32::MAX, nanos in 1_000_000..=u64::MAX) {
            let rate = Rate { count, period: Duration::from_nanos(nanos) };
            prop_assert_eq!(parse(&rate.to_string()), Ok(rate));
        }

        #[test]
        fn no_string_panics_the_parser(text in rate_like()) {
            let parsed = std::panic::catch_unwind(|| parse(&text));
            prop_assert!(parsed.is_ok(), "parse({:?}) panicked", text);
            // What parses is written back in a form that parses the same.
            if let Ok(Ok(rate)) = parsed {
                prop_assert_eq!(parse(&rate.to_string()), Ok(rate));
            }
        }
    }
}
