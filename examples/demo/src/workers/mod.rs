// Skipped by discovery (`mod.rs`): the workers in this directory are found by
// `#[auto_discover]` in main.rs, not declared here.
