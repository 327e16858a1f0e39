//! The rule for worker names, in one place for both sides of the build:
//! worker-core checks names given at run time (`register`), and
//! worker-derive compiles this same file (`#[path]`) to check a
//! `#[worker("…")]` literal at compile time. So it imports nothing.

/// What is wrong with `name` as a worker name, if anything. Worker names
/// are non-empty and free of whitespace and control characters, so they
/// print, log and travel in URLs unambiguously.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the worker name can't be empty")
    } else if name.chars().any(char::is_whitespace) {
        Some("the worker name can't contain whitespace; use dashes, like \"send-email\"")
    } else if name.chars().any(char::is_control) {
        Some("the worker name can't contain control characters")
    } else {
        None
    }
}
