//! (f) and (g): what cluster-wide limits cost. Our side only: the same
//! drain as (a), of one worker with limits, against the same drain
//! without them, interleaved in one run (no anchor in this bench limits
//! across processes in its open-source edition).

use std::fmt::Write as _;

use super::common::Result;
use super::ours;
use super::report;
use super::{Leg, OURS, Outcome, Plan, rounds};

/// The legs, the baseline first.
const LEGS: [(&str, &str, &str); 4] = [
    ("no-limits", "-", "the same drain without limits"),
    ("global-32", "f", "global_concurrency = 32"),
    ("rate-above", "f", "rate above the drain rate"),
    ("keys-20", "g", "20 keys, key_concurrency = 1"),
];

/// Runs (f) and (g) and returns their table, in Markdown.
pub async fn cost(admin_url: &str, plan: &Plan) -> Result<String> {
    let mut legs: Vec<Leg> = LEGS
        .iter()
        .map(|(setting, ..)| Leg::new(&OURS, setting))
        .collect();
    let jobs = plan.drain_jobs;
    let cap = plan.drain_cap;
    // The most runs of one key at once, per round of the keyed leg.
    let mut most_per_key = Vec::new();
    rounds(
        admin_url,
        "f/g",
        plan,
        &mut legs,
        async |leg: &Leg, url: &str| {
            let (drained, most) = ours::drain_limited(url, leg.setting(), jobs, cap).await?;
            if leg.setting() == "keys-20" {
                most_per_key.push(most);
            }
            let shown = format!(
                "{} in {:.2} s, at most {most} of one key at once",
                report::rate(drained.rate()),
                drained.elapsed.as_secs_f64()
            );
            Ok(Outcome::of_drain(&drained, cap, shown))
        },
    )
    .await?;
    let baseline = legs[0].cell.values.clone();
    let mut out = String::from(
        "| case | drain of queued no-op runs, 1 node ×32 | runs/s: median [min..max] | ÷ without limits, by round: median [min..max] |\n|---|---|---|---|\n",
    );
    for (leg, (_, case, what)) in legs.iter().zip(LEGS) {
        let values = &leg.cell.values;
        let ratios: Vec<f64> = values
            .iter()
            .zip(&baseline)
            .map(|(limited, plain)| limited / plain)
            .collect();
        let _ = writeln!(
            out,
            "| {case} | {what} | {} | {} |",
            report::spread(values, report::rate),
            if case == "-" {
                "1".to_owned()
            } else {
                report::spread(&ratios, |r| format!("{r:.2}"))
            }
        );
        for note in &leg.cell.notes {
            let _ = writeln!(out, "|   | note: {note} | | |");
        }
    }
    let _ = writeln!(
        out,
        "\n(g) most runs of one key holding a slot at one instant (claim to release), as the database recorded them, by round: {most_per_key:?} (key_concurrency = 1)"
    );
    Ok(out)
}
