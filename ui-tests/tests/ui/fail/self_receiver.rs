use worker_core::prelude::*;

struct Mailer;

impl Mailer {
    #[worker]
    async fn send(&self, ctx: WorkerContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
}

fn main() {}
