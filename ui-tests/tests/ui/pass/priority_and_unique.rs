//! `priority` and `unique` reach the worker's options; `unique` compiles
//! because the payload has the field it names (a keyword field included).

use std::sync::Mutex;

use serde::Deserialize;
use worker_core::prelude::*;

#[derive(Deserialize)]
struct Welcome {
    user_id: u64,
}

#[derive(Deserialize)]
struct Event {
    r#type: String,
}

static WELCOMED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[worker("send-welcome", priority = 5, unique = "user_id")]
async fn send_welcome(ctx: WorkerContext, welcome: Welcome) -> Result<()> {
    let _ = ctx;
    WELCOMED.lock().unwrap().push(welcome.user_id);
    Ok(())
}

#[worker(blocking, priority = -1, unique = "type")]
fn record_event(ctx: WorkerContext, event: Event) -> Result<()> {
    let _ = (ctx, event.r#type);
    Ok(())
}

#[tokio::main]
async fn main() {
    let welcome = WorkerManager::global().options("send-welcome").unwrap();
    assert_eq!(welcome.get_priority(), 5);
    assert_eq!(welcome.get_unique(), Some("user_id"));

    let event = WorkerManager::global().options("record-event").unwrap();
    assert_eq!(event.get_priority(), -1);
    // The payload's JSON key, as serde names the field `r#type`.
    assert_eq!(event.get_unique(), Some("type"));

    WORKER::run("send-welcome", Some(json!({"user_id": 7})))
        .await
        .unwrap();
    assert_eq!(*WELCOMED.lock().unwrap(), [7]);
}
