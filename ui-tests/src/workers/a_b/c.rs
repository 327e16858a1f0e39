//! Nested: declared as module `a_b__c`.

use worker_core::prelude::*;

#[worker("fixture-a_b-c")]
async fn nested(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!() }))?;
    Ok(())
}
