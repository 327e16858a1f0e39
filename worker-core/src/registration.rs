//! What `#[worker]` and `#[auto_discover]` submit at link time through
//! `inventory`, for the manager to collect.

use crate::launch::{BoxFuture, Launcher};
use crate::options::WorkerOptions;

/// A shim that calls one discovered file's `install()`.
pub type InstallFn = fn() -> BoxFuture;

/// One `#[worker]` fn, submitted at link time with `inventory::submit!`.
#[derive(Debug)]
pub struct WorkerRegistration {
    /// The worker's name.
    pub name: &'static str,
    /// Makes the worker's options from `#[worker(timeout = "…", …)]`.
    pub options: fn() -> WorkerOptions,
    /// Makes the worker's [`Launcher`]: a fn, so the registration stays a
    /// constant, and generic over the worker's future inside.
    pub launcher: fn() -> Launcher,
    /// `module_path!()` at the fn.
    pub module_path: &'static str,
    /// `file!()` at the fn.
    pub file: &'static str,
    /// `line!()` at the fn's name.
    pub line: u32,
}

inventory::collect!(WorkerRegistration);

/// One discovered worker file that has an `install()` fn.
#[derive(Debug)]
pub struct InstallRegistration {
    /// The file as a person reads it: `src/workers/notifications/email.rs`.
    pub file: &'static str,
    /// The absolute path: identifies the file when two macros declare it.
    pub path: &'static str,
    /// Calls the file's `install()`.
    pub install: InstallFn,
}

inventory::collect!(InstallRegistration);
