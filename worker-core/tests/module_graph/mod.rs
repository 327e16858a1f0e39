//! Reads a crate's sources into its module import graph, for the layers
//! tests of worker-core and worker-postgres (which includes this file by
//! path): each module's `use crate::…` and `crate::…` paths, through the
//! root's `pub use` re-exports.

#![allow(dead_code)] // each test uses some of it

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The code of a file without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module name → file, and re-exported item → module, from `lib.rs`.
fn crate_map(src: &Path) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let lib = code(&src.join("lib.rs"));
    let mut files = BTreeMap::new();
    let mut path_attr: Option<String> = None;
    for line in lib.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            path_attr = rest.split('"').next().map(str::to_owned);
            continue;
        }
        let decl = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
            let file = path_attr.take().unwrap_or(format!("{name}.rs"));
            files.insert(name.to_owned(), file);
        }
    }
    let mut items = BTreeMap::new();
    for line in lib.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        if !files.contains_key(module) {
            continue;
        }
        for name in names.trim_matches(|c| "{};".contains(c)).split(',') {
            let name = name.trim().trim_matches(|c| "{};".contains(c));
            if !name.is_empty() {
                items.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    (files, items)
}

/// The first path segment after each `crate::`, with `crate::{a, b::c}`
/// groups split into `a` and `b`.
pub fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut entry = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let head = entry.trim().split("::").next().unwrap_or("").to_owned();
                        if !head.is_empty() {
                            found.push(head);
                        }
                        entry.clear();
                        continue;
                    }
                    _ => {}
                }
                entry.push(c);
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(head);
        }
    }
    found
}

/// Module → the modules it imports from.
pub fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let (files, items) = crate_map(src);
    let mut graph = BTreeMap::new();
    let mut modules: Vec<(String, String)> = files.into_iter().collect();
    modules.push(("lib".to_owned(), "lib.rs".to_owned()));
    for (module, file) in &modules {
        let code = code(&src.join(file));
        let mut deps = BTreeSet::new();
        for head in crate_paths(&code) {
            let target = if modules.iter().any(|(m, _)| *m == head) {
                head
            } else if head == "private" {
                "__private".to_owned()
            } else if let Some(owner) = items.get(&head) {
                owner.clone()
            } else {
                continue; // a macro-generated or prelude path; not a module
            };
            if target != *module {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// An import cycle of `graph`, if it has one, as the modules around it
/// (the first repeated at the end).
pub fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search; a grey node met again closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        if state.get(module.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(module, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

/// The imports that go up `layers` (lowest first), as sentences; `lib`
/// (the root declares and re-exports everything) is exempt.
pub fn upward_imports(
    graph: &BTreeMap<String, BTreeSet<String>>,
    layers: &[(&str, &[&str])],
) -> Vec<String> {
    let layer_of = |module: &str| {
        layers
            .iter()
            .enumerate()
            .find(|(_, (_, members))| members.contains(&module))
            .map(|(index, (name, _))| (index, *name))
            .unwrap_or_else(|| {
                panic!("module `{module}` is in no layer: add it to LAYERS in tests/layers.rs (and to the diagram in src/lib.rs, where the crate draws one)")
            })
    };
    let mut upward = Vec::new();
    for (module, deps) in graph {
        if module == "lib" {
            continue;
        }
        let (here, here_name) = layer_of(module);
        for dep in deps {
            let (there, there_name) = layer_of(dep);
            if there > here {
                upward.push(format!(
                    "{module} ({here_name}) imports {dep} ({there_name}), a higher layer"
                ));
            }
        }
    }
    upward
}
