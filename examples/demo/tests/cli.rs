//! The demo binary, run the way a person runs it.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .output()
        .expect("the demo binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_tour_shows_every_feature_and_exits_cleanly() {
    let output = demo(&[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for expected in [
        "16 workers discovered",
        "✓ sent in",
        "generate-report  100% complete",
        "✓ it finished in the background",
        "✓ 20/20 items, at most 4 at a time",
        "✓ err.is_timeout(): Worker 'generate-report' timed out after 200ms",
        "✓ err.is_cancelled(): Worker 'generate-report' run",
        "✓ err.is_validation(): invalid payload for worker 'send-email': missing field `to`",
        "✓ synced 128 contacts on attempt 3 (2 retries)",
        "✓ #[worker(every = \"1s\")] cleanup-temp-files ran by itself too",
        "✓ 15 syncs in",
        "at most 4 at once: acme one at a time",
        "welcome  started",
        "then welcome read both: welcome sent to ada@example.com",
        "worker                runs errors cancelled retries skipped  success   avg ms  last ms",
        "✓ 2 runs cancelled, 0 in flight",
        "✓ new calls refused",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Without a terminal, progress is plain lines, one per message.
    assert!(stdout.contains("process-upload    50% process"), "{stdout}");
    // Worker log lines carry the worker's name and the run's short id.
    assert!(
        text(&output.stderr).contains("│ [Worker:send-email run:"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn one_worker_with_a_payload_prints_its_messages() {
    let output = demo(&["--worker", "send-email", "--payload", r#"{"to":"a@b.c"}"#]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let message: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    assert_eq!(message["status"], "sent");
    assert_eq!(message["to"], "a@b.c");
    assert!(text(&output.stderr).contains("send-email: ok in"));
}

#[test]
fn bad_input_fails_with_the_reason() {
    let output = demo(&["--worker", "send-email", "--payload", "{}"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("error: invalid payload for worker 'send-email': missing field `to`"),
        "{}",
        text(&output.stderr)
    );

    let output = demo(&["--worker", "send-emial"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("error: Worker 'send-emial' not registered"));

    let output = demo(&["--worker", "send-email", "--payload", "{to:"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--payload is not valid JSON"));
}

#[test]
fn list_shows_every_discovered_worker() {
    let output = demo(&["--list"]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "batch-processor",
            "cleanup-temp-files",
            "fetch-profile",
            "generate-report",
            "notify-email",
            "notify-push",
            "notify-push-silent",
            "notify-sms",
            "process-item",
            "process-upload",
            "render-welcome",
            "resize-avatar",
            "send-email",
            "send-welcome",
            "sync-account",
            "sync-crm",
        ]
    );
    assert!(stdout.contains("send-email  (timeout 5s)"));
    assert!(stdout.contains("sync-crm  (timeout 5s, retries 3, concurrency 2)"));
    assert!(stdout.contains("cleanup-temp-files  (every 1s)"));
    assert!(stdout.contains(
        "sync-account  (global_concurrency 4, rate 50/1s, limit_by account, key_concurrency 1)"
    ));
}
