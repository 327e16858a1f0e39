//! A keyword: declared as module `type_`.

use worker_core::prelude::*;

#[worker]
async fn r#type(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!() }))?;
    Ok(())
}
