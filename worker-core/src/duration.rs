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
