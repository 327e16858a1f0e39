use worker_core::prelude::*;

fn main() {
    // The test project trybuild builds has no src/workers/.
    let _setup = auto_workers!();
}
