//! The results: cells of rounds, rows of cells, printed as a table (also
//! valid Markdown) and written as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::common::Spread;

/// What a row's numbers are, which decides how they print and which way
/// is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Jobs per second: higher is better.
    Rate,
    /// Seconds: lower is better.
    Seconds,
}

impl Unit {
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Rate => rate(value),
            Unit::Seconds => seconds(value),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Rate => "jobs/s",
            Unit::Seconds => "s",
        }
    }
}

/// `12.3k/s`, `950/s`, `31.5/s`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 10_000.0 {
        format!("{:.1}k/s", per_sec / 1e3)
    } else if per_sec >= 1_000.0 {
        format!("{:.2}k/s", per_sec / 1e3)
    } else if per_sec >= 100.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

#[path = "../units.rs"]
mod units;
pub use units::seconds;

/// One library's figures in a row: a value per round, and what to say
/// about rounds that gave none.
#[derive(Debug, Clone)]
pub struct Cell {
    pub lib: &'static str,
    pub setting: &'static str,
    /// The setting in words, for the legend.
    pub described: String,
    /// One value per measured round.
    pub values: Vec<f64>,
    /// Rounds that were cut short (a drain's cap) or gave no value (a
    /// timeout, an error): said next to the figure.
    pub notes: Vec<String>,
    /// Printed instead of figures: a setting not measured on purpose.
    pub fixed: Option<String>,
}

impl Cell {
    pub fn new(lib: &'static str, setting: &'static str, described: String) -> Cell {
        Cell {
            lib,
            setting,
            described,
            values: Vec::new(),
            notes: Vec::new(),
            fixed: None,
        }
    }

    pub fn spread(&self) -> Option<Spread> {
        Spread::of(&self.values)
    }

    fn text(&self, unit: Unit) -> String {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let mut out = match self.spread() {
            None => String::new(),
            Some(s) if self.values.len() == 1 => unit.format(s.median),
            Some(s) => format!(
                "{} [{}..{}]",
                unit.format(s.median),
                unit.format(s.min),
                unit.format(s.max)
            ),
        };
        if !self.notes.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            // The same note from several rounds once, with a count.
            let mut counted: Vec<(&str, usize)> = Vec::new();
            for note in &self.notes {
                match counted.iter_mut().find(|(n, _)| *n == note.as_str()) {
                    Some((_, count)) => *count += 1,
                    None => counted.push((note, 1)),
                }
            }
            let notes: Vec<String> = counted
                .iter()
                .map(|(note, count)| match count {
                    1 => (*note).to_owned(),
                    n => format!("{note}, {n} rounds"),
                })
                .collect();
            let _ = write!(out, "({})", notes.join("; "));
        }
        if out.is_empty() {
            "—".to_owned()
        } else {
            out
        }
    }

    fn to_json(&self, unit: Unit) -> Value {
        json!({
            "lib": self.lib,
            "setting": self.setting,
            "described": self.described,
            "unit": unit.name(),
            "values": self.values,
            "median": self.spread().map(|s| s.median),
            "min": self.spread().map(|s| s.min),
            "max": self.spread().map(|s| s.max),
            "notes": self.notes,
            "fixed": self.fixed,
        })
    }
}

/// One line of the table: ours and each anchor on the same measurement.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub what: String,
    pub unit: Unit,
    pub ours: Cell,
    pub anchors: Vec<Cell>,
}

/// How much better ours is than the best anchor of a row: ours ÷ best for
/// rates, best ÷ ours for times, so > 1 means ours is better.
#[derive(Debug, Clone)]
pub struct Ratio {
    pub against: &'static str,
    pub spread: Spread,
}

impl Row {
    /// The anchor with the best median (only measured ones count).
    fn best(&self) -> Option<&Cell> {
        let measured = self.anchors.iter().filter(|c| c.fixed.is_none());
        let with_median = measured.filter_map(|c| Some((c, c.spread()?.median)));
        match self.unit {
            Unit::Rate => with_median.max_by(|a, b| a.1.total_cmp(&b.1)),
            Unit::Seconds => with_median.min_by(|a, b| a.1.total_cmp(&b.1)),
        }
        .map(|(cell, _)| cell)
    }

    pub fn ratio(&self) -> Option<Ratio> {
        let best = self.best()?;
        let ours = self.ours.spread()?;
        let theirs = best.spread()?;
        let better = |ours: f64, theirs: f64| match self.unit {
            Unit::Rate => ours / theirs,
            Unit::Seconds => theirs / ours,
        };
        // Rounds ran interleaved, so round i of each is a fair pair; the
        // median is the ratio of the medians either way.
        let spread = if best.values.len() == self.ours.values.len() && best.notes.is_empty() {
            let paired: Vec<f64> = self
                .ours
                .values
                .iter()
                .zip(&best.values)
                .map(|(&o, &t)| better(o, t))
                .collect();
            let p = Spread::of(&paired)?;
            Spread {
                median: better(ours.median, theirs.median),
                ..p
            }
        } else {
            let r = better(ours.median, theirs.median);
            Spread {
                median: r,
                min: r,
                max: r,
            }
        };
        Some(Ratio {
            against: best.lib,
            spread,
        })
    }

    fn cells(&self, anchor_libs: &[&'static str]) -> Vec<String> {
        let mut cells = vec![
            self.case.clone(),
            self.what.clone(),
            self.ours.text(self.unit),
        ];
        for lib in anchor_libs {
            let cell = self.anchors.iter().find(|c| c.lib == *lib);
            cells.push(cell.map_or("—".to_owned(), |c| c.text(self.unit)));
        }
        let ratio = match self.ratio() {
            None => "—".to_owned(),
            Some(r) => {
                let how = match self.unit {
                    Unit::Rate => format!("ours÷{}", r.against),
                    Unit::Seconds => format!("{}÷ours", r.against),
                };
                if r.spread.min == r.spread.max {
                    format!("{} {how}", factor(r.spread.median))
                } else {
                    format!(
                        "{} [{}..{}] {how}",
                        factor(r.spread.median),
                        factor(r.spread.min),
                        factor(r.spread.max)
                    )
                }
            }
        };
        cells.push(ratio);
        cells
    }

    fn to_json(&self) -> Value {
        json!({
            "case": self.case,
            "what": self.what,
            "unit": self.unit.name(),
            "ours": self.ours.to_json(self.unit),
            "anchors": self.anchors.iter().map(|c| c.to_json(self.unit)).collect::<Vec<_>>(),
            "ratio": self.ratio().map(|r| json!({
                "meaning": match self.unit {
                    Unit::Rate => "ours ÷ best anchor (throughput; > 1: ours better)",
                    Unit::Seconds => "best anchor ÷ ours (time; > 1: ours better)",
                },
                "against": r.against,
                "median": r.spread.median,
                "min": r.spread.min,
                "max": r.spread.max,
            })),
        })
    }
}

/// `4.21×`, `0.83×`, `12.3×`.
pub fn factor(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}×")
    } else if value >= 10.0 {
        format!("{value:.1}×")
    } else {
        format!("{value:.2}×")
    }
}

/// The rows as an aligned plain-text table (also valid Markdown).
pub fn table(rows: &[Row], anchor_headers: &[(&'static str, &'static str)]) -> String {
    let libs: Vec<&'static str> = anchor_headers.iter().map(|(lib, _)| *lib).collect();
    let mut headers = vec![
        "case".to_owned(),
        "what".to_owned(),
        "ours (worker-postgres)".to_owned(),
    ];
    headers.extend(
        anchor_headers
            .iter()
            .map(|(_, header)| (*header).to_owned()),
    );
    headers.push("ratio, > 1 = ours better: median [min..max]".to_owned());
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(&libs)).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, width) in cells.iter().zip(&widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
        out
    };
    let mut out = line(&headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// Which setting each cell of each row used, in words (once for rows
/// that share them, like the percentiles of one measurement).
pub fn legend(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for row in rows {
        let mut settings = format!("ours = {}", row.ours.described);
        for cell in &row.anchors {
            let _ = write!(settings, "; {} = {}", cell.lib, cell.described);
        }
        if settings != last {
            let _ = writeln!(out, "{} {}: {settings}", row.case, row.what);
            last = settings;
        }
    }
    out
}

/// Everything, for `--json`.
pub fn to_json(rows: &[Row], settings: Value) -> Value {
    json!({
        "settings": settings,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    })
}

/// `median [min..max]` of `values`, each shown by `show`.
pub fn spread(values: &[f64], show: impl Fn(f64) -> String) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    format!(
        "{} [{}..{}]",
        show(median),
        show(sorted[0]),
        show(sorted[sorted.len() - 1])
    )
}
