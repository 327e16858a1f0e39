//! `#[auto_discover]` above `#[tokio::main]`, the way an application uses
//! it: `Workers::new().auto_load()` runs the discovered `install()` fns.
//! (A `harness = false` test, so it has a real `main`.)

use worker_core::prelude::*;

#[auto_discover]
#[tokio::main]
async fn main() {
    let failures = match Workers::new().auto_load().start().await {
        Err(Error::Install(failures)) => failures,
        other => panic!("expected the failing install to be reported, got {other:?}"),
    };
    let failed: Vec<&str> = failures.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(failed, ["src/workers/failing_install.rs"]);

    let names = WORKER::definitions().await.unwrap_or_default();
    assert_eq!(names.len(), 11, "{names:?}");
    let mut handle = WORKER::call("two-factor", None, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let message = handle.recv().await.unwrap_or_default();
    assert_eq!(
        message["module"],
        "auto_discover_main::__auto_discovered_workers::_2fa"
    );
    handle
        .await_result()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    WORKER::shutdown()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    println!("auto_discover above #[tokio::main]: ok");
}
