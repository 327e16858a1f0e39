//! `auto_workers!()` over the fixture in `src/workers/`: which files become
//! modules under which names, what gets registered, and how a failing
//! `install()` is reported.

use std::time::Duration;

use worker_core::prelude::*;

/// Runs `worker` and returns the first message it emits.
async fn first_message(worker: &str, payload: Option<Value>) -> Value {
    let mut handle = WORKER::call(worker, None, payload)
        .await
        .unwrap_or_else(|err| panic!("{worker}: {err}"));
    let message = handle.recv().await.unwrap_or(Value::Null);
    handle
        .await_result()
        .await
        .unwrap_or_else(|err| panic!("{worker}: {err}"));
    message
}

#[tokio::test]
async fn the_fixture_directory_is_declared_registered_and_installed() {
    let result = Workers::new()
        .grace_period(Duration::from_millis(100))
        .workers_from(auto_workers!())
        .start()
        .await;

    // The one failing install() is reported by file; the others ran.
    let failures = match result {
        Err(Error::Install(failures)) => failures,
        other => panic!("expected the failing install to be reported, got {other:?}"),
    };
    let failed: Vec<(&str, String)> = failures
        .iter()
        .map(|f| (f.file.as_str(), f.error.to_string()))
        .collect();
    assert_eq!(
        failed,
        [(
            "src/workers/failing_install.rs",
            "the fixture's install fails on purpose".to_owned()
        )]
    );

    let names = WORKER::definitions().await.unwrap_or_default();
    assert_eq!(
        names,
        [
            "fixture-a-b-c",
            "fixture-a_b-c",
            "fixture-declared-next-to-a-failing-install",
            "fixture-installed-by-a-b-c",
            "fixture-installed-by-send-email",
            "fixture-only-a",
            "fixture-only-b",
            "fixture-send-email",
            "fixture-three-deep",
            "two-factor",
            "type",
        ]
    );

    // Each file is a module named after it, made a valid identifier.
    let module = |message: Value| message["module"].as_str().unwrap_or_default().to_owned();
    let files = "auto_workers::__worker_files";
    let sent = first_message("fixture-send-email", Some(json!({"to": "a@b.c"}))).await;
    assert_eq!(module(sent.clone()), format!("{files}::send_email"));
    assert_eq!(sent["to"], "a@b.c");
    assert_eq!(
        module(first_message("two-factor", None).await),
        format!("{files}::_2fa")
    );
    assert_eq!(
        module(first_message("type", None).await),
        format!("{files}::type_")
    );
    assert_eq!(
        module(first_message("fixture-a-b-c", None).await),
        format!("{files}::a__b_c")
    );
    assert_eq!(
        module(first_message("fixture-a_b-c", None).await),
        format!("{files}::a_b__c")
    );
    assert_eq!(
        module(first_message("fixture-three-deep", None).await),
        format!("{files}::a__deeper__three_deep")
    );
    // A worker registered by an install() runs like any other.
    assert_eq!(
        module(first_message("fixture-installed-by-send-email", None).await),
        format!("{files}::send_email")
    );

    // Options given in a discovered file apply.
    let only_a = first_message("fixture-only-a", None).await;
    assert_eq!(only_a["timeout_ms"], 2000);
    WORKER::run("fixture-only-b", None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    WORKER::run("fixture-only-b", Some(json!(3)))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let err = WORKER::run("fixture-only-b", Some(json!(30)))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");

    WORKER::shutdown()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
}
