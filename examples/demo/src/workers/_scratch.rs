// Skipped by discovery (leading underscore): a place for a worker that is not
// ready to ship. Nothing here is compiled.

#[allow(dead_code)]
fn not_yet() {}
