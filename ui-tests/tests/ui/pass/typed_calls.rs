//! The typed entry point `#[worker]` gives each worker: `name::call(payload)`
//! is checked against the payload type, takes the per-call options, and is
//! awaited into a handle that knows the output type. The fn keeps its name
//! and is still callable as written, at any visibility and in any scope.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use worker_core::prelude::*;

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Receipt {
    to: String,
}

#[worker("send-email", timeout = "5s")]
async fn send_email(ctx: WorkerContext, email: Email) -> Result<Receipt> {
    let _ = ctx;
    Ok(Receipt { to: email.to })
}

/// No payload: `call()` takes no argument.
#[worker]
async fn tick(ctx: WorkerContext) -> Result<()> {
    assert!(ctx.payload().is_none());
    Ok(())
}

/// A blocking worker has the same entry point.
#[worker(blocking)]
fn add(_ctx: WorkerContext, pair: (u32, u32)) -> Result<u32> {
    Ok(pair.0 + pair.1)
}

mod jobs {
    use worker_core::prelude::*;

    #[worker]
    pub async fn echo(_ctx: WorkerContext, n: u8) -> worker_core::Result<u8> {
        Ok(n)
    }

    #[worker]
    pub(crate) async fn crate_visible(_ctx: WorkerContext) -> Result<String> {
        Ok("crate".to_owned())
    }

    #[worker]
    async fn private(_ctx: WorkerContext) -> Result<()> {
        Ok(())
    }

    pub(crate) async fn call_private(manager: &WorkerManager) -> Result<()> {
        private::call().on(manager).await?.await_output().await
    }

    /// A return type spelled without `Result<T>` (an alias): the output is
    /// read back as JSON.
    pub mod aliased {
        pub type Result = worker_core::Result<u32>;
    }

    #[worker]
    pub async fn aliased_output(_ctx: WorkerContext) -> aliased::Result {
        Ok(7)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    #[worker]
    async fn local(_ctx: WorkerContext, words: Vec<String>) -> Result<usize> {
        Ok(words.len())
    }

    let manager = WorkerManager::new();
    manager.register_declared()?;
    // The fn itself, called from a hand-registered worker's context.
    manager
        .register_with("direct", WorkerOptions::new(), |ctx| async move {
            send_email(ctx, Email { to: "direct".into() }).await
        })
        .await?;

    assert_eq!(send_email::NAME, "send-email");
    let handle = send_email::call(Email { to: "a@b.c".into() })
        .delay(Duration::from_millis(10))
        .key("a@b.c")
        .priority(5)
        .timeout(Duration::from_secs(5))
        .on(&manager)
        .await?;
    assert_eq!(handle.worker_name(), "send-email");
    assert_eq!(manager.scheduled(Some("send-email")).await?, [handle.id()]);
    // No turbofish: the handle knows the worker returns a `Receipt`.
    let receipt = handle.await_output().await?;
    assert_eq!(receipt, Receipt { to: "a@b.c".into() });

    tick::call().on(&manager).await?.await_output().await?;
    let sum: u32 = add::call((2, 3)).on(&manager).await?.await_output().await?;
    assert_eq!(sum, 5);
    let count = local::call(vec!["a".to_owned(), "b".to_owned()])
        .on(&manager)
        .await?
        .await_output()
        .await?;
    assert_eq!(count, 2);
    let text = jobs::crate_visible::call().on(&manager).await?;
    assert_eq!(text.await_output().await?, "crate");
    jobs::call_private(&manager).await?;
    let raw: Value = jobs::aliased_output::call()
        .on(&manager)
        .await?
        .await_output()
        .await?;
    assert_eq!(raw, json!(7));

    // Without `.on(..)`: the global manager, like `WORKER::call_with`.
    let echoed = jobs::echo::call(4).await?.await_output().await?;
    assert_eq!(echoed, 4);

    let direct = manager.call("direct", None, None).await?;
    assert_eq!(
        direct.await_output::<Receipt>().await?,
        Receipt { to: "direct".into() }
    );
    Ok(())
}
