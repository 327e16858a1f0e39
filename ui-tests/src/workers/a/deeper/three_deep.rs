//! Three levels below src/workers/: the deepest file auto_workers!() takes.

use worker_core::prelude::*;

#[worker("fixture-three-deep")]
async fn three_deep(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!() }))?;
    Ok(())
}
