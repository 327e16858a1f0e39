//! worker-core against the raw-tokio equivalent, side by side in one process.
//!
//! ```text
//! cargo run --release -p bench                  # full run, a few minutes
//! cargo run --release -p bench -- --quick       # smoke run for CI
//! cargo run --release -p bench -- --case B1,B3j --json results.json
//! ```
//!
//! Nothing here asserts on timings: the output is a report, and the
//! "met" column compares each figure with the issue's target.

mod cases;
mod harness;
mod report;
mod units;

use std::process::ExitCode;
use std::time::Instant;

use tokio::runtime::Runtime;

use crate::cases::{CASES, Env};

const USAGE: &str = "\
usage: bench [--quick] [--case ID[,ID..]] [--json FILE] [--budget-ms MS]

  --quick        tiny sizes and 2-3 rounds: checks the harness, not the speed
  --case IDS     run only these cases (comma-separated, e.g. B1,B3j)
  --json FILE    also write the results as JSON to FILE
  --budget-ms MS time per measurement of the cases sized by time
                 (default 15, quick 2); raise it under a profiler
";

#[derive(Debug, Default)]
struct Args {
    quick: bool,
    cases: Option<Vec<String>>,
    json: Option<String>,
    budget_ms: Option<u64>,
    /// Hidden: run one B5 leg in this (child) process.
    child: Option<String>,
    /// Hidden: how many runs the B5 child starts.
    runs: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--case" | "--cases" => {
                let ids = value("--case")?;
                let ids: Vec<String> = ids.split(',').map(|id| id.trim().to_owned()).collect();
                for id in &ids {
                    if !CASES.iter().any(|case| case.id.eq_ignore_ascii_case(id)) {
                        let known: Vec<_> = CASES.iter().map(|case| case.id).collect();
                        return Err(format!("unknown case {id:?}; known: {}", known.join(",")));
                    }
                }
                args.cases = Some(ids);
            }
            "--json" => args.json = Some(value("--json")?),
            "--budget-ms" => {
                let ms = value("--budget-ms")?;
                args.budget_ms = Some(ms.parse().map_err(|_| format!("bad --budget-ms {ms:?}"))?);
            }
            "--child" => args.child = Some(value("--child")?),
            "--runs" => {
                let runs = value("--runs")?;
                args.runs = Some(runs.parse().map_err(|_| format!("bad --runs {runs:?}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The runtime every timed case uses: multi-thread with 2 workers, so
/// "outside" (`block_on` from main) and "in a task" are both meaningful and
/// two loops can run on two cores.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("bench: {error}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(kind) = &args.child {
        cases::memory::child(kind, args.runs.unwrap_or(100_000));
    }

    let rt = runtime();
    let env = Env {
        rt: &rt,
        quick: args.quick,
        budget: args.budget_ms.map(std::time::Duration::from_millis),
    };
    let mode = if args.quick { "quick" } else { "full" };
    let selected = CASES.iter().filter(|case| match &args.cases {
        Some(ids) => ids.iter().any(|id| case.id.eq_ignore_ascii_case(id)),
        None => !(args.quick && case.full_only),
    });

    let started = Instant::now();
    let mut rows = Vec::new();
    for case in selected {
        eprint!("{:<4} … ", case.id);
        let took = Instant::now();
        let case_rows = (case.run)(&env);
        eprintln!("{:.1} s", took.elapsed().as_secs_f64());
        rows.extend(case_rows);
    }
    drop(rt);

    println!(
        "\nworker-core vs raw tokio ({mode} run, {:.0} s; ratio = project ÷ raw unless the case says otherwise)\n",
        started.elapsed().as_secs_f64()
    );
    print!("{}", report::table(&rows));

    if let Some(path) = &args.json {
        let json = report::to_json(&rows, mode);
        let text = serde_json::to_string_pretty(&json).expect("serialize results");
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("bench: can't write {path}: {error}");
            return ExitCode::FAILURE;
        }
        eprintln!("results written to {path}");
    }
    ExitCode::SUCCESS
}
