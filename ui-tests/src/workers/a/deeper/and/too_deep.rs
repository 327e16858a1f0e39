//! Four levels below src/workers/: deeper than auto_workers!() looks.
compile_error!("src/workers/a/deeper/and/too_deep.rs must not be declared by auto_workers!()");
