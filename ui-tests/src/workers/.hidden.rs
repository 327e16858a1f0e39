//! Hidden files are skipped by auto_workers!().
compile_error!("src/workers/.hidden.rs must not be declared by auto_workers!()");
