//! (h) What a workflow costs in durable mode: diamonds of 4 no-op steps
//! (1 → 2 → 1), stored first, then drained by one node, against the same
//! number of independent runs of the same worker stored the same way and
//! drained the same way, interleaved in one run. The difference is the
//! workflow's: its rows, the held runs, the trigger that releases each
//! child in its last parent's ending, and the parents' outputs handed on.
//! No anchor in this bench has workflows in its open-source edition.

use std::fmt::Write as _;

use super::common::Result;
use super::ours;
use super::report;
use super::{Leg, OURS, Outcome, Plan, rounds};

/// The legs, the baseline first.
const LEGS: [(&str, &str); 2] = [
    ("runs", "independent runs"),
    ("diamonds", "diamonds of 4 steps (1 → 2 → 1)"),
];

/// Runs (h) and returns its table, in Markdown.
pub async fn cost(admin_url: &str, plan: &Plan) -> Result<String> {
    let mut legs: Vec<Leg> = LEGS
        .iter()
        .map(|(setting, _)| Leg::new(&OURS, setting))
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
            let drained = ours::drain_steps(url, leg.setting(), steps, cap).await?;
            let shown = format!(
                "{} steps/s, {} steps in {:.2} s",
                report::rate(drained.rate()),
                steps,
                drained.elapsed.as_secs_f64()
            );
            Ok(if drained.complete {
                Outcome::Value(drained.rate(), shown)
            } else {
                Outcome::Partial(
                    drained.rate(),
                    format!("capped at {} s", cap.as_secs()),
                    shown,
                )
            })
        },
    )
    .await?;
    let baseline = legs[0].cell.values.clone();
    let mut out = String::from(
        "| leg | drained by 1 node ×32 | steps/s: median [min..max] | time per step ÷ independent runs', by round: median [min..max] |\n|---|---|---|---|\n",
    );
    for (leg, (setting, what)) in legs.iter().zip(LEGS) {
        let values = &leg.cell.values;
        let ratios: Vec<f64> = values
            .iter()
            .zip(&baseline)
            .map(|(flows, runs)| runs / flows)
            .collect();
        let _ = writeln!(
            out,
            "| {setting} | {what}, {steps} steps | {} | {} |",
            report::spread(values, report::rate),
            if setting == "runs" {
                "1".to_owned()
            } else {
                report::spread(&ratios, |r| format!("{r:.2}×"))
            }
        );
        for note in &leg.cell.notes {
            let _ = writeln!(out, "|   | note: {note} | | |");
        }
    }
    Ok(out)
}
