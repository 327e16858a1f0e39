//! Times as the JSON API gives them: milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds, to 0.1 ms.
pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
