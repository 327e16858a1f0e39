//! Results: one row per measured comparison, printed as a table and
//! written as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::harness::Spread;

/// What the row's headline number is, which decides how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A dimensionless factor (project ÷ raw, a throughput ratio, a
    /// scaling factor): printed `0.83×`.
    Factor,
    /// Seconds: printed in ns, µs, ms or s.
    Seconds,
}

impl Unit {
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Factor if value >= 100.0 => format!("{value:.0}×"),
            Unit::Factor if value >= 10.0 => format!("{value:.1}×"),
            Unit::Factor => format!("{value:.2}×"),
            Unit::Seconds => seconds(value),
        }
    }
}

pub use crate::units::seconds;

/// `3.31 KB`, `512 B`.
pub fn bytes(bytes: f64) -> String {
    if bytes.abs() >= 1000.0 {
        format!("{:.2} KB", bytes / 1000.0)
    } else {
        format!("{bytes:.0} B")
    }
}

/// `100k`, `1M`, `250`: an operation count for a label.
pub fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A goal for the headline number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
    Below(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(limit) => value <= limit,
            Target::AtLeast(limit) => value >= limit,
            Target::Below(limit) => value < limit,
        }
    }

    fn format(self, unit: Unit) -> String {
        match self {
            Target::AtMost(v) => format!("≤ {}", unit.format(v)),
            Target::AtLeast(v) => format!("≥ {}", unit.format(v)),
            Target::Below(v) => format!("< {}", unit.format(v)),
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The case id as given to `--case` (`B3j`), possibly with a suffix
    /// for a second row of the same case (`B6 raw`).
    pub id: String,
    pub what: String,
    /// The project's figure, formatted (median per operation, usually).
    pub project: String,
    /// The raw-tokio figure, formatted; empty when there is none.
    pub raw: String,
    /// The number compared with the target: median and range.
    pub headline: Option<Spread>,
    pub unit: Unit,
    pub target: Option<Target>,
    /// Anything else worth keeping, in base units, for `--json`.
    pub details: Value,
}

impl Row {
    pub fn met(&self) -> Option<bool> {
        Some(self.target?.met(self.headline?.median))
    }

    fn cells(&self) -> [String; 7] {
        let headline = match self.headline {
            None => "—".to_owned(),
            Some(s) if s.min == s.max => self.unit.format(s.median),
            Some(s) => format!(
                "{} [{}..{}]",
                self.unit.format(s.median),
                self.unit.format(s.min),
                self.unit.format(s.max)
            ),
        };
        let target = self.target.map_or("—".to_owned(), |t| t.format(self.unit));
        let met = match self.met() {
            None => "",
            Some(true) => "yes",
            Some(false) => "NO",
        };
        [
            self.id.clone(),
            self.what.clone(),
            self.project.clone(),
            self.raw.clone(),
            headline,
            target,
            met.to_owned(),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "what": self.what,
            "project": self.project,
            "raw": self.raw,
            "headline": self.headline.map(|s| json!({
                "median": s.median, "min": s.min, "max": s.max,
                "unit": match self.unit { Unit::Factor => "factor", Unit::Seconds => "s" },
            })),
            "target": self.target.map(|t| match t {
                Target::AtMost(v) => json!({"at_most": v}),
                Target::AtLeast(v) => json!({"at_least": v}),
                Target::Below(v) => json!({"below": v}),
            }),
            "met": self.met(),
            "details": self.details,
        })
    }
}

const HEADERS: [&str; 7] = [
    "case",
    "what",
    "project",
    "raw tokio",
    "ratio: median [min..max]",
    "target",
    "met",
];

/// The rows as an aligned plain-text table (also valid Markdown).
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, width) in cells.iter().zip(widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
        out
    };
    let mut out = line(&HEADERS.map(str::to_owned));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// Everything, for `--json`.
pub fn to_json(rows: &[Row], mode: &str) -> Value {
    json!({
        "mode": mode,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(seconds(123e-9), "123 ns");
        assert_eq!(seconds(1.234e-6), "1.23 µs");
        assert_eq!(seconds(12.34e-3), "12.3 ms");
        assert_eq!(bytes(3300.0), "3.30 KB");
        assert_eq!(Unit::Factor.format(0.0834), "0.08×");
        assert_eq!(Unit::Factor.format(12.34), "12.3×");
    }

    #[test]
    fn targets() {
        assert!(Target::AtMost(1.5).met(1.5));
        assert!(!Target::Below(1.0).met(1.0));
        assert!(Target::AtLeast(0.9).met(0.95));
    }
}
