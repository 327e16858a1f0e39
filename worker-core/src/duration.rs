//! Durations written the way a person writes them: `50ms`, `5s`, `1m30s`.

use std::time::Duration;

const UNITS: [(u128, &str); 6] = [
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "us"),
    (1, "ns"),
];

/// Formats a duration as its non-zero units from hours down to nanoseconds,
/// the same notation `#[worker(timeout = "…")]` accepts.
///
/// ```
/// use std::time::Duration;
/// use worker_core::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(50)), "50ms");
/// assert_eq!(format_duration(Duration::from_secs(5)), "5s");
/// assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
/// assert_eq!(format_duration(Duration::from_micros(1500)), "1ms500us");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let mut rest = duration.as_nanos();
    let mut out = String::new();
    for (size, unit) in UNITS {
        if rest >= size {
            out.push_str(&(rest / size).to_string());
            out.push_str(unit);
            rest %= size;
        }
    }
    out
}

/// Parses a duration in the notation [`format_duration`] prints and
/// `#[worker(timeout = "…")]` takes: `<integer><unit>` segments, units
/// from largest to smallest (`h m s ms us ns`), each at most once. The
/// macro checks the same grammar at compile time; this is its run-time
/// twin, for values given as text (`WorkerOptions::rate`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("the duration is empty".to_owned());
    }
    let mut rest = text;
    let mut total: u128 = 0;
    let mut previous: Option<usize> = None;
    while let Some(first) = rest.chars().next() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!("expected a number, found `{first}`"));
        }
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (written, next) = after.split_at(unit_end);
        // The micro sign and the Greek mu, as the macro reads them.
        let unit = match written {
            "\u{b5}s" | "\u{3bc}s" => "us",
            other => other,
        };
        if unit.is_empty() {
            return Err(format!("missing unit after `{digits}`"));
        }
        let rank = UNITS
            .iter()
            .position(|(_, name)| *name == unit)
            .ok_or_else(|| format!("unknown unit `{unit}`"))?;
        if previous.is_some_and(|previous| previous >= rank) {
            return Err(format!(
                "`{unit}` is out of order or repeated; write units from largest to smallest"
            ));
        }
        previous = Some(rank);
        let count: u128 = digits.parse().map_err(|_| "it is too large".to_owned())?;
        total = count
            .checked_mul(UNITS[rank].0)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or_else(|| "it is too large".to_owned())?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "it is too large".to_owned())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// How long something took, for a log line: whole milliseconds from 1ms up
/// (`201ms`, `1s250ms`), whole microseconds below (`22us`).
pub(crate) fn format_elapsed(elapsed: Duration) -> String {
    let rounded = if elapsed >= Duration::from_millis(1) {
        Duration::from_millis(elapsed.as_millis() as u64)
    } else {
        Duration::from_micros(elapsed.as_micros() as u64)
    };
    format_duration(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_each_non_zero_unit_largest_first() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(format_duration(Duration::from_secs(7200 + 59)), "2h59s");
    }

    #[test]
    fn parsing_reads_back_what_formatting_prints() {
        for duration in [
            Duration::from_millis(50),
            Duration::from_secs(90),
            Duration::from_secs(3661),
            Duration::from_nanos(1_500_007),
        ] {
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
        assert!(
            parse_duration("1d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
        assert!(
            parse_duration("1s1m")
                .unwrap_err()
                .contains("largest to smallest")
        );
        assert!(
            parse_duration("s")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn elapsed_times_are_rounded_for_people() {
        assert_eq!(format_elapsed(Duration::from_nanos(201_928_224)), "201ms");
        assert_eq!(format_elapsed(Duration::from_nanos(22_313)), "22us");
        assert_eq!(
            format_elapsed(Duration::from_nanos(1_250_400_000)),
            "1s250ms"
        );
        assert_eq!(format_elapsed(Duration::from_nanos(300)), "0s");
    }
}
