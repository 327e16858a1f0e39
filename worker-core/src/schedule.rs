//! When a scheduled worker's next tick is: a fixed interval, or the next
//! instant a cron expression matches in a time zone. Pure computation on
//! timestamps; the timer that acts on it is `scheduler`.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::options::WorkerOptions;

/// A worker's schedule, parsed.
#[derive(Clone)]
pub(crate) enum Schedule {
    Every(Duration),
    Cron { cron: Box<Cron>, zone: TimeZone },
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => f.debug_tuple("Every").field(interval).finish(),
            Schedule::Cron { cron, zone } => f
                .debug_struct("Cron")
                .field("pattern", &cron.as_str())
                .field("zone", &zone.iana_name())
                .finish(),
        }
    }
}

impl Schedule {
    /// The schedule the options declare, if any; the error says what is
    /// wrong with the expression or the zone.
    pub(crate) fn of(options: &WorkerOptions) -> Result<Option<Schedule>, String> {
        if let Some(interval) = options.get_every() {
            return Ok(Some(Schedule::Every(interval)));
        }
        let Some(expression) = options.get_cron() else {
            return Ok(None);
        };
        let cron = parse_cron(expression)?;
        let zone = match options.get_tz() {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|error| {
                format!(
                    "unknown time zone {name:?} ({error}); use an IANA name like \"Europe/Berlin\""
                )
            })?,
        };
        Ok(Some(Schedule::Cron {
            cron: Box::new(cron),
            zone,
        }))
    }

    /// The first tick strictly after `after`; `None` for a fixed interval
    /// (its timer keeps the cadence itself) or a cron expression that never
    /// matches again.
    pub(crate) fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let Schedule::Cron { cron, zone } = self else {
            return None;
        };
        let zoned = after.to_zoned(zone.clone());
        let next = cron.find_next_occurrence(&zoned, false).ok()?;
        // A match inside a repeated hour is found twice, once per pass
        // through it: the second pass is not a new tick.
        let next = next.timestamp();
        (next > after).then_some(next)
    }
}

/// Parses a cron expression of 5 fields, or 6 with seconds first.
pub(crate) fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|error| format!("invalid cron expression {expression:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin(expression: &str) -> Schedule {
        Schedule::of(&WorkerOptions::new().cron(expression).tz("Europe/Berlin"))
            .unwrap()
            .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// The ticks after `start`, as UTC text.
    fn ticks(schedule: &Schedule, start: &str, n: usize) -> Vec<String> {
        let mut after = at(start);
        (0..n)
            .map(|_| {
                after = schedule.next_after(after).unwrap();
                after.to_string()
            })
            .collect()
    }

    #[test]
    fn five_fields_are_minutes_first_and_six_have_seconds_first() {
        let utc = |e: &str| {
            Schedule::of(&WorkerOptions::new().cron(e))
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            ticks(&utc("0 3 * * *"), "2026-11-28T12:00:00Z", 2),
            ["2026-11-29T03:00:00Z", "2026-11-30T03:00:00Z"]
        );
        assert_eq!(
            ticks(&utc("30 0 3 * * *"), "2026-11-28T12:00:00Z", 1),
            ["2026-11-29T03:00:30Z"]
        );
        // POSIX weekdays: 0 is Sunday. 2026-11-29 is a Sunday.
        assert_eq!(
            ticks(&utc("0 9 * * 0"), "2026-11-28T12:00:00Z", 1),
            ["2026-11-29T09:00:00Z"]
        );
    }

    #[test]
    fn a_tick_in_the_spring_gap_runs_at_the_first_instant_after_it() {
        // Berlin skips 02:00–03:00 on 2026-03-29: 02:30 doesn't exist.
        assert_eq!(
            ticks(&berlin("30 2 * * *"), "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T01:00:00Z", // 03:00 CEST, the first instant after the gap
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ]
        );
    }

    #[test]
    fn a_tick_in_the_repeated_autumn_hour_runs_once() {
        // Berlin repeats 02:00–03:00 on 2026-10-25.
        assert_eq!(
            ticks(&berlin("30 2 * * *"), "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let problem = |o: WorkerOptions| Schedule::of(&o).unwrap_err();
        assert!(
            problem(WorkerOptions::new().cron("61 * * * *"))
                .starts_with("invalid cron expression \"61 * * * *\"")
        );
        assert!(problem(WorkerOptions::new().cron("* * *")).starts_with("invalid cron expression"));
        assert!(
            problem(WorkerOptions::new().cron("0 3 * * *").tz("Mars/Olympus"))
                .starts_with("unknown time zone \"Mars/Olympus\"")
        );
    }
}
