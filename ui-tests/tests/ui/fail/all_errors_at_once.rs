use worker_core::prelude::*;

#[worker(NAME, timeout = "soon", colour = "blue")]
fn everything_wrong<T>(_ctx: &WorkerContext, _a: T, _b: T) {}

fn main() {}
