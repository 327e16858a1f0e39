//! A named worker with a typed payload, run through `WORKER::run`.

use std::sync::Mutex;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct Email {
    to: String,
    subject: Option<String>,
}

static SENT: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());

#[worker("send-email")]
async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
    assert_eq!(ctx.worker_name(), "send-email");
    SENT.lock().unwrap().push((email.to, email.subject));
    Ok(())
}

#[tokio::main]
async fn main() {
    WORKER::run("send-email", Some(json!({"to": "a@b.c", "subject": "hi"})))
        .await
        .unwrap();
    WORKER::run("send-email", Some(json!({"to": "x@y.z"})))
        .await
        .unwrap();
    assert_eq!(
        *SENT.lock().unwrap(),
        [
            ("a@b.c".to_owned(), Some("hi".to_owned())),
            ("x@y.z".to_owned(), None)
        ]
    );

    // A payload that doesn't fit is turned away before the body runs.
    let err = WORKER::run("send-email", Some(json!({"too": "a@b.c"})))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");
    let err = WORKER::run("send-email", None).await.unwrap_err();
    assert!(err.is_validation(), "{err}");
    assert_eq!(SENT.lock().unwrap().len(), 2);

    // The function is still an ordinary function.
    let _direct: fn(WorkerContext, Email) -> _ = send_email;
}
