//! Skipped by auto_workers!(): if this were compiled, the build would fail.
compile_error!("src/workers/mod.rs must not be declared by auto_workers!()");
