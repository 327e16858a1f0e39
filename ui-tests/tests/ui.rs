//! What users see: each `fail` case must be rejected with the macro's own
//! message (checked against its `.stderr`), each `pass` case must compile
//! and run its worker to the expected effect.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p
//! ui-tests --test ui`, then read every changed one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
