//! `auto_workers!()` and `#[auto_discover]`: find the worker files, declare
//! each as a module so its `#[worker]` fns are compiled (and so registered),
//! and run the `install()` fns the files define.

mod expand;
#[cfg(test)]
mod properties;
mod scan;

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use proc_macro2::{Ident, Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{LitStr, Token};

use crate::ctxt::Ctxt;
use crate::fn_item;
use scan::{Install, ScanError};

/// Overrides the default directory (absolute, or relative to the manifest).
pub(crate) const DIR_ENV: &str = "WORKER_CORE_WORKERS_DIR";
const DEFAULT_DIR: &str = "src/workers";
const INSTALL_SHAPE: &str = "`install` must be `pub async fn install() -> Result<()>`";

/// Which macro is asking, for its messages.
#[derive(Clone, Copy)]
enum Caller {
    AutoWorkers,
    AutoDiscover,
}

impl Caller {
    fn label(self) -> &'static str {
        match self {
            Caller::AutoWorkers => "auto_workers!()",
            Caller::AutoDiscover => "#[auto_discover]",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Caller::AutoWorkers => "auto_workers!(\"src/jobs\")",
            Caller::AutoDiscover => "#[auto_discover(\"src/jobs\")]",
        }
    }
}

/// The environment the macros read, captured once per expansion (at
/// expansion time, not with `env!`, so the value is the crate's own).
struct Env {
    manifest_dir: Option<PathBuf>,
    /// `CARGO_PKG_NAME`, to name the crate in messages.
    package: Option<String>,
    workers_dir: Option<OsString>,
}

impl Env {
    fn of_process() -> Self {
        Env {
            manifest_dir: std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
            package: std::env::var("CARGO_PKG_NAME")
                .ok()
                .filter(|name| !name.is_empty()),
            workers_dir: std::env::var_os(DIR_ENV).filter(|dir| !dir.is_empty()),
        }
    }

    /// "crate `name`", for messages.
    fn crate_name(&self) -> String {
        match &self.package {
            Some(name) => format!("crate `{name}`"),
            None => "the crate".to_owned(),
        }
    }
}

/// What the expansion needs about one worker file, already in string form.
struct Found {
    module: Ident,
    /// The absolute path, for `#[path]` and `InstallRegistration::path`.
    path: String,
    /// Relative to the manifest dir: `src/workers/email.rs`.
    file: String,
    has_install: bool,
}

pub(crate) fn auto_workers(input: TokenStream) -> TokenStream {
    auto_workers_in(input, &Env::of_process())
}

fn auto_workers_in(input: TokenStream, env: &Env) -> TokenStream {
    let mut cx = Ctxt::new();
    let found = dir_arg(Caller::AutoWorkers, input, &mut cx)
        .and_then(|arg| discover(Caller::AutoWorkers, arg.as_ref(), env, &mut cx));
    match (cx.check(), found) {
        (Ok(()), Some(found)) => expand::auto_workers(&found),
        (Err(err), _) => expand::auto_workers_failed(err.to_compile_error()),
        (Ok(()), None) => expand::auto_workers_failed(bug(Caller::AutoWorkers)),
    }
}

pub(crate) fn auto_discover(attr: TokenStream, item: TokenStream) -> TokenStream {
    auto_discover_in(attr, item, &Env::of_process())
}

fn auto_discover_in(attr: TokenStream, item: TokenStream, env: &Env) -> TokenStream {
    let mut cx = Ctxt::new();
    let arg = dir_arg(Caller::AutoDiscover, attr, &mut cx);
    let is_fn = fn_item::head(
        item.clone(),
        &mut cx,
        "#[auto_discover] can only be applied to a fn, usually `main`",
    )
    .is_some();
    let found = match arg {
        Some(arg) if is_fn => discover(Caller::AutoDiscover, arg.as_ref(), env, &mut cx),
        _ => None,
    };
    match (cx.check(), found) {
        (Ok(()), Some(found)) => expand::auto_discover(item, &found),
        (Err(err), _) => {
            let errors = err.to_compile_error();
            quote::quote!(#item #errors)
        }
        (Ok(()), None) => {
            let errors = bug(Caller::AutoDiscover);
            quote::quote!(#item #errors)
        }
    }
}

/// Every path above reports before returning `None`; if one ever doesn't,
/// fail loudly rather than register nothing.
fn bug(caller: Caller) -> TokenStream {
    syn::Error::new(
        Span::call_site(),
        format!(
            "{} failed without saying why; please report this bug",
            caller.label()
        ),
    )
    .to_compile_error()
}

/// The optional directory literal: `()`, `("src/jobs")` or `("src/jobs",)`.
/// `None` means an error was reported; `Some(None)` means no argument.
fn dir_arg(caller: Caller, input: TokenStream, cx: &mut Ctxt) -> Option<Option<LitStr>> {
    let parser = |input: ParseStream| -> syn::Result<Option<LitStr>> {
        if input.is_empty() {
            return Ok(None);
        }
        if !input.peek(LitStr) {
            return Err(input.error(format!(
                "{}: expected the worker directory as a string literal, like {}",
                caller.label(),
                caller.example()
            )));
        }
        let dir: LitStr = input.parse()?;
        input.parse::<Option<Token![,]>>()?;
        if dir.value().is_empty() {
            return Err(syn::Error::new(
                dir.span(),
                format!("{}: the directory can't be empty", caller.label()),
            ));
        }
        Ok(Some(dir))
    };
    match parser.parse2(input) {
        Ok(dir) => Some(dir),
        Err(err) => {
            cx.syn_error(err);
            None
        }
    }
}

/// Resolves the directory, scans it, and turns the result into [`Found`]s,
/// reporting every problem (missing directory, no files, each malformed
/// `install`) to `cx`.
///
/// Messages show paths relative to the manifest directory, never absolute:
/// the crate may be built anywhere (trybuild builds its test crates under
/// the target directory, which `CARGO_TARGET_DIR` can put anywhere), and
/// `src/workers` is what the user wrote or would write.
fn discover(caller: Caller, arg: Option<&LitStr>, env: &Env, cx: &mut Ctxt) -> Option<Vec<Found>> {
    let label = caller.label();
    let span = arg.map_or_else(Span::call_site, LitStr::span);
    let Some(manifest_dir) = &env.manifest_dir else {
        cx.error(
            span,
            format!("{label}: CARGO_MANIFEST_DIR is not set; build the crate with cargo"),
        );
        return None;
    };
    let (dir, origin) = match (arg, &env.workers_dir) {
        (Some(arg), _) => (manifest_dir.join(arg.value()), String::new()),
        (None, Some(env_dir)) => (manifest_dir.join(env_dir), format!(" (from {DIR_ENV})")),
        (None, None) => (manifest_dir.join(DEFAULT_DIR), String::new()),
    };
    let shown_dir = display_relative(manifest_dir, &dir);
    let krate = env.crate_name();

    let files = match scan::scan(&dir) {
        Ok(files) => files,
        Err(err) => {
            let shown = |path: &Path| display_scanned(path, &dir, &shown_dir, manifest_dir);
            let message = match err {
                ScanError::Missing(path) => format!(
                    "{label}: {krate} has no worker directory `{}`{origin}; create it and add a worker file such as `{shown_dir}/email.rs`",
                    shown(&path)
                ),
                ScanError::NotADirectory(path) => format!(
                    "{label}: {krate}'s worker path `{}`{origin} is not a directory; the worker files go in a directory such as `{DEFAULT_DIR}`",
                    shown(&path)
                ),
                ScanError::NotUtf8(path) => format!(
                    "{label}: `{}` has a name that isn't UTF-8, so it can't be declared as a module; rename it",
                    shown(&path)
                ),
                ScanError::Io { path, error } => {
                    format!("{label}: can't read `{}`: {error}", shown(&path))
                }
            };
            cx.error(span, message);
            return None;
        }
    };
    if files.is_empty() {
        cx.error(
            span,
            format!(
                "{label}: {krate} has no worker files in `{shown_dir}`{origin}; add one such as `{shown_dir}/email.rs` (`mod.rs`, `_*.rs`, `*.inc.rs` and hidden files don't count)"
            ),
        );
        return None;
    }

    let mut found = Vec::with_capacity(files.len());
    for file in files {
        let shown_file = format!("{shown_dir}/{}", file.relative);
        let has_install = match file.install {
            Install::Found => true,
            Install::Absent => false,
            Install::WrongShape(problem) => {
                cx.error(span, format!("{shown_file}: {INSTALL_SHAPE}; {problem}"));
                false
            }
        };
        // The one message with an absolute path, on purpose: the names below
        // the worker directory are UTF-8 (the scan checked), so the bytes
        // that aren't are above it, where only the full path shows them.
        let Some(path) = file.path.to_str() else {
            cx.error(
                span,
                format!(
                    "{label}: `{}` isn't valid UTF-8, so it can't go in #[path]; move the crate or the workers",
                    file.path.display()
                ),
            );
            continue;
        };
        // The scanner only produces identifiers; parsing (not `Ident::new`)
        // turns a bug there into an error instead of a panic.
        let module = match syn::parse_str::<Ident>(&file.module) {
            Ok(module) => module,
            Err(_) => {
                cx.error(
                    span,
                    format!(
                        "{label}: no module name for `{shown_file}` (got `{}`); please report this bug",
                        file.module
                    ),
                );
                continue;
            }
        };
        found.push(Found {
            module,
            path: path.to_owned(),
            file: shown_file,
            has_install,
        });
    }
    Some(found)
}

/// `dir` as the user would write it: relative to the manifest directory
/// with `/` separators if it is inside it, else as given.
fn display_relative(manifest_dir: &Path, dir: &Path) -> String {
    match dir.strip_prefix(manifest_dir) {
        Ok(relative) => {
            let parts: Vec<String> = relative
                .components()
                .filter(|part| !matches!(part, Component::CurDir))
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.is_empty() {
                ".".to_owned()
            } else {
                parts.join("/")
            }
        }
        Err(_) => dir.display().to_string(),
    }
}

/// `path`, which the scan of `dir` reported, as the user would write it:
/// below `shown_dir` (how `dir` is shown) if it is `dir` or inside it,
/// either as spelled or canonical (the scan reports canonical paths), else
/// relative to the manifest directory if inside that, else as given.
fn display_scanned(path: &Path, dir: &Path, shown_dir: &str, manifest_dir: &Path) -> String {
    let canonical_dir = std::fs::canonicalize(dir).ok();
    for base in std::iter::once(dir).chain(canonical_dir.as_deref()) {
        if path.starts_with(base) {
            return match display_relative(base, path).as_str() {
                "." => shown_dir.to_owned(),
                rest if shown_dir == "." => rest.to_owned(),
                rest => format!("{shown_dir}/{rest}"),
            };
        }
    }
    display_relative(manifest_dir, path)
}

#[cfg(test)]
mod tests {
    use super::scan::temp::TempDir;
    use super::*;

    const WORKER: &str = "#[worker]\nasync fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }\n";
    const INSTALL: &str = "pub async fn install() -> Result<()> { Ok(()) }\n";

    fn tokens(source: &str) -> TokenStream {
        match source.parse() {
            Ok(tokens) => tokens,
            Err(err) => panic!("bad test input {source:?}: {err}"),
        }
    }

    fn env(manifest: &TempDir) -> Env {
        Env {
            manifest_dir: Some(manifest.path().to_owned()),
            package: Some("app".to_owned()),
            workers_dir: None,
        }
    }

    /// The canonical spelling of `relative` under the manifest, as it
    /// appears in `#[path]`.
    fn abs(manifest: &TempDir, relative: &str) -> String {
        match fs_canonical(&manifest.path().join(relative)) {
            Some(path) => path,
            None => panic!("{relative} doesn't exist"),
        }
    }

    fn fs_canonical(path: &Path) -> Option<String> {
        std::fs::canonicalize(path)
            .ok()
            .and_then(|path| path.to_str().map(str::to_owned))
    }

    /// The messages of the `compile_error!`s in `output`.
    fn compile_errors(output: &TokenStream) -> Vec<String> {
        let text = output.to_string();
        text.split("compile_error ! {")
            .skip(1)
            .filter_map(|rest| {
                let literal = rest.split(" }").next()?.trim();
                syn::parse_str::<LitStr>(literal)
                    .ok()
                    .map(|lit| lit.value())
            })
            .collect()
    }

    fn auto_workers(input: &str, env: &Env) -> TokenStream {
        auto_workers_in(tokens(input), env)
    }

    #[test]
    fn auto_workers_declares_every_file_and_collects_the_installs() {
        let manifest = TempDir::new("expand");
        manifest
            .file("src/workers/email.rs", &format!("{WORKER}{INSTALL}"))
            .file("src/workers/notifications/sms.rs", INSTALL)
            .file("src/workers/report.rs", WORKER);
        let out = auto_workers("", &env(&manifest)).to_string();
        let email = abs(&manifest, "src/workers/email.rs");
        let sms = abs(&manifest, "src/workers/notifications/sms.rs");
        let report = abs(&manifest, "src/workers/report.rs");
        let expected = format!(
            "{{ \
             # [doc (hidden)] # [allow (non_snake_case , dead_code , unused_imports , clippy :: duplicate_mod)] \
             mod __worker_files {{ \
             # [path = {email:?}] pub mod email ; \
             # [path = {sms:?}] pub mod notifications__sms ; \
             # [path = {report:?}] pub mod report ; \
             }} \
             fn __install_0 () -> :: worker_core :: __private :: BoxFuture {{ \
             :: std :: boxed :: Box :: pin (__worker_files :: email :: install ()) \
             }} \
             fn __install_1 () -> :: worker_core :: __private :: BoxFuture {{ \
             :: std :: boxed :: Box :: pin (__worker_files :: notifications__sms :: install ()) \
             }} \
             static __WORKER_INSTALLS : [:: worker_core :: __private :: InstallRegistration ; 2] = [\
             :: worker_core :: __private :: InstallRegistration {{ file : \"src/workers/email.rs\" , path : {email:?} , install : __install_0 , }} , \
             :: worker_core :: __private :: InstallRegistration {{ file : \"src/workers/notifications/sms.rs\" , path : {sms:?} , install : __install_1 , }}\
             ] ; \
             move | manager : :: worker_core :: WorkerManager | {{ \
             :: worker_core :: __private :: run_installs (manager , & __WORKER_INSTALLS) \
             }} \
             }}"
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn files_without_install_give_an_empty_list() {
        let manifest = TempDir::new("no-installs");
        manifest.file("src/workers/a.rs", WORKER);
        let out = auto_workers("", &env(&manifest)).to_string();
        assert!(out.contains("pub mod a ;"), "{out}");
        assert!(out.contains("InstallRegistration ; 0] = [] ;"), "{out}");
        assert!(!out.contains("fn __install"), "{out}");
    }

    #[test]
    fn a_missing_directory_names_the_crate_and_the_directory_and_says_what_to_do() {
        let manifest = TempDir::new("missing");
        let out = auto_workers("", &env(&manifest));
        // Relative, not absolute: the message (and a trybuild `.stderr`
        // holding it) mustn't depend on where the crate is built.
        assert_eq!(
            compile_errors(&out),
            [
                "auto_workers!(): crate `app` has no worker directory `src/workers`; create it and add a worker file such as `src/workers/email.rs`"
            ]
        );
        // The expression still has the closure's type.
        assert!(
            out.to_string().contains("run_installs (manager , & [])"),
            "{out}"
        );
    }

    #[test]
    fn an_empty_directory_says_what_counts() {
        let manifest = TempDir::new("empty");
        manifest
            .file("src/workers/mod.rs", "")
            .file("src/workers/_helper.rs", "");
        let errors = compile_errors(&auto_workers("", &env(&manifest)));
        assert_eq!(
            errors,
            [
                "auto_workers!(): crate `app` has no worker files in `src/workers`; add one such as `src/workers/email.rs` (`mod.rs`, `_*.rs`, `*.inc.rs` and hidden files don't count)"
            ]
        );
    }

    #[test]
    fn without_a_package_name_the_message_says_the_crate() {
        let manifest = TempDir::new("no-package");
        let env = Env {
            package: None,
            ..env(&manifest)
        };
        assert_eq!(
            compile_errors(&auto_workers(r#""src/jobs""#, &env)),
            [
                "auto_workers!(): the crate has no worker directory `src/jobs`; create it and add a worker file such as `src/jobs/email.rs`"
            ]
        );
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_shown_relative() {
        let manifest = TempDir::new("not-a-dir");
        manifest.file("src/workers", "");
        assert_eq!(
            compile_errors(&auto_workers("", &env(&manifest))),
            [
                "auto_workers!(): crate `app`'s worker path `src/workers` is not a directory; the worker files go in a directory such as `src/workers`"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_is_shown_relative() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;

        let manifest = TempDir::new("not-utf8-name");
        manifest.file("src/workers/ok.rs", INSTALL);
        let bad = manifest
            .path()
            .join("src/workers")
            .join(OsStr::from_bytes(b"n\xffo"));
        if let Err(err) = std::fs::create_dir(&bad) {
            panic!("can't create {}: {err}", bad.display());
        }
        assert_eq!(
            compile_errors(&auto_workers("", &env(&manifest))),
            [
                "auto_workers!(): `src/workers/n\u{fffd}o` has a name that isn't UTF-8, so it can't be declared as a module; rename it"
            ]
        );
    }

    #[test]
    fn a_missing_directory_outside_the_package_is_shown_absolute() {
        let manifest = TempDir::new("manifest-outside");
        let elsewhere = TempDir::new("elsewhere-missing");
        let missing = elsewhere.path().join("jobs");
        let env = Env {
            workers_dir: Some(missing.as_os_str().to_owned()),
            ..env(&manifest)
        };
        assert_eq!(
            compile_errors(&auto_workers("", &env)),
            [format!(
                "auto_workers!(): crate `app` has no worker directory `{0}` (from WORKER_CORE_WORKERS_DIR); create it and add a worker file such as `{0}/email.rs`",
                missing.display()
            )]
        );
    }

    #[test]
    fn every_malformed_install_is_reported_with_its_file() {
        let manifest = TempDir::new("wrong-install");
        manifest
            .file(
                "src/workers/a.rs",
                "pub fn install() -> Result<()> { Ok(()) }",
            )
            .file(
                "src/workers/b/c.rs",
                "async fn install() -> Result<()> { Ok(()) }",
            )
            .file("src/workers/ok.rs", INSTALL);
        let errors = compile_errors(&auto_workers("", &env(&manifest)));
        assert_eq!(
            errors,
            [
                "src/workers/a.rs: `install` must be `pub async fn install() -> Result<()>`; it isn't `async`",
                "src/workers/b/c.rs: `install` must be `pub async fn install() -> Result<()>`; it isn't `pub`",
            ]
        );
    }

    #[test]
    fn the_argument_names_the_directory() {
        let manifest = TempDir::new("arg");
        manifest.file("src/jobs/x.rs", INSTALL);
        let out = auto_workers(r#""src/jobs""#, &env(&manifest)).to_string();
        assert!(out.contains(r#"file : "src/jobs/x.rs""#), "{out}");
        let out = auto_workers(r#""./src/jobs/","#, &env(&manifest)).to_string();
        assert!(out.contains(r#"file : "src/jobs/x.rs""#), "{out}");
    }

    #[test]
    fn the_environment_variable_names_the_directory_unless_the_argument_does() {
        let manifest = TempDir::new("env");
        manifest
            .file("src/jobs/from_env.rs", INSTALL)
            .file("src/tasks/from_arg.rs", INSTALL);
        let env = Env {
            workers_dir: Some("src/jobs".into()),
            ..env(&manifest)
        };
        let out = auto_workers("", &env).to_string();
        assert!(out.contains("pub mod from_env ;"), "{out}");
        let out = auto_workers(r#""src/tasks""#, &env).to_string();
        assert!(out.contains("pub mod from_arg ;"), "{out}");
        assert!(!out.contains("from_env"), "{out}");
    }

    #[test]
    fn an_absolute_directory_outside_the_package_is_shown_absolute() {
        let manifest = TempDir::new("manifest");
        let elsewhere = TempDir::new("elsewhere");
        elsewhere.file("x.rs", INSTALL);
        let env = Env {
            workers_dir: Some(elsewhere.path().as_os_str().to_owned()),
            ..env(&manifest)
        };
        let out = auto_workers("", &env).to_string();
        let shown = format!("{}/x.rs", elsewhere.path().display());
        assert!(out.contains(&format!("file : {shown:?}")), "{out}");
    }

    #[test]
    fn a_missing_directory_from_the_environment_says_so() {
        let manifest = TempDir::new("env-missing");
        let env = Env {
            workers_dir: Some("src/nowhere".into()),
            ..env(&manifest)
        };
        let errors = compile_errors(&auto_workers("", &env));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("src/nowhere` (from WORKER_CORE_WORKERS_DIR); create it"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_argument_must_be_a_non_empty_string_literal() {
        let manifest = TempDir::new("bad-arg");
        assert_eq!(
            compile_errors(&auto_workers("DIR", &env(&manifest))),
            [
                r#"auto_workers!(): expected the worker directory as a string literal, like auto_workers!("src/jobs")"#
            ]
        );
        assert_eq!(
            compile_errors(&auto_workers(r#""""#, &env(&manifest))),
            ["auto_workers!(): the directory can't be empty"]
        );
        assert_eq!(
            compile_errors(&auto_workers(r#""a" "b""#, &env(&manifest))),
            ["unexpected token"]
        );
    }

    #[test]
    fn without_cargo_there_is_no_package_to_look_in() {
        let env = Env {
            manifest_dir: None,
            package: None,
            workers_dir: None,
        };
        assert_eq!(
            compile_errors(&auto_workers("", &env)),
            ["auto_workers!(): CARGO_MANIFEST_DIR is not set; build the crate with cargo"]
        );
    }

    // --- #[auto_discover] ---

    #[test]
    fn auto_discover_keeps_the_fn_and_submits_each_install() {
        let manifest = TempDir::new("discover");
        manifest
            .file("src/workers/email.rs", INSTALL)
            .file("src/workers/send-email.rs", WORKER);
        let item = "#[tokio::main] async fn main() -> Result<()> { Ok(()) }";
        let out = auto_discover_in(TokenStream::new(), tokens(item), &env(&manifest)).to_string();
        let email = abs(&manifest, "src/workers/email.rs");
        let send = abs(&manifest, "src/workers/send-email.rs");
        let expected = format!(
            "{} \
             # [doc (hidden)] # [allow (non_snake_case , dead_code , unused_imports , clippy :: duplicate_mod)] \
             mod __auto_discovered_workers {{ \
             # [path = {email:?}] pub mod email ; \
             # [path = {send:?}] pub mod send_email ; \
             }} \
             const _ : () = {{ \
             fn __install () -> :: worker_core :: __private :: BoxFuture {{ \
             :: std :: boxed :: Box :: pin (__auto_discovered_workers :: email :: install ()) \
             }} \
             :: worker_core :: __private :: inventory :: submit ! {{ \
             :: worker_core :: __private :: InstallRegistration {{ file : \"src/workers/email.rs\" , path : {email:?} , install : __install , }} \
             }} \
             }} ;",
            tokens(item)
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn auto_discover_on_something_else_keeps_it_and_says_where_it_goes() {
        let manifest = TempDir::new("discover-struct");
        manifest.file("src/workers/email.rs", INSTALL);
        let out = auto_discover_in(TokenStream::new(), tokens("struct Main;"), &env(&manifest));
        assert!(out.to_string().starts_with("struct Main ;"), "{out}");
        assert_eq!(
            compile_errors(&out),
            ["#[auto_discover] can only be applied to a fn, usually `main`"]
        );
    }

    #[test]
    fn auto_discover_reports_its_own_name() {
        let manifest = TempDir::new("discover-missing");
        let out = auto_discover_in(
            tokens(r#""src/jobs""#),
            tokens("fn main() {}"),
            &env(&manifest),
        );
        let errors = compile_errors(&out);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .starts_with("#[auto_discover]: crate `app` has no worker directory `src/jobs`;"),
            "{errors:?}"
        );
        assert!(
            errors[0].ends_with("such as `src/jobs/email.rs`"),
            "{errors:?}"
        );
    }

    #[test]
    fn paths_display_relative_to_the_package() {
        let root = Path::new("/p");
        assert_eq!(
            display_relative(root, Path::new("/p/src/workers")),
            "src/workers"
        );
        assert_eq!(
            display_relative(root, Path::new("/p/./src/jobs")),
            "src/jobs"
        );
        assert_eq!(display_relative(root, Path::new("/p")), ".");
        assert_eq!(display_relative(root, Path::new("/q/jobs")), "/q/jobs");
    }

    #[test]
    fn scanned_paths_display_below_the_directory_as_shown() {
        let manifest = TempDir::new("scanned");
        manifest.file("src/workers/a/b.rs", "");
        let dir = manifest.path().join("./src/workers");
        let shown = |path: &Path| display_scanned(path, &dir, "src/workers", manifest.path());
        assert_eq!(shown(&dir), "src/workers");
        assert_eq!(shown(&dir.join("a/b.rs")), "src/workers/a/b.rs");
        // The scan reports canonical paths.
        let canonical = match std::fs::canonicalize(&dir) {
            Ok(canonical) => canonical,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(shown(&canonical), "src/workers");
        assert_eq!(shown(&canonical.join("a/b.rs")), "src/workers/a/b.rs");
        // Outside the directory: relative to the manifest, else absolute.
        assert_eq!(shown(&manifest.path().join("Cargo.toml")), "Cargo.toml");
        assert_eq!(shown(Path::new("/q/x.rs")), "/q/x.rs");
        // The directory is the manifest's: no `./` in front.
        assert_eq!(
            display_scanned(&dir.join("a/b.rs"), &dir, ".", manifest.path()),
            "a/b.rs"
        );
    }
}
