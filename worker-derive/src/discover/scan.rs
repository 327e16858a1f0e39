//! Finds the worker files under a directory: which files count, what module
//! each becomes, and whether it has an `install()` to run. Pure apart from
//! reading the directory, so it is tested over temporary directories.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use syn::{Item, ItemFn, ReturnType, Safety, Type, Visibility};

/// Files at most this many path components below the workers directory are
/// taken: `a/b/c.rs` is, `a/b/c/d.rs` is not.
pub(crate) const MAX_DEPTH: usize = 3;

/// One file that becomes a module of the generated `mod` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerFile {
    /// Relative to the scanned directory, `/`-separated: `notifications/sms.rs`.
    pub(crate) relative: String,
    /// Absolute and canonical, for `#[path]` and to identify the file.
    pub(crate) path: PathBuf,
    /// A valid Rust identifier, unique within one scan: `notifications__sms`.
    pub(crate) module: String,
    pub(crate) install: Install,
}

/// What a file says about `install()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Install {
    /// No top-level `fn install`, or the file doesn't parse (rustc reports
    /// the syntax error when it compiles the module).
    Absent,
    /// `pub async fn install()` with no parameters.
    Found,
    /// A top-level `fn install` that can't be called as one; says why.
    WrongShape(&'static str),
}

#[derive(Debug)]
pub(crate) enum ScanError {
    Missing(PathBuf),
    NotADirectory(PathBuf),
    NotUtf8(PathBuf),
    Io { path: PathBuf, error: io::Error },
}

/// The worker files under `dir`, sorted by relative path.
///
/// Taken: `*.rs` files up to [`MAX_DEPTH`] components deep. Skipped: `mod.rs`,
/// `*.inc.rs`, `_*.rs`, anything else that isn't `.rs`, and hidden (`.`)
/// files and directories. Symbolic links are followed; the depth limit keeps
/// a link cycle from recursing forever.
pub(crate) fn scan(dir: &Path) -> Result<Vec<WorkerFile>, ScanError> {
    let root = match fs::canonicalize(dir) {
        Ok(root) => root,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ScanError::Missing(dir.to_owned()));
        }
        Err(error) => {
            return Err(ScanError::Io {
                path: dir.to_owned(),
                error,
            });
        }
    };
    if !root.is_dir() {
        return Err(ScanError::NotADirectory(root));
    }

    let mut found = Vec::new();
    collect(&root, &mut Vec::new(), &mut found)?;
    found.sort();

    let relatives: Vec<&str> = found
        .iter()
        .map(|(relative, _)| relative.as_str())
        .collect();
    let modules = module_names(&relatives);
    let mut files = Vec::with_capacity(found.len());
    for ((relative, path), module) in found.into_iter().zip(modules) {
        let install = match fs::read_to_string(&path) {
            Ok(source) => detect_install(&source),
            // Not UTF-8: rustc will say so when it compiles the module.
            Err(error) if error.kind() == io::ErrorKind::InvalidData => Install::Absent,
            Err(error) => return Err(ScanError::Io { path, error }),
        };
        files.push(WorkerFile {
            relative,
            path,
            module,
            install,
        });
    }
    Ok(files)
}

/// Adds `(relative, absolute)` for every worker file under `dir`, which is
/// `parents.len()` levels below the root.
fn collect(
    dir: &Path,
    parents: &mut Vec<String>,
    found: &mut Vec<(String, PathBuf)>,
) -> Result<(), ScanError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |error| ScanError::Io { path, error }
    };
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            // A dangling symbolic link is nothing to compile.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(ScanError::Io { path, error }),
        };
        if metadata.is_dir() {
            if parents.len() + 1 < MAX_DEPTH {
                let Some(name) = name.to_str() else {
                    return Err(ScanError::NotUtf8(path));
                };
                parents.push(name.to_owned());
                collect(&path, parents, found)?;
                parents.pop();
            }
        } else if metadata.is_file() && name.as_encoded_bytes().ends_with(b".rs") {
            let Some(name) = name.to_str() else {
                return Err(ScanError::NotUtf8(path));
            };
            if is_worker_file_name(name) {
                let mut relative = parents.join("/");
                if !relative.is_empty() {
                    relative.push('/');
                }
                relative.push_str(name);
                found.push((relative, path));
            }
        }
    }
    Ok(())
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// Whether a file with this name (not path) is a worker file.
pub(crate) fn is_worker_file_name(name: &str) -> bool {
    name.ends_with(".rs")
        && name != "mod.rs"
        && !name.ends_with(".inc.rs")
        && !name.starts_with('_')
        && !name.starts_with('.')
}

/// Module names for a set of relative paths (`a/b.rs`), in the same order:
/// each a valid identifier, no two equal.
///
/// Each path becomes its sanitized segments joined by `__` (`a/b.rs` →
/// `a__b`). Paths that end up with the same name are told apart
/// deterministically: a path whose segments needed no sanitizing keeps the
/// plain name (`send_email.rs` stays `send_email`), then the rest in path
/// order get `_2`, `_3`, … skipping any name another path has as its own.
pub(crate) fn module_names(relatives: &[&str]) -> Vec<String> {
    let bases: Vec<(String, bool)> = relatives.iter().map(|path| base_name(path)).collect();
    let all_bases: HashSet<&str> = bases.iter().map(|(base, _)| base.as_str()).collect();

    let mut order: Vec<usize> = (0..relatives.len()).collect();
    order.sort_by_key(|&index| (!bases[index].1, relatives[index]));

    let mut names = vec![String::new(); relatives.len()];
    let mut taken: HashSet<String> = HashSet::new();
    for index in order {
        let base = &bases[index].0;
        let name = if taken.contains(base) {
            let mut suffix = 2_u64;
            loop {
                let candidate = format!("{base}_{suffix}");
                if !all_bases.contains(candidate.as_str()) && !taken.contains(&candidate) {
                    break candidate;
                }
                suffix += 1;
            }
        } else {
            base.clone()
        };
        taken.insert(name.clone());
        names[index] = name;
    }
    names
}

/// The name before collisions are resolved, and whether every segment was
/// already a valid identifier.
fn base_name(relative: &str) -> (String, bool) {
    let without_ext = relative.strip_suffix(".rs").unwrap_or(relative);
    let mut verbatim = true;
    let segments: Vec<String> = without_ext
        .split('/')
        .map(|segment| {
            let sanitized = sanitize_segment(segment);
            verbatim &= sanitized == segment;
            sanitized
        })
        .collect();
    (segments.join("__"), verbatim)
}

/// One path segment as an identifier: every character outside
/// `[A-Za-z0-9_]` becomes `_`, a leading digit gets a `_` in front, and a
/// keyword (or a lone `_`) gets a `_` behind.
pub(crate) fn sanitize_segment(segment: &str) -> String {
    let mut ident: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, '_');
    }
    if ident == "_" || is_keyword(&ident) {
        ident.push('_');
    }
    ident
}

/// Strict and reserved keywords of every edition: none of them can name a
/// module without `r#`, and some (`self`, `crate`, …) not even with it.
fn is_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "Self", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
        "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
        "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv",
        "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "try",
        "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    KEYWORDS.contains(&word)
}

/// Looks for a top-level `fn install` in a worker file's source.
pub(crate) fn detect_install(source: &str) -> Install {
    let Ok(file) = syn::parse_file(source) else {
        return Install::Absent;
    };
    let mut wrong = None;
    for item in &file.items {
        if let Item::Fn(function) = item {
            if function.sig.ident == "install" {
                match install_problem(function) {
                    None => return Install::Found,
                    Some(problem) => {
                        wrong.get_or_insert(problem);
                    }
                }
            }
        }
    }
    wrong.map_or(Install::Absent, Install::WrongShape)
}

fn install_problem(function: &ItemFn) -> Option<&'static str> {
    let sig = &function.sig;
    if !matches!(function.vis, Visibility::Public(_)) {
        Some("it isn't `pub`")
    } else if sig.asyncness.is_none() {
        Some("it isn't `async`")
    } else if sig.constness.is_some() || !matches!(sig.safety, Safety::Default) || sig.abi.is_some()
    {
        Some("it can't be `const`, `unsafe` or `extern`")
    } else if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        Some("it can't be generic")
    } else if !sig.inputs.is_empty() || sig.variadic.is_some() {
        Some("it can't take parameters")
    } else if !returns_result(&sig.output) {
        Some("it must return `Result<()>`")
    } else {
        None
    }
}

fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => matches!(
            &**ty,
            Type::Path(path)
                if path.qself.is_none()
                    && path.path.segments.last().is_some_and(|last| last.ident == "Result")
        ),
    }
}

/// A scratch directory for tests, removed when dropped.
#[cfg(test)]
pub(super) mod temp {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::{fs, process};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("worker-derive-{}-{unique}-{label}", process::id()));
            let _ = fs::remove_dir_all(&dir);
            if let Err(err) = fs::create_dir_all(&dir) {
                panic!("can't create {}: {err}", dir.display());
            }
            TempDir(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `contents` at `relative`, creating parent directories.
        pub(crate) fn file(&self, relative: &str, contents: &str) -> &Self {
            let path = self.0.join(relative);
            if let Some(parent) = path.parent() {
                if let Err(err) = fs::create_dir_all(parent) {
                    panic!("can't create {}: {err}", parent.display());
                }
            }
            if let Err(err) = fs::write(&path, contents) {
                panic!("can't write {}: {err}", path.display());
            }
            self
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::temp::TempDir;
    use super::*;

    const WORKER: &str = "use worker_core::prelude::*;\n#[worker]\nasync fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }\n";
    const INSTALL: &str = "pub async fn install() -> Result<()> { Ok(()) }\n";

    fn scanned(dir: &TempDir) -> Vec<WorkerFile> {
        match scan(dir.path()) {
            Ok(files) => files,
            Err(err) => panic!("scan failed: {err:?}"),
        }
    }

    fn relatives(files: &[WorkerFile]) -> Vec<&str> {
        files.iter().map(|file| file.relative.as_str()).collect()
    }

    // --- which files ---

    #[test]
    fn rust_files_are_found_sorted_with_slash_separated_paths() {
        let dir = TempDir::new("sorted");
        dir.file("sms.rs", WORKER)
            .file("email.rs", WORKER)
            .file("notifications/push.rs", WORKER)
            .file("a.rs", WORKER);
        let files = scanned(&dir);
        assert_eq!(
            relatives(&files),
            ["a.rs", "email.rs", "notifications/push.rs", "sms.rs"]
        );
    }

    #[test]
    fn paths_are_absolute_and_canonical() {
        let dir = TempDir::new("absolute");
        dir.file("nested/email.rs", WORKER);
        let files = scanned(&dir);
        let expected = fs::canonicalize(dir.path().join("nested/email.rs")).ok();
        assert_eq!(files.first().map(|f| f.path.clone()), expected);
        assert!(files.iter().all(|f| f.path.is_absolute()));
    }

    #[test]
    fn files_are_taken_down_to_three_levels() {
        let dir = TempDir::new("depth");
        dir.file("a.rs", WORKER)
            .file("a/b.rs", WORKER)
            .file("a/b/c.rs", WORKER)
            .file("a/b/c/d.rs", WORKER)
            .file("a/b/c/d/e.rs", WORKER);
        assert_eq!(relatives(&scanned(&dir)), ["a.rs", "a/b.rs", "a/b/c.rs"]);
    }

    #[test]
    fn mod_inc_underscore_hidden_and_other_files_are_skipped() {
        let dir = TempDir::new("skips");
        dir.file("email.rs", WORKER)
            .file("mod.rs", WORKER)
            .file("nested/mod.rs", WORKER)
            .file("shared.inc.rs", WORKER)
            .file("_helper.rs", WORKER)
            .file(".hidden.rs", WORKER)
            .file(".git/config.rs", WORKER)
            .file("nested/.cache/x.rs", WORKER)
            .file("README.md", "# workers")
            .file("data.json", "{}")
            .file("email.rs.bak", WORKER)
            .file("nested/ok.rs", WORKER);
        assert_eq!(relatives(&scanned(&dir)), ["email.rs", "nested/ok.rs"]);
    }

    #[test]
    fn directories_named_like_files_are_directories() {
        let dir = TempDir::new("dir-rs");
        dir.file("weird.rs/inner.rs", WORKER);
        assert_eq!(relatives(&scanned(&dir)), ["weird.rs/inner.rs"]);
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_followed_and_cycles_end_at_the_depth_limit() {
        let dir = TempDir::new("links");
        dir.file("real/job.rs", WORKER);
        let link = |target: &str, at: &str| {
            if let Err(err) = std::os::unix::fs::symlink(target, dir.path().join(at)) {
                panic!("symlink: {err}");
            }
        };
        link("real", "alias");
        link(".", "real/loop");
        link("missing.rs", "dangling.rs");
        assert_eq!(
            relatives(&scanned(&dir)),
            [
                "alias/job.rs",
                "alias/loop/job.rs",
                "real/job.rs",
                "real/loop/job.rs",
            ]
        );
    }

    #[test]
    fn an_empty_directory_has_no_files() {
        let dir = TempDir::new("empty");
        dir.file("mod.rs", "").file("sub/_x.rs", "");
        assert!(scanned(&dir).is_empty());
    }

    #[test]
    fn a_missing_directory_is_reported_as_missing() {
        let dir = TempDir::new("missing");
        let missing = dir.path().join("src/workers");
        assert!(matches!(scan(&missing), Err(ScanError::Missing(path)) if path == missing));
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let dir = TempDir::new("not-dir");
        dir.file("workers", "");
        assert!(matches!(
            scan(&dir.path().join("workers")),
            Err(ScanError::NotADirectory(_))
        ));
    }

    // --- module names ---

    #[test]
    fn nested_files_join_their_segments_with_double_underscores() {
        let dir = TempDir::new("modules");
        dir.file("email.rs", WORKER)
            .file("notifications/sms.rs", WORKER)
            .file("a/b/c.rs", WORKER);
        let files = scanned(&dir);
        let modules: Vec<&str> = files.iter().map(|f| f.module.as_str()).collect();
        assert_eq!(modules, ["a__b__c", "email", "notifications__sms"]);
    }

    #[test]
    fn segments_become_identifiers() {
        assert_eq!(sanitize_segment("send-email"), "send_email");
        assert_eq!(sanitize_segment("2fa"), "_2fa");
        assert_eq!(sanitize_segment("type"), "type_");
        assert_eq!(sanitize_segment("self"), "self_");
        assert_eq!(sanitize_segment("Self"), "Self_");
        assert_eq!(sanitize_segment("crate"), "crate_");
        assert_eq!(sanitize_segment("async"), "async_");
        assert_eq!(sanitize_segment("gen"), "gen_");
        assert_eq!(sanitize_segment("Email"), "Email");
        assert_eq!(sanitize_segment("café"), "caf_");
        assert_eq!(sanitize_segment("日本"), "__");
        assert_eq!(sanitize_segment("a.b"), "a_b");
        assert_eq!(sanitize_segment("-"), "__");
        assert_eq!(sanitize_segment("_"), "__");
        assert_eq!(sanitize_segment(""), "__");
        assert_eq!(sanitize_segment("x y"), "x_y");
        assert_eq!(sanitize_segment("union"), "union");
    }

    /// Every generated name must be usable as `mod <name>;`.
    fn assert_identifiers(names: &[String]) {
        for name in names {
            assert!(
                syn::parse_str::<proc_macro2::Ident>(name).is_ok(),
                "`{name}` is not an identifier"
            );
        }
    }

    fn assert_distinct(names: &[String]) {
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "not injective: {names:?}");
    }

    #[test]
    fn any_file_name_becomes_an_identifier() {
        let paths = [
            "send-email.rs",
            "2fa.rs",
            "type.rs",
            "self.rs",
            "Self.rs",
            "super.rs",
            "crate.rs",
            "café.rs",
            "日本語.rs",
            "UPPER.rs",
            "-.rs",
            "a b.rs",
            "1/2/3.rs",
            "fn/mod-x.rs",
            "dots.in.name.rs",
        ];
        let names = module_names(&paths);
        assert_identifiers(&names);
        assert_distinct(&names);
        assert_eq!(names[0], "send_email");
        assert_eq!(names[1], "_2fa");
        assert_eq!(names[2], "type_");
        assert_eq!(names[12], "_1___2___3");
        assert_eq!(names[13], "fn___mod_x");
    }

    #[test]
    fn a_file_named_like_its_module_keeps_the_plain_name() {
        let names = module_names(&["send-email.rs", "send_email.rs"]);
        assert_eq!(names, ["send_email_2", "send_email"]);
    }

    #[test]
    fn nested_and_flat_files_that_collide_get_suffixes() {
        // Both are spelled verbatim, so path order decides (`/` sorts first).
        let names = module_names(&["a/b.rs", "a__b.rs", "a-/_b.rs"]);
        assert_eq!(names, ["a__b", "a__b_2", "a____b"]);
        let names = module_names(&["a/b_c.rs", "a_b/c.rs"]);
        assert_eq!(names, ["a__b_c", "a_b__c"]);
    }

    #[test]
    fn a_suffix_never_takes_another_files_name() {
        // `x-.rs` and `x_.rs` both want `x_`; `x__2.rs` already is `x__2`.
        let names = module_names(&["x-.rs", "x_.rs", "x__2.rs", "x-2.rs"]);
        assert_eq!(names, ["x__3", "x_", "x__2", "x_2"]);
        assert_distinct(&names);
    }

    #[test]
    fn keyword_collisions_are_resolved_too() {
        // `type_.rs` is spelled verbatim and keeps `type_`; the other two
        // follow in path order (`-` sorts before `.`).
        let names = module_names(&["type.rs", "type_.rs", "type-.rs"]);
        assert_eq!(names, ["type__3", "type_", "type__2"]);
        assert_distinct(&names);
    }

    #[test]
    fn names_are_injective_over_a_large_set() {
        // Every combination of awkward segments, two deep.
        let segments = [
            "a", "a_", "a-", "_a", "1", "_1", "type", "type_", "é", "_", "a__b", "a b",
        ];
        let mut paths = Vec::new();
        for first in segments {
            paths.push(format!("{first}.rs"));
            for second in segments {
                paths.push(format!("{first}/{second}.rs"));
            }
        }
        paths.sort();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let names = module_names(&refs);
        assert_identifiers(&names);
        assert_distinct(&names);
        // Same input, same output.
        assert_eq!(module_names(&refs), names);
    }

    // --- install() ---

    #[test]
    fn a_pub_async_install_without_parameters_is_found() {
        assert_eq!(detect_install(INSTALL), Install::Found);
        assert_eq!(
            detect_install("pub async fn install() -> worker_core::Result<()> { Ok(()) }"),
            Install::Found
        );
    }

    #[test]
    fn a_file_with_only_workers_has_no_install() {
        assert_eq!(detect_install(WORKER), Install::Absent);
        assert_eq!(detect_install(""), Install::Absent);
    }

    #[test]
    fn an_install_in_a_nested_module_or_impl_is_not_the_files() {
        let source = "mod inner { pub async fn install() -> Result<()> { Ok(()) } }\n\
                      struct S; impl S { pub async fn install() -> Result<()> { Ok(()) } }";
        assert_eq!(detect_install(source), Install::Absent);
    }

    #[test]
    fn an_install_of_the_wrong_shape_says_what_is_wrong() {
        for (source, problem) in [
            (
                "async fn install() -> Result<()> { Ok(()) }",
                "it isn't `pub`",
            ),
            (
                "pub(crate) async fn install() -> Result<()> { Ok(()) }",
                "it isn't `pub`",
            ),
            (
                "pub fn install() -> Result<()> { Ok(()) }",
                "it isn't `async`",
            ),
            (
                "pub async unsafe fn install() -> Result<()> { Ok(()) }",
                "it can't be `const`, `unsafe` or `extern`",
            ),
            (
                "pub async fn install<T>() -> Result<()> { Ok(()) }",
                "it can't be generic",
            ),
            (
                "pub async fn install(m: WorkerManager) -> Result<()> { Ok(()) }",
                "it can't take parameters",
            ),
            ("pub async fn install() { }", "it must return `Result<()>`"),
            (
                "pub async fn install() -> u8 { 1 }",
                "it must return `Result<()>`",
            ),
        ] {
            assert_eq!(
                detect_install(source),
                Install::WrongShape(problem),
                "{source}"
            );
        }
    }

    #[test]
    fn a_right_install_wins_over_a_wrong_one() {
        let source = format!("#[cfg(test)] fn install() {{}}\n#[cfg(not(test))] {INSTALL}");
        assert_eq!(detect_install(&source), Install::Found);
    }

    #[test]
    fn a_file_that_does_not_parse_is_assumed_to_have_no_install() {
        assert_eq!(
            detect_install("pub async fn install( -> {"),
            Install::Absent
        );
        assert_eq!(detect_install("fn install() {} }"), Install::Absent);
    }

    #[test]
    fn the_scan_reports_each_files_install() {
        let dir = TempDir::new("installs");
        dir.file("email.rs", &format!("{WORKER}{INSTALL}"))
            .file("only_workers.rs", WORKER)
            .file("broken.rs", "pub async fn install( {")
            .file("wrong.rs", "pub fn install() -> Result<()> { Ok(()) }");
        let files = scanned(&dir);
        let installs: Vec<(&str, Install)> = files
            .iter()
            .map(|f| (f.relative.as_str(), f.install))
            .collect();
        assert_eq!(
            installs,
            [
                ("broken.rs", Install::Absent),
                ("email.rs", Install::Found),
                ("only_workers.rs", Install::Absent),
                ("wrong.rs", Install::WrongShape("it isn't `async`")),
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_left_to_rustc() {
        let dir = TempDir::new("not-utf8");
        if let Err(err) = fs::write(dir.path().join("bytes.rs"), [0xff, 0xfe, 0x00]) {
            panic!("{err}");
        }
        let files = scanned(&dir);
        assert_eq!(files.first().map(|f| f.install), Some(Install::Absent));
    }

    /// Every keyword of every edition, written out independently of
    /// `is_keyword`; syn's own list lacks the 2024 edition's `gen`.
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
        "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized", "virtual",
        "yield",
    ];

    /// A file or directory name: awkward ASCII, keywords, near-collisions,
    /// unicode, anything (but never `/`, which separates them).
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9_. -]{1,6}",
            2 => prop::sample::select(KEYWORDS).prop_map(str::to_owned),
            2 => prop::sample::select(&["a", "a_", "a-", "_a", "a__b", "a_2", "1", "_1", "x__2", "type_", "é", "日本", "_", "-"][..])
                .prop_map(str::to_owned),
            1 => "[^/\\x00]{1,5}",
        ]
    }

    /// A relative path of one to three segments, ending in `.rs`.
    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..=3)
            .prop_map(|segments| format!("{}.rs", segments.join("/")))
    }

    proptest! {
        #![proptest_config(crate::testing::config(512))]

        #[test]
        fn module_names_are_distinct_identifiers_whatever_the_paths(
            paths in prop::collection::btree_set(path(), 1..=50),
        ) {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let names = module_names(&paths);
            prop_assert_eq!(names.len(), paths.len());
            let unique: HashSet<&String> = names.iter().collect();
            prop_assert_eq!(unique.len(), names.len(), "not injective: {:?}", paths.iter().zip(&names).collect::<Vec<_>>());
            for name in &names {
                prop_assert!(syn::parse_str::<syn::Ident>(name).is_ok(), "`{}` is not an identifier", name);
                prop_assert!(!KEYWORDS.contains(&name.as_str()), "`{}` is a keyword", name);
            }

            // Deterministic, and a file's name doesn't depend on the order
            // the paths were listed in.
            prop_assert_eq!(&module_names(&paths), &names);
            let reversed: Vec<&str> = paths.iter().rev().copied().collect();
            let mut names_reversed = module_names(&reversed);
            names_reversed.reverse();
            prop_assert_eq!(names_reversed, names);
        }
    }
}
