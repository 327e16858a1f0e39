//! worker-postgres's modules form layers, each importing only from its own
//! layer or below, and never in a circle (as worker-core's do; the graph
//! is read from the sources by worker-core's `tests/module_graph`).

#[path = "../../worker-core/tests/module_graph/mod.rs"]
mod module_graph;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    // Settings, constants and helpers that know no table.
    (
        "foundation",
        &[
            "config", "layout", "pace", "rollup", "events", "reach", "ahead", "stop",
        ],
    ),
    // The SQL text of every statement, and the claim cursor it reads.
    ("statements", &["cursor", "sql", "rows"]),
    // One job each over the tables: migrations, history slots, lanes,
    // leases, notifications, the ending writer, the call batcher, the
    // limited claim.
    (
        "storage",
        &[
            "schema", "history", "lanes", "leases", "bus", "writer", "calls", "jobs", "limits",
        ],
    ),
    // The caller's side (the database as reached, handles, workflows
    // stored and followed) and the executing side (upkeep, then the
    // claims that start it).
    (
        "phases",
        &[
            "db",
            "handle",
            "dashboard",
            "workflows",
            "flow_handle",
            "flow_history",
            "upkeep",
            "executor",
        ],
    ),
    // The started backend, and the crate's face.
    ("backend", &["cluster", "lib"]),
];

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    module_graph::imports(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")))
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let upward = module_graph::upward_imports(&imports(), LAYERS);
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn no_import_cycle_inside_worker_postgres() {
    if let Some(cycle) = module_graph::find_cycle(&imports()) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_graph_has_every_module_and_the_known_edges() {
    let graph = imports();
    let layered: BTreeSet<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    let found: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    assert_eq!(found, layered, "every module in exactly the layers above");
    assert!(
        graph["cluster"].contains("handle"),
        "{:?}",
        graph["cluster"]
    );
    assert!(graph["handle"].contains("db"), "{:?}", graph["handle"]);
    assert!(graph["lib"].contains("config"), "{:?}", graph["lib"]);
}
