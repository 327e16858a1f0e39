//! Build-script helpers.
//!
//! `auto_workers!()` and `#[auto_discover]` list `src/workers/` when they
//! expand. Cargo does not know that, so adding a worker file would not
//! rebuild the crate. Call [`watch_workers`] from your `build.rs` and it will:
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     worker_core::build::watch_workers();
//! }
//! ```
//!
//! with `worker-core` also under `[build-dependencies]` in your `Cargo.toml`.

#![allow(clippy::needless_doctest_main)]

/// Tells cargo to rebuild when anything under `src/workers/` changes (a file
/// added, removed, renamed or edited), and when `build.rs` changes.
pub fn watch_workers() {
    watch_dir("src/workers");
}

/// Like [`watch_workers`] for another directory, relative to the package
/// root, such as the one given to `auto_workers!("src/jobs")`.
pub fn watch_dir(dir: &str) {
    print!("{}", rerun_lines(dir));
}

fn rerun_lines(dir: &str) -> String {
    // Cargo scans a watched directory recursively for changed mtimes; a new
    // file in a subdirectory changes that subdirectory's mtime.
    format!("cargo:rerun-if-changed={dir}\ncargo:rerun-if-changed=build.rs\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn watches_the_directory_and_the_build_script() {
        assert_eq!(
            super::rerun_lines("src/workers"),
            "cargo:rerun-if-changed=src/workers\ncargo:rerun-if-changed=build.rs\n"
        );
    }
}
