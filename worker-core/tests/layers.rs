//! worker-core's modules form layers (see the diagram in `src/lib.rs`):
//! each imports only from its own layer or below, and never in a circle.
//! This reads the sources, so a new `use crate::…` that goes up a layer or
//! closes a loop fails here with the offending path.

mod module_graph;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first; keep in step with the diagram in `src/lib.rs`.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "sync",
            "duration",
            "error",
            "signal",
            "mailbox",
            "stats",
            "config",
            "options",
            "schedule",
            "histogram",
            "running",
            "build",
            "observe",
            "telemetry",
            "remote",
            "history",
            "run_state",
            "run_id",
            "host",
            "name_rule",
            "call",
            "gate",
            "job",
            "limits",
            "limiter",
            "workflow",
            "workflow_log",
            "workflow_status",
            "step",
        ],
    ),
    ("worker", &["definition"]),
    ("run", &["run"]),
    ("context", &["context"]),
    (
        "lifecycle",
        &[
            "drive",
            "launch",
            "handle",
            "registration",
            "scheduler",
            "backend",
            "pending",
            "local_flow",
            "workflow_handle",
        ],
    ),
    ("manager", &["manager", "flows"]),
    (
        "facade",
        &["builder", "global", "typed", "__private", "lib"],
    ),
];

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    module_graph::imports(src())
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let upward = module_graph::upward_imports(&imports(), LAYERS);
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn no_import_cycle_inside_worker_core() {
    if let Some(cycle) = module_graph::find_cycle(&imports()) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_plain_grouped_and_re_exported_imports() {
    let paths = module_graph::crate_paths(
        "use crate::run::{Run, lock};\nuse crate::{Error, Result, mailbox::Mailbox};\nlet x = crate::sync::cores();",
    );
    assert_eq!(paths, ["run", "Error", "Result", "mailbox", "sync"]);
    let graph = imports();
    assert!(graph["run"].contains("mailbox"), "{:?}", graph["run"]);
    assert!(graph["manager"].contains("run"));
    assert!(
        graph["__private"].contains("manager"),
        "{:?}",
        graph["__private"]
    );
    // Through a re-export in lib.rs: `crate::Error` is the error module.
    assert!(graph["config"].contains("error"), "{:?}", graph["config"]);
}
