//! Compile-time tests of worker-core's macros (`tests/ui.rs`) and
//! integration tests of worker discovery (`tests/auto_*.rs`).
//!
//! `src/workers/` is a fixture for `auto_workers!()` and `#[auto_discover]`.
//! This library deliberately declares none of its files as modules: the
//! macros in the tests do, and declaring them here too would compile them
//! twice.
