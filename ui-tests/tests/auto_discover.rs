//! `#[auto_discover]` and `auto_workers!()` over the same fixture in one
//! program: each file's `install()` runs once and each `#[worker]` is
//! registered once, though both macros declare the files.

use worker_core::prelude::*;

// Below `#[tokio::test]`: it sees the fn tokio generated and keeps it.
#[tokio::test]
#[auto_discover]
async fn both_macros_in_one_program_install_each_file_once() {
    let result = Workers::new()
        .auto_load()
        .workers_from(auto_workers!("src/workers"))
        .start()
        .await;
    let failures = match result {
        Err(Error::Install(failures)) => failures,
        other => panic!("expected the failing install to be reported, got {other:?}"),
    };
    let failed: Vec<&str> = failures.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(failed, ["src/workers/failing_install.rs"]);

    let names = WORKER::definitions().await.unwrap_or_default();
    assert_eq!(names.len(), 11, "{names:?}");
    assert!(
        names
            .iter()
            .any(|name| name == "fixture-installed-by-send-email")
    );
    assert!(
        names
            .iter()
            .any(|name| name == "fixture-installed-by-a-b-c")
    );

    WORKER::run("fixture-send-email", Some(json!({"to": "x@y.z"})))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    WORKER::shutdown()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
}
