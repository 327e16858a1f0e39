//! Nested: declared as module `a__b_c`, which must not collide with
//! `a_b/c.rs`.

use worker_core::prelude::*;

#[worker("fixture-a-b-c")]
async fn nested(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!() }))?;
    Ok(())
}

pub async fn install() -> Result<()> {
    WORKER::register("fixture-installed-by-a-b-c", |_ctx| async move { Ok(()) }).await
}
