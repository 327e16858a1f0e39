//! Procedural macros for [`worker-core`](https://docs.rs/worker-core):
//! `#[worker]`, `auto_workers!()` and `#[auto_discover]`.
//!
//! Use them through `worker_core` (`use worker_core::prelude::*;` and
//! `worker_core::{worker, auto_workers, auto_discover}`), never from this
//! crate directly: the generated code names `::worker_core` and its hidden
//! `__private` module, and this crate is pinned to worker-core's exact
//! version so the two can't drift apart.
//!
//! The examples below are marked `ignore`: they need `worker_core`, which
//! depends on this crate, so they can't be doctests here. The same forms are
//! compiled and run by the workspace's `ui-tests` crate.
//!
//! # Testing
//! Every macro is a function over `proc_macro2` tokens, so the unit tests
//! run without a compiler. Besides the example-based ones there are property
//! tests (`proptest`): the duration parser reads back whatever the runtime's
//! `format_duration` writes and no string panics it; a worker name is
//! accepted exactly when the documented rule says so; file paths always get
//! distinct module names that are valid identifiers; and none of the three
//! macros panics on any generated arguments or item, each returning either
//! its expansion or `compile_error!`s. By default they try a few hundred
//! cases each, so `cargo test -p worker-derive` stays quick. For a longer
//! hunt, raise the count (and build optimized):
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p worker-derive --release
//! ```
//!
//! A failing case is shrunk to a small one and its seed saved under
//! `proptest-regressions/`; commit that file so the case is re-run first
//! from then on. `ui-tests` checks what users see: each error message in
//! place, and the expansions compiled and run.

mod ctxt;
mod discover;
mod duration;
mod fn_item;
mod rate;
#[cfg(test)]
mod testing;
mod worker;
mod zones;

use proc_macro::TokenStream;

/// Declares an `async fn` (or, with `blocking`, a plain `fn`) as a worker,
/// registered before `main` runs.
///
/// ```ignore
/// use worker_core::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Email {
///     to: String,
/// }
///
/// // Named explicitly, with a default timeout; the payload is deserialized
/// // from the run's JSON before the body runs.
/// #[worker("send-email", timeout = "5s")]
/// async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
///     ctx.info(&format!("sending to {}", email.to));
///     Ok(())
/// }
///
/// // Named after the function: "cleanup-temp-files". No payload.
/// #[worker]
/// async fn cleanup_temp_files(ctx: WorkerContext) -> Result<()> {
///     Ok(())
/// }
///
/// // Synchronous, CPU-bound code: a plain fn on tokio's blocking pool.
/// #[worker("resize-image", blocking, timeout = "2s")]
/// fn resize(ctx: WorkerContext, job: ResizeJob) -> Result<()> {
///     image::open(&job.path)?.thumbnail(256, 256).save(&job.out)?;
///     Ok(())
/// }
///
/// #[derive(serde::Deserialize)]
/// struct Welcome {
///     user_id: u64,
/// }
///
/// // Starts ahead of runs with the default priority 0, and keeps one run per
/// // user: every call's key is its payload's `user_id`. That `Welcome` has a
/// // `user_id` is checked when this compiles.
/// #[worker("send-welcome", priority = 5, unique = "user_id")]
/// async fn send_welcome(ctx: WorkerContext, welcome: Welcome) -> Result<()> {
///     Ok(())
/// }
///
/// #[derive(serde::Deserialize)]
/// struct SyncJob {
///     account_id: String,
/// }
///
/// // Limits across the whole cluster: at most 16 attempts at once and 100
/// // starts a minute in all, and per account at most 1 at once and 10 a
/// // minute. That `SyncJob` has an `account_id` is checked when this
/// // compiles.
/// #[worker("sync-crm",
///     global_concurrency = 16,
///     rate = "100/1m",
///     limit_by = "account_id",
///     key_concurrency = 1,
///     key_rate = "10/1m",
/// )]
/// async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> {
///     Ok(())
/// }
///
/// # async fn run() -> Result<()> {
/// WORKER::run("send-email", Some(json!({"to": "a@b.c"}))).await?;
/// WORKER::run("cleanup-temp-files", None).await?;
/// # Ok(()) }
/// ```
///
/// # The function
/// `async fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`: `async`
/// (a plain `fn` with `blocking`), not `const`/`unsafe`/`extern`, no
/// generics, no `self`, and `T: DeserializeOwned` (and `Send` with
/// `blocking`). A run without a payload deserializes from `null`, so
/// `Option<T>` accepts none. The function itself is left exactly as written
/// and can still be called directly; its typed call site is described below.
///
/// # The typed call site
/// Next to the function, the macro declares a zero-sized struct with the
/// same name and visibility: `send_email::call(payload)` makes a
/// `worker_core::TypedCall` for the worker, awaited into a `TypedHandle`.
/// The struct is braced (`struct send_email {}`), which lives only in the
/// type namespace, so the function (value namespace) keeps its name; a
/// module or type of the same name next to the function is a "defined
/// multiple times" error.
///
/// ```ignore
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Receipt { id: u32 }
///
/// #[worker("send-receipt")]
/// async fn send_receipt(ctx: WorkerContext, email: Email) -> Result<Receipt> { … }
///
/// let handle = send_receipt::call(Email { to: "a@b.c".into() })
///     .delay(Duration::from_secs(60)) // also: at, key, on_duplicate, priority, timeout
///     .on(&manager)                   // optional: else the global manager
///     .await?;                        // WORKER::call_with (or manager.call_with)
/// let receipt: Receipt = handle.await_output().await?; // no turbofish
/// cleanup_temp_files::call().await?;  // a worker without payload: no argument
/// assert_eq!(send_receipt::NAME, "send-receipt");
/// ```
///
/// - `call(payload)` takes exactly the payload type: anything else is a
///   compile error at the argument, `worker "send-email" takes a payload of
///   type `Email`, not `u32``. The payload is serialized when the call is
///   awaited, so only calling it this way needs `Serialize`.
/// - The output type is `T` of the return type `Result<T>` (`()` for
///   `Result<()>`). A return type that doesn't spell `T` out (a `Result`
///   alias without arguments, `Result<impl Serialize>`) gives
///   `serde_json::Value`, the output as JSON.
///
/// # Arguments
/// - A string literal first: the worker's name. Without one, the name is the
///   function's in kebab-case (`send_email` → `"send-email"`, leading and
///   trailing `_` dropped). `name = "…"` says the same as an option.
///   Names are non-empty, without whitespace or control characters.
/// - `timeout = "…"`: the default timeout of a run, parsed at compile time:
///   one or more `<integer><unit>` with units `h`, `m`, `s`, `ms`, `us`
///   (or `µs`), `ns`, largest first, no spaces: `"500ms"`, `"5s"`,
///   `"1m30s"`. Must be greater than zero.
/// - `priority = 5`: the default priority of its runs among those waiting
///   to start; higher starts first. Any `i32`, negative ones too
///   (`priority = -1` waits behind the default 0).
/// - `unique = "user_id"`: every call's key is the payload's `user_id`
///   field, so at most one run per value is queued, scheduled or running
///   (`WorkerOptions::unique`). The string names a field of the payload type
///   as declared (`"type"` for a field `r#type`), and the compiler checks it:
///   a payload type without that field (or with it private here), or a worker
///   without a payload, is a compile error at the string. The runtime reads
///   the field from the payload's JSON by that name, so it must be the JSON
///   name too: if `#[serde(rename…)]` or `rename_all` changes it, the check
///   passes and every call fails.
/// - `global_concurrency = 16`: at most this many attempts of the worker
///   execute at once in the whole cluster (`WorkerOptions::global_concurrency`):
///   in-process the process is the cluster; with a durable backend, across
///   every node, enforced in the transaction that claims a run. A whole
///   number of at least 1.
/// - `rate = "100/1m"`: at most so many attempts start per period in the
///   whole cluster, over any window of that length (`WorkerOptions::rate`).
///   A count of at least 1, a slash and a period written as for `timeout`,
///   at least `1ms`: `"10/1s"`, `"5000/1h"`, `"3/1m30s"`. Parsed at compile
///   time; a malformed one (no `/`, a zero count, an unknown unit like
///   `"10/1d"`) is an error at the string.
/// - `limit_by = "account_id"`: the payload field whose values the `key_*`
///   limits apply to, each value (each account, each tenant) on its own.
///   Checked like `unique`'s field: the payload type must have it, and it
///   must be the JSON name too. It needs `key_concurrency` or `key_rate`.
/// - `key_concurrency = 1`: with `limit_by`, at most this many attempts at
///   once per value of the field, in the whole cluster.
/// - `key_rate = "10/1m"`: with `limit_by`, at most so many starts per
///   period per value of the field, in the whole cluster; written as `rate`.
/// - `blocking` (or `blocking = true`): the function is a plain `fn`, run
///   on tokio's blocking pool so it can't stall the runtime's worker threads.
///   `blocking = false` is the default.
///
/// Each option may be given once. Every mistake in one attribute is reported
/// in the same compile, at the token that caused it.
///
/// # Blocking workers
/// The payload is decoded first, then the function runs on a thread of
/// tokio's blocking pool (`spawn_blocking`), so it can't stall the
/// runtime's own threads; a panic there fails the run as a panic, like in an
/// async worker.
///
/// A timeout still fails the run at the deadline: the caller gets the
/// timeout error and the run leaves `WORKER::running` then. But a thread
/// can't be stopped from outside, so the function itself keeps running to
/// its end in the background, and whatever it returns then is ignored.
/// Likewise a cancelled run ends after the grace period, without waiting for
/// the function. Blocking work that should stop early has to look for
/// itself: `ctx.is_cancelled()` for cancellation and shutdown, `ctx.elapsed()`
/// against `ctx.timeout()` for the deadline. Until they finish, such leftover
/// threads count against tokio's blocking-pool limit (`max_blocking_threads`).
///
/// # Limits
/// Registration uses the `inventory` crate (link-time collection), so it
/// works where `inventory` does: Linux, macOS, Windows, most BSDs, and wasm
/// with a constructor-running host; not on targets without static
/// constructors. Registration order is unspecified; two workers with one
/// name are reported when the manager starts. The crate using `#[worker]`
/// must depend on `worker_core` under that name.
#[proc_macro_attribute]
pub fn worker(attr: TokenStream, item: TokenStream) -> TokenStream {
    worker::expand(attr.into(), item.into()).into()
}

/// Declares every worker file under `src/workers/` and evaluates to the
/// setup that runs their `install()` fns, for `Workers::workers_from`.
///
/// ```ignore
/// use worker_core::prelude::*;
///
/// #[tokio::main]
/// async fn main() -> Result<()> {
///     let manager = Workers::new()
///         .workers_from(auto_workers!()) // or auto_workers!("src/jobs")
///         .start()
///         .await?;
///     WORKER::run("send-email", Some(json!({"to": "a@b.c"}))).await?;
///     manager.shutdown().await
/// }
/// ```
///
/// ```text
/// src/workers/
///     email.rs              -> module `email`
///     notifications/sms.rs  -> module `notifications__sms`
///     send-email.rs         -> module `send_email` (names made valid identifiers)
///     mod.rs, _helpers.rs, shared.inc.rs, .hidden.rs  (skipped)
/// ```
///
/// # What it does
/// When the macro expands it lists the directory (recursively, down to
/// `src/workers/a/b/c.rs`), in sorted order, and declares each `.rs` file as
/// a module, so its `#[worker]` fns are compiled and registered. A file may
/// also define `pub async fn install() -> Result<()>` to register workers
/// by hand; the returned setup runs each file's `install()` once, and a
/// failure in one doesn't stop the others: all are reported together.
///
/// The directory is `src/workers` under the package root, or
/// `$WORKER_CORE_WORKERS_DIR` (absolute, or relative to the package root)
/// if that is set, or the string literal given to the macro, which wins.
///
/// # Things to know
/// - The files become modules of a hidden module inside the expression:
///   reach the rest of your crate with `crate::…`, and don't also declare
///   them with `mod workers;` (that would compile them twice).
/// - Cargo doesn't know the macro lists a directory, so a new file is only
///   picked up on the next rebuild of the crate; call
///   `worker_core::build::watch_workers()` from `build.rs` to make adding a
///   file trigger one.
/// - `install` is found by reading the file: it must be a top-level
///   `pub async fn install()` (a re-export isn't seen). A top-level `fn
///   install` of another shape is a compile error naming the file.
/// - A missing or empty directory is a compile error that says where the
///   macro looked.
#[proc_macro]
pub fn auto_workers(input: TokenStream) -> TokenStream {
    discover::auto_workers(input.into()).into()
}

/// Declares every worker file under `src/workers/` next to the annotated fn
/// (usually `main`) and submits their `install()` fns for
/// `Workers::auto_load`.
///
/// ```ignore
/// use worker_core::prelude::*;
///
/// #[auto_discover] // or #[auto_discover("src/jobs")]
/// #[tokio::main]
/// async fn main() -> Result<()> {
///     let manager = Workers::new().auto_load().start().await?;
///     WORKER::run("send-email", Some(json!({"to": "a@b.c"}))).await?;
///     manager.shutdown().await
/// }
/// ```
///
/// It finds files exactly like [`auto_workers!`], reads the same
/// directory settings, and reports the same errors. The fn is left unchanged,
/// so it works above or below `#[tokio::main]`. The files become modules of
/// a hidden module beside the fn. If both macros name the same files in one
/// crate, each `install()` still runs once: the manager recognizes a file by
/// its absolute path.
#[proc_macro_attribute]
pub fn auto_discover(attr: TokenStream, item: TokenStream) -> TokenStream {
    discover::auto_discover(attr.into(), item.into()).into()
}
