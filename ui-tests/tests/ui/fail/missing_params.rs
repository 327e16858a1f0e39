use worker_core::prelude::*;

#[worker]
async fn no_context() -> Result<()> {
    Ok(())
}

fn main() {}
