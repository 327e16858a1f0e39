//! The compile-time duration parser behind `timeout = "…"`.
//!
//! A duration is one or more `<integer><unit>` segments with no spaces, units
//! from largest to smallest, each unit at most once: `500ms`, `5s`, `1m30s`,
//! `1h`, `1s500ms`. Parsing happens in the macro so a typo is a compile error
//! on the literal instead of a panic when the worker first runs.

use std::fmt;
use std::time::Duration;

/// Appended to every error so the user sees what a valid value looks like.
pub(crate) const HINT: &str =
    "write a number and a unit (h, m, s, ms, us, ns), like \"500ms\", \"5s\" or \"1m30s\"";

/// Why a duration string was rejected, in words that fit after
/// `invalid timeout "…": `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    Empty,
    Whitespace,
    ExpectedNumber {
        found: char,
    },
    MissingUnit {
        after: String,
    },
    UnknownUnit {
        unit: String,
    },
    Fraction,
    OutOfOrder {
        unit: &'static str,
        previous: &'static str,
    },
    Repeated {
        unit: &'static str,
    },
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("it is empty"),
            DurationError::Whitespace => f.write_str("spaces are not allowed"),
            DurationError::ExpectedNumber { found } => {
                write!(f, "expected a number, found `{found}`")
            }
            DurationError::MissingUnit { after } => write!(f, "missing unit after `{after}`"),
            DurationError::UnknownUnit { unit } => write!(f, "unknown unit `{unit}`"),
            DurationError::Fraction => {
                f.write_str("fractions are not allowed; combine units instead, like \"1s500ms\"")
            }
            DurationError::OutOfOrder { unit, previous } => write!(
                f,
                "`{unit}` comes after `{previous}`; write units from largest to smallest"
            ),
            DurationError::Repeated { unit } => write!(f, "unit `{unit}` is given twice"),
            DurationError::Overflow => f.write_str("it is too large"),
        }
    }
}

/// Units from largest to smallest; the index is the rank used to check order.
/// Whole-second units multiply in checked `u64`, sub-second ones in `u128`,
/// so no count can wrap around silently.
const UNITS: &[(&str, Unit)] = &[
    ("h", Unit::Secs(3600)),
    ("m", Unit::Secs(60)),
    ("s", Unit::Secs(1)),
    ("ms", Unit::Nanos(1_000_000)),
    ("us", Unit::Nanos(1_000)),
    ("ns", Unit::Nanos(1)),
];

#[derive(Clone, Copy)]
enum Unit {
    Secs(u64),
    Nanos(u64),
}

impl Unit {
    fn times(self, count: u64) -> Option<Duration> {
        match self {
            Unit::Secs(per) => count.checked_mul(per).map(Duration::from_secs),
            Unit::Nanos(per) => {
                let nanos = u128::from(count) * u128::from(per);
                let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
                let rest = u32::try_from(nanos % 1_000_000_000).ok()?;
                Some(Duration::new(secs, rest))
            }
        }
    }
}

/// Looks a unit up by name; `µs` (micro sign or Greek mu) means `us`.
fn unit_rank(name: &str) -> Option<usize> {
    let name = match name {
        "\u{b5}s" | "\u{3bc}s" => "us",
        other => other,
    };
    UNITS.iter().position(|(unit, _)| *unit == name)
}

/// Parses `"1m30s"` into 90 seconds. Zero is a valid duration here; callers
/// that need a positive one (like `timeout`) check for it.
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(DurationError::Whitespace);
    }

    let mut rest = text;
    let mut total = Duration::ZERO;
    let mut previous: Option<usize> = None;
    while let Some(first) = rest.chars().next() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DurationError::ExpectedNumber { found: first });
        }
        let (digits, after_digits) = rest.split_at(digits_end);
        let unit_end = after_digits
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after_digits.len());
        let (unit, after_unit) = after_digits.split_at(unit_end);
        if unit.starts_with(['.', ',']) {
            return Err(DurationError::Fraction);
        }
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                after: digits.to_owned(),
            });
        }
        let rank = unit_rank(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
        })?;
        let name = UNITS[rank].0;
        if let Some(previous) = previous {
            if previous == rank {
                return Err(DurationError::Repeated { unit: name });
            }
            if previous > rank {
                return Err(DurationError::OutOfOrder {
                    unit: name,
                    previous: UNITS[previous].0,
                });
            }
        }
        previous = Some(rank);

        // Digits that don't fit in u64 are an overflow, not a parse error.
        let count: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
        let segment = UNITS[rank].1.times(count).ok_or(DurationError::Overflow)?;
        total = total.checked_add(segment).ok_or(DurationError::Overflow)?;
        rest = after_unit;
    }
    Ok(total)
}

/// `duration` in `worker_core::format_duration`'s notation: each non-zero
/// unit from hours down to nanoseconds, `0s` for zero. Written here again
/// since the runtime crate depends on this one, not the reverse. It is how
/// a duration the macro hands over as text (a rate's period) reaches the
/// runtime: its parser reads this notation, but not every spelling `parse`
/// accepts (`µs`).
pub(crate) fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let units: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let mut rest = duration.as_nanos();
    let mut out = String::new();
    for (size, unit) in units {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(text: &str) -> Duration {
        match parse(text) {
            Ok(duration) => duration,
            Err(err) => panic!("{text:?} should parse, got: {err}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(duration) => panic!("{text:?} should fail, got {duration:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_single_unit_parses() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7\u{b5}s"), Duration::from_micros(7));
        assert_eq!(ok("7\u{3bc}s"), Duration::from_micros(7));
        assert_eq!(ok("9ns"), Duration::from_nanos(9));
    }

    #[test]
    fn segments_add_up_from_largest_to_smallest() {
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
        assert_eq!(ok("1h2m3s4ms5us6ns"), Duration::new(3723, 4_005_006),);
    }

    #[test]
    fn sub_second_units_carry_into_seconds() {
        assert_eq!(ok("2500ms"), Duration::from_millis(2500));
        assert_eq!(ok("3000000000ns"), Duration::from_secs(3));
    }

    #[test]
    fn zero_is_a_duration_the_caller_may_reject() {
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0h0ms"), Duration::ZERO);
    }

    #[test]
    fn empty_is_rejected() {
        assert_eq!(err(""), "it is empty");
    }

    #[test]
    fn spaces_are_rejected() {
        assert_eq!(err("5 s"), "spaces are not allowed");
        assert_eq!(err(" 5s"), "spaces are not allowed");
        assert_eq!(err("1m 30s"), "spaces are not allowed");
    }

    #[test]
    fn an_unknown_unit_is_named() {
        assert_eq!(err("5x"), "unknown unit `x`");
        assert_eq!(err("5sec"), "unknown unit `sec`");
        assert_eq!(err("1d"), "unknown unit `d`");
        assert_eq!(err("5S"), "unknown unit `S`");
    }

    #[test]
    fn a_number_needs_a_unit() {
        assert_eq!(err("5"), "missing unit after `5`");
        assert_eq!(err("1m30"), "missing unit after `30`");
    }

    #[test]
    fn a_unit_needs_a_number() {
        assert_eq!(err("s"), "expected a number, found `s`");
        assert_eq!(err("-5s"), "expected a number, found `-`");
    }

    #[test]
    fn fractions_point_to_combined_units() {
        assert_eq!(
            err("1.5s"),
            "fractions are not allowed; combine units instead, like \"1s500ms\""
        );
    }

    #[test]
    fn units_must_decrease() {
        assert_eq!(
            err("30s1m"),
            "`m` comes after `s`; write units from largest to smallest"
        );
        assert_eq!(
            err("1ms1s"),
            "`s` comes after `ms`; write units from largest to smallest"
        );
    }

    #[test]
    fn a_unit_may_appear_once() {
        assert_eq!(err("1s1s"), "unit `s` is given twice");
        assert_eq!(err("1us1\u{b5}s"), "unit `us` is given twice");
    }

    #[test]
    fn overflow_is_an_error_not_a_wraparound() {
        assert_eq!(err("99999999999999999999s"), "it is too large");
        assert_eq!(err("18446744073709551615h"), "it is too large");
        assert_eq!(err("18446744073709551615s1000ms"), "it is too large");
        assert_eq!(ok("18446744073709551615ns"), Duration::from_nanos(u64::MAX));
    }

    /// [`format`] with another spelling of micro-seconds, which `parse`
    /// reads too.
    fn format_with(duration: Duration, micro: &str) -> String {
        // No other unit has "us" in it.
        format(duration).replace("us", micro)
    }

    #[test]
    fn the_formatter_matches_the_documented_examples() {
        for (duration, text) in [
            (Duration::from_millis(50), "50ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_micros(1500), "1ms500us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format(duration), text);
        }
    }

    /// Durations of every size: whole units, sub-second parts, and the
    /// extremes up to `Duration::MAX`.
    fn duration() -> impl Strategy<Value = Duration> {
        let secs = prop_oneof![
            Just(0_u64),
            0..10_u64,
            0..100_000_u64,
            any::<u64>(),
            Just(u64::MAX),
        ];
        let nanos = prop_oneof![
            Just(0_u32),
            (0..1000_u32).prop_map(|ms| ms * 1_000_000),
            (0..1_000_000_u32).prop_map(|us| us * 1_000),
            0..1_000_000_000_u32,
        ];
        (secs, nanos).prop_map(|(secs, nanos)| Duration::new(secs, nanos))
    }

    /// Strings made of what durations are made of, and anything else.
    fn duration_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9hmsun\u{b5}\u{3bc}., -]{0,24}",
            "([0-9]{1,22}(h|m|s|ms|us|ns|\u{b5}s|x)){1,4}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(crate::testing::config(1024))]

        #[test]
        fn any_formatted_duration_parses_back(duration in duration(), micro in prop::sample::select(&["us", "\u{b5}s", "\u{3bc}s"][..])) {
            let text = format_with(duration, micro);
            prop_assert_eq!(parse(&text), Ok(duration), "{}", text);
        }

        #[test]
        fn no_string_panics_the_parser(text in duration_like()) {
            let parsed = std::panic::catch_unwind(|| parse(&text));
            prop_assert!(parsed.is_ok(), "parse({:?}) panicked", text);
            // What parses is a duration the formatter can write, and that
            // reads back the same.
            if let Ok(Ok(duration)) = parsed {
                prop_assert_eq!(parse(&format(duration)), Ok(duration));
            }
        }
    }
}
