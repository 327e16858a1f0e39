//! (h) What a workflow costs in durable mode: diamonds of 4 no-op steps
//! (1 → 2 → 1), stored first, then drained by one node, against the same
//! number of independent runs of the same worker stored the same way and
//! drained the same way, interleaved in one run. The difference is the
//! workflow's: its rows, the held runs, the trigger that releases each
//! child in its last parent's ending, and the parents' outputs handed on.
//! The one anchor with workflows in its open-source edition, apalis
//! (apalis-workflow's DAGs on apalis-postgres), drains the same diamonds
//! and its own independent jobs the same way, so that both its own cost
//! of a workflow and the cross comparison show.

use std::fmt::Write as _;

use super::common::{Queue, Result};
use super::report;
use super::{APALIS, Leg, OURS, Outcome, Plan, apalis, ours, rounds};

/// The legs: (library, setting, row, what), our independent runs first,
/// each library's independent runs before its diamonds.
const LEGS: [(&str, &str, &str, &str); 4] = [
    ("ours", "runs", "runs", "independent runs"),
    (
        "ours",
        "diamonds",
        "diamonds",
        "diamonds of 4 steps (1 → 2 → 1)",
    ),
    (
        "apalis",
        "runs",
        "apalis runs",
        "apalis-postgres 1.0 independent jobs (defaults)",
    ),
    (
        "apalis",
        "diamonds",
        "apalis-workflow diamonds",
        "apalis-workflow 1.0 `GraphFlow` diamonds on apalis-postgres (defaults)",
    ),
];

/// Runs (h) and returns its table, in Markdown.
pub async fn cost(admin_url: &str, plan: &Plan) -> Result<String> {
    let mut legs: Vec<Leg> = LEGS
        .iter()
        .map(|&(lib, setting, ..)| {
            let queue: &'static dyn Queue = if lib == "ours" { &OURS } else { &APALIS };
            Leg::new(queue, setting)
        })
        .collect();
    // 1,000 diamonds in a full run: the size.
    let steps = (plan.drain_jobs / 10 * 4).max(40);
    let cap = plan.drain_cap * 4;
    rounds(
        admin_url,
        "h",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let drained = if leg.cell.lib == "ours" {
                ours::drain_steps(url, leg.setting(), steps, cap).await?
            } else {
                apalis::drain_steps(url, leg.setting(), steps, cap).await?
            };
            let shown = format!(
                "{} steps/s, {} steps in {:.2} s",
                report::rate(drained.rate()),
                drained.done,
                drained.elapsed.as_secs_f64()
            );
            Ok(Outcome::of_drain(&drained, cap, shown))
        },
    )
    .await?;
    // Time per step ÷ a baseline's, by round: the baseline's rate ÷ the leg's.
    let per_round = |values: &[f64], baseline: &[f64]| -> String {
        let ratios: Vec<f64> = values
            .iter()
            .zip(baseline)
            .map(|(leg, runs)| runs / leg)
            .collect();
        report::spread(&ratios, |r| format!("{r:.2}×"))
    };
    let ours_runs = &legs[0].cell.values;
    let mut out = String::from(
        "| leg | drained by 1 node ×32 | steps/s: median [min..max] | time per step ÷ our independent runs', by round: median [min..max] | ÷ its own library's independent runs', by round |\n|---|---|---|---|---|\n",
    );
    for (leg, (lib, setting, row, what)) in legs.iter().zip(LEGS) {
        let values = &leg.cell.values;
        let own_runs = &legs
            .iter()
            .find(|l| l.cell.lib == lib && l.setting() == "runs")
            .expect("each library's runs")
            .cell
            .values;
        let _ = writeln!(
            out,
            "| {row} | {what}, {steps} steps | {} | {} | {} |",
            report::spread(values, report::rate),
            if (lib, setting) == ("ours", "runs") {
                "1".to_owned()
            } else {
                per_round(values, ours_runs)
            },
            if setting == "runs" {
                "1".to_owned()
            } else {
                per_round(values, own_runs)
            }
        );
        for note in &leg.cell.notes {
            let _ = writeln!(out, "|   | note: {note} | | | |");
        }
    }
    Ok(out)
}
