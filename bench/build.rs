//! Generates the 1,000 `#[worker]` fns that B7 gathers with
//! `register_declared()`: written out rather than made by a macro_rules
//! loop so they are exactly what a user would write, one attribute each.

use std::fmt::Write as _;
use std::path::Path;

/// Keep in step with `cases::startup::DECLARED`.
const DECLARED: usize = 1_000;

fn main() {
    let mut code = String::new();
    for i in 0..DECLARED {
        let _ = writeln!(
            code,
            "#[worker(\"gen-{i:04}\")]\nasync fn gen_{i:04}(_ctx: WorkerContext) -> Result<()> {{\n    Ok(())\n}}\n"
        );
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo");
    std::fs::write(Path::new(&out).join("generated_workers.rs"), code)
        .expect("write generated_workers.rs");
    println!("cargo::rerun-if-changed=build.rs");
}
