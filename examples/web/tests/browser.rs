//! The dashboard in a real browser: Debian's headless Chromium, driven by
//! chromedriver over the WebDriver HTTP API (plain JSON, no client crate).
//!
//! Ignored by `cargo test --workspace` (it needs Chromium); CI runs it with
//! `cargo test -p web --test browser -- --ignored` after
//! `apt-get install -y chromium chromium-driver`. It saves a screenshot of
//! the page to `target/web-dashboard.png`; with `UPDATE_SCREENSHOT=1` to
//! the README's `docs/web-dashboard.png` instead.

mod common;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and the Chromium it starts, in a process group of their
/// own, and Chromium's profile directory: all gone when this is dropped,
/// whether the test passed or not.
struct Browser {
    driver: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver, Chromium and its helpers (the
        // shell's own `kill`, so no procps needed).
        let _ = Command::new("sh")
            .args(["-c", r#"kill -KILL "-$1""#, "sh"])
            .arg(self.driver.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A WebDriver session over chromedriver's HTTP API.
struct Session {
    client: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("WebDriver {method} {path}: {err}"));
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {json}"
        );
        json["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn navigate(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let element = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?}: {element}"))
            .to_owned()
    }

    async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its result.
    async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn screenshot_png(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(encoded.as_str().unwrap())
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and opens a headless Chromium session.
async fn launch() -> (Browser, Session) {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: apt-get install -y chromium chromium-driver"
        );
    }
    let port = free_port();
    let profile = std::env::temp_dir().join(format!(
        "web-browser-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&profile).unwrap();
    let mut command = Command::new(CHROMEDRIVER);
    command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let driver = command.spawn().expect("chromedriver starts");
    let browser = Browser {
        driver,
        profile: profile.clone(),
    };

    let client = common::client();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = match client.get(format!("{base}/status")).send().await {
            Ok(response) => response
                .json::<Value>()
                .await
                .is_ok_and(|status| status["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not get ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            }
        }
    });
    let response = client
        .post(format!("{base}/session"))
        .json(&capabilities)
        .send()
        .await
        .expect("chromedriver answers");
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert!(status.is_success(), "new session: {status} {created}");
    let id = created["value"]["sessionId"].as_str().unwrap();
    let session = Session {
        client,
        url: format!("{base}/session/{id}"),
    };
    (browser, session)
}

/// What the test reads from the page, in one script.
const READ_PAGE: &str = r#"
const run = document.querySelector('#runs .run[data-worker="generate-report"]');
const runs = document.querySelector('#stats tr[data-worker="generate-report"] td.runs');
return {
  run_id: run ? run.dataset.runId : null,
  state: run ? run.dataset.state : null,
  progress: run ? run.querySelector('progress').value : null,
  stats_runs: runs ? Number(runs.textContent) : null,
  status: document.querySelector('#status').textContent,
  error: document.querySelector('#start-error').textContent,
};
"#;

/// Polls the page until `done` holds; fails after `patience` with `what`
/// and the last reading.
async fn wait_for(
    session: &Session,
    what: &str,
    patience: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + patience;
    loop {
        let page = session.execute(READ_PAGE).await;
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not show {what} within {patience:?}; last reading: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p web --test browser -- --ignored"]
async fn the_demo_button_runs_a_report_and_the_page_follows_it() {
    let server = common::start_default().await;
    // Some company on the page: a slow run in flight, one finished email,
    // one failure in the statistics.
    let slow = server
        .start_run("rebuild-index", Some(r#"{"seconds": 60}"#))
        .await;
    let email = server
        .start_run("send-email", Some(r#"{"to": "ada@example.com"}"#))
        .await;
    server.all_events(&email).await;
    let failed = server
        .start_run("flaky-job", Some(r#"{"outcome": "error"}"#))
        .await;
    server.all_events(&failed).await;

    let (browser, session) = launch().await;
    session.navigate(&server.url("/")).await;
    let before = wait_for(
        &session,
        "the statistics table",
        Duration::from_secs(10),
        |page| page["stats_runs"].is_number() && page["status"] == "live",
    )
    .await;
    let runs_before = before["stats_runs"].as_u64().unwrap();

    let button = session.find("#start-demo").await;
    session.click(&button).await;
    let page = wait_for(
        &session,
        "the demo run's progress bar at 100 and one more generate-report run in the statistics",
        Duration::from_secs(30),
        |page| {
            assert_eq!(page["error"], "", "the page reported an error: {page}");
            page["progress"].as_f64() == Some(100.0)
                && page["state"] == "ok"
                && page["stats_runs"].as_u64().is_some_and(|n| n > runs_before)
        },
    )
    .await;
    let run_id = page["run_id"].as_str().unwrap();
    assert!(
        !common::client()
            .get(server.url("/runs"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(run_id),
        "the demo run is no longer in flight"
    );

    // A run started elsewhere shows up, and so does how it failed.
    server
        .start_run("flaky-job", Some(r#"{"outcome": "timeout"}"#))
        .await;
    let failure = r#"
        const run = document.querySelector('#runs .run[data-worker="flaky-job"][data-state="failed"]');
        return run ? run.querySelector('.note').textContent : null;
    "#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let note = loop {
        if let Value::String(note) = session.execute(failure).await {
            break note;
        }
        assert!(
            Instant::now() < deadline,
            "the flaky-job run was not shown as failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(note, "Worker 'flaky-job' timed out after 1s");
    // Its statistics follow at once, without waiting for the next poll.
    let running = r#"return document.querySelector('#stats tr[data-worker="flaky-job"] td.running').textContent;"#;
    let deadline = Instant::now() + Duration::from_secs(2);
    while session.execute(running).await != "0" {
        assert!(
            Instant::now() < deadline,
            "flaky-job still shown as running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The slow run's bar moves too, fed by its own SSE stream.
    let slow_progress = format!(
        "return Number(document.querySelector('#runs .run[data-run-id=\"{slow}\"] progress').value);"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while session
        .execute(&slow_progress)
        .await
        .as_f64()
        .unwrap_or(0.0)
        < 3.0
    {
        assert!(
            Instant::now() < deadline,
            "the rebuild-index bar did not move"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let png = session.screenshot_png().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = match std::env::var_os("UPDATE_SCREENSHOT") {
        Some(_) => root.join("docs/web-dashboard.png"),
        None => root.join("target/web-dashboard.png"),
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();

    // The slow run's Cancel button cancels it.
    let cancel = session
        .find(&format!("#runs .run[data-run-id=\"{slow}\"] button.cancel"))
        .await;
    session.click(&cancel).await;
    let state = format!(
        "return document.querySelector('#runs .run[data-run-id=\"{slow}\"]').dataset.state;"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.execute(&state).await != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "the rebuild-index run was not shown as cancelled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !worker_core::WORKER::running()
            .await
            .unwrap()
            .contains(&slow)
    );

    // The form shows why a payload is refused.
    let payload = session.find("#payload").await;
    session
        .post(&format!("/element/{payload}/clear"), json!({}))
        .await;
    session
        .post(
            &format!("/element/{payload}/value"),
            json!({"text": r#"{"subject": "no recipient"}"#}),
        )
        .await;
    session
        .execute("document.querySelector('#worker-select').value = 'send-email';")
        .await;
    let start = session.find("#start-run").await;
    session.click(&start).await;
    let error = "return document.querySelector('#start-error').textContent;";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = session.execute(error).await;
        if shown != "" {
            assert_eq!(
                shown,
                "invalid payload for worker 'send-email': missing field `to`"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error shown for a refused payload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    session.quit().await;
    drop(browser);
}

/// Standard base64 with padding, as WebDriver returns screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    }
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}
