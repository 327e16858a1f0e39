//! An `install()` that fails: the failure is reported, the other files still
//! install.

use worker_core::prelude::*;

#[worker("fixture-declared-next-to-a-failing-install")]
async fn still_registered(_ctx: WorkerContext) -> Result<()> {
    Ok(())
}

pub async fn install() -> Result<()> {
    Err(Error::msg("the fixture's install fails on purpose"))
}
