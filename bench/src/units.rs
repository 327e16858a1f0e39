//! Durations in words, for both benches' reports (the durable bench
//! includes this file by path, so it imports nothing).

/// `1.23 µs`, `456 ns`, `12.3 ms`: three significant digits.
pub fn seconds(secs: f64) -> String {
    let (value, unit) = if secs < 1e-6 {
        (secs * 1e9, "ns")
    } else if secs < 1e-3 {
        (secs * 1e6, "µs")
    } else if secs < 1.0 {
        (secs * 1e3, "ms")
    } else {
        (secs, "s")
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {unit}")
}
