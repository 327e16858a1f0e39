//! Two `#[worker]` fns declaring one name: startup fails naming both places,
//! and neither is registered. (Its own binary: the clash would otherwise be
//! in every test's global manager.)

use worker_core::prelude::*;

mod billing {
    use worker_core::prelude::*;

    #[worker("send-invoice")]
    pub async fn send_invoice(_ctx: WorkerContext) -> Result<()> {
        Ok(())
    }
}

mod legacy {
    use worker_core::prelude::*;

    #[worker("send-invoice")]
    pub async fn send_invoice_v1(_ctx: WorkerContext) -> Result<()> {
        Ok(())
    }
}

#[worker]
async fn unrelated(_ctx: WorkerContext) -> Result<()> {
    Ok(())
}

#[tokio::test]
async fn a_name_declared_twice_fails_startup_naming_both_places() {
    let err = Workers::new().start().await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("Worker 'send-invoice' is declared twice: at "),
        "{message}"
    );
    let file = file!();
    assert_eq!(
        message.matches(file).count(),
        2,
        "both places, as file:line: {message}"
    );
    assert!(message.ends_with("; rename one of them"), "{message}");

    // Neither declaration is registered; the rest are.
    let err = WORKER::run("send-invoice", None).await.unwrap_err();
    assert!(err.is_not_registered());
    WORKER::run("unrelated", None).await.unwrap();

    // An independent manager reports the same.
    let manager = WorkerManager::new();
    let err = manager.register_declared().unwrap_err();
    assert_eq!(err.to_string(), message);
    assert!(
        manager
            .definitions()
            .await
            .unwrap()
            .contains(&"unrelated".to_owned())
    );
    // Asking again changes nothing and says the same.
    assert_eq!(
        manager.register_declared().unwrap_err().to_string(),
        message
    );
}
