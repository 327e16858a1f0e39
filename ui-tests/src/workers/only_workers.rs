//! Only `#[worker]` fns, no `install()`: nothing to install, the workers are
//! registered all the same.

use worker_core::prelude::*;

#[worker("fixture-only-a", timeout = "2s")]
async fn only_a(ctx: WorkerContext) -> Result<()> {
    ctx.emit(json!({ "module": module_path!(), "timeout_ms": ctx.timeout().map(|t| t.as_millis() as u64) }))?;
    Ok(())
}

#[worker("fixture-only-b")]
async fn only_b(_ctx: WorkerContext, n: Option<u32>) -> Result<()> {
    match n {
        Some(n) if n > 10 => Err(Error::validation("too big")),
        _ => Ok(()),
    }
}
