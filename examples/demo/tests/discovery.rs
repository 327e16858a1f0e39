//! `auto_workers!()` over the demo's own src/workers/, the third way to load
//! workers beside `#[auto_discover]` + `auto_load()` (used by main.rs).

use worker_core::prelude::*;

#[tokio::test]
async fn auto_workers_installs_each_file_once_however_often_it_is_declared() {
    let manager = Workers::new()
        .workers_from(auto_workers!())
        // Declaring the same files again (as #[auto_discover] next to
        // auto_workers!() would) installs nothing twice.
        .workers_from(auto_workers!())
        .start()
        .await
        .unwrap();
    let names = manager.definitions().await.unwrap();
    for expected in [
        "process-upload",
        "notify-sms",
        "notify-push",
        "notify-push-silent",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "install() files: {expected} in {names:?}"
        );
    }
    for expected in [
        "send-email",
        "generate-report",
        "cleanup-temp-files",
        "notify-email",
        "sync-crm",
        "sync-account",
        "fetch-profile",
        "resize-avatar",
        "render-welcome",
        "send-welcome",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "#[worker] fns: {expected} in {names:?}"
        );
    }
    assert_eq!(names.len(), 16);
    let err = WORKER::run("send-email", Some(json!({"to": "nobody"})))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "'nobody' is not an email address");
}
