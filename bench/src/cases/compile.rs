//! B8: what `#[worker]` costs at compile time.
//!
//! Two throw-away crates are generated under `target/bench-compile/`, each
//! with 200 workers: one declares them with `#[worker]`, the other
//! registers 200 equivalent closures with `manager.register(..)`. Both
//! depend on this workspace's `worker-core` by absolute path and get the
//! workspace's `Cargo.lock`, so they resolve the same versions, offline.
//! Dependencies are built once to warm up; then each round cleans just the
//! generated crate and times `cargo build` of it alone (debug profile),
//! alternating which crate goes first. Full runs only: it takes a while.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;

use super::Env;
use crate::harness::{Spread, median, per_round};
use crate::report::{Row, Target, Unit, seconds};

/// Workers per generated crate.
const WORKERS: usize = 200;
const ROUNDS: usize = 3;

/// The two generated crates: (package name, directory name).
const MACRO: &str = "bench-compile-macro";
const MANUAL: &str = "bench-compile-manual";

pub fn b8(_env: &Env) -> Vec<Row> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .canonicalize()
        .expect("workspace path");
    let root = workspace.join("target/bench-compile");
    let target_dir = root.join("target");
    let crates = [
        generate(&workspace, &root, MACRO, &macro_source()),
        generate(&workspace, &root, MANUAL, &manual_source()),
    ];

    // Warm-up: fetch if need be, build the dependencies once.
    for dir in &crates {
        if !cargo(dir, &target_dir, &["build", "--offline"]) {
            assert!(
                cargo(dir, &target_dir, &["build"]),
                "B8: can't build {}",
                dir.display()
            );
        }
    }

    let mut times = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for k in 0..2 {
            let i = (round + k) % 2;
            let (dir, name) = (&crates[i], [MACRO, MANUAL][i]);
            assert!(cargo(dir, &target_dir, &["clean", "--offline", "-p", name]));
            let start = Instant::now();
            assert!(
                cargo(dir, &target_dir, &["build", "--offline"]),
                "B8: build of {name} failed"
            );
            times[i].push(start.elapsed().as_secs_f64());
        }
    }
    let [with_macro, manual] = times;
    let ratios = per_round(&with_macro, &manual, |m, r| m / r);
    let (m, r) = (median(&with_macro), median(&manual));
    vec![Row {
        id: "B8".to_owned(),
        what: format!("cargo build: {WORKERS} #[worker] fns vs {WORKERS} register(closure)"),
        project: seconds(m),
        raw: format!("{} (register calls)", seconds(r)),
        headline: Some(Spread {
            median: m / r,
            ..Spread::of(&ratios)
        }),
        unit: Unit::Factor,
        target: Some(Target::AtMost(1.5)),
        details: json!({
            "workers": WORKERS,
            "macro_seconds": with_macro,
            "manual_seconds": manual,
            "ratios": ratios,
        }),
    }]
}

/// Runs cargo quietly in `dir`; `true` if it succeeded. Uses the cargo
/// that runs this benchmark when there is one.
fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) -> bool {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .arg("--quiet")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("run cargo");
    if !output.status.success() {
        eprintln!(
            "B8: cargo {} in {} failed:\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

/// Writes one crate (manifest, lock file, `src/main.rs`) and returns its
/// directory.
fn generate(workspace: &Path, root: &Path, name: &str, main_rs: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("src")).expect("create crate dir");
    let core = workspace.join("worker-core");
    // `[workspace]` makes it its own workspace root, not a stray member of
    // the one it sits in.
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
worker-core = {{ path = "{core}" }}
tokio = {{ version = "1.54", default-features = false, features = ["rt"] }}
serde_json = "1"

[workspace]
"#,
        core = core.display()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    std::fs::write(dir.join("src/main.rs"), main_rs).expect("write main.rs");
    dir
}

/// The body every worker has, in both crates: a log line and a message.
fn body(i: usize) -> String {
    format!("ctx.info(\"worker {i}\");\n    ctx.emit(json!({{\"worker\": {i}}}))?;\n    Ok(())")
}

fn macro_source() -> String {
    let mut src = String::from(
        "use worker_core::prelude::*;\nuse worker_core::worker;\n\n\
         fn main() {\n    \
         let manager = WorkerManager::new();\n    \
         let added = manager.register_declared().expect(\"register\");\n    \
         println!(\"{added}\");\n}\n",
    );
    for i in 0..WORKERS {
        src.push_str(&format!(
            "\n#[worker(\"w-{i:03}\")]\nasync fn w_{i:03}(ctx: WorkerContext) -> Result<()> {{\n    {}\n}}\n",
            body(i)
        ));
    }
    src
}

fn manual_source() -> String {
    let mut src = String::from(
        "use worker_core::prelude::*;\n\n\
         fn main() {\n    \
         let rt = tokio::runtime::Builder::new_current_thread().build().expect(\"runtime\");\n    \
         let manager = WorkerManager::new();\n    \
         rt.block_on(install(&manager)).expect(\"register\");\n    \
         let names = rt.block_on(manager.definitions()).expect(\"names\");\n    \
         println!(\"{}\", names.len());\n}\n\n\
         async fn install(manager: &WorkerManager) -> Result<()> {\n",
    );
    for i in 0..WORKERS {
        src.push_str(&format!(
            "    manager\n        .register(\"w-{i:03}\", |ctx| async move {{\n    {}\n        }})\n        .await?;\n",
            body(i)
        ));
    }
    src.push_str("    Ok(())\n}\n");
    src
}
