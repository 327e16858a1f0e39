use std::marker::PhantomData;

use serde::Deserialize;
use worker_core::prelude::*;

#[worker(blocking)]
fn returns_a_number(ctx: WorkerContext) -> std::result::Result<u32, String> {
    let _ = ctx;
    Ok(7)
}

#[derive(Deserialize)]
struct NotSend {
    #[serde(skip)]
    _pointer: PhantomData<*const u8>,
}

// Decoded on a runtime thread, used on a blocking one: it must be `Send`.
#[worker(blocking)]
fn takes_a_pointer(ctx: WorkerContext, payload: NotSend) -> Result<()> {
    let _ = (ctx, payload);
    Ok(())
}

fn main() {}
