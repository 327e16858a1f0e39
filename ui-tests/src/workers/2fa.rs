//! A leading digit: declared as module `_2fa`.

use worker_core::prelude::*;

#[worker]
async fn two_factor(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!() }))?;
    Ok(())
}
