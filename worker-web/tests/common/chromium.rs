//! Headless Chromium for the dashboard's browser tests, driven by
//! chromedriver over the WebDriver HTTP API (plain JSON, no client crate).
//! Shared by worker-web's tests and worker-postgres's durable dashboard
//! test (included with `#[path]`).

#![allow(dead_code)] // each test binary uses some of it

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
pub struct Browser {
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
pub struct Session {
    client: reqwest::Client,
    url: String,
}

impl Session {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn navigate(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn find(&self, css: &str) -> String {
        let element = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?}: {element}"))
            .to_owned()
    }

    pub async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    pub async fn screenshot_png(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(encoded.as_str().unwrap())
    }

    pub async fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and opens a headless Chromium session.
pub async fn launch() -> (Browser, Session) {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: apt-get install -y chromium chromium-driver"
        );
    }
    let port = free_port();
    let profile = std::env::temp_dir().join(format!(
        "worker-web-browser-test-{}-{}",
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

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
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

impl Session {
    /// Sets the window's size, as a phone or a desktop would have it.
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Resizes to a phone's window and checks that nothing runs off the
    /// side of the page; the window stays phone-sized.
    pub async fn assert_fits_a_phone(&self) {
        self.resize(390, 844).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let overflow = self
            .execute("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "wider than the phone by {overflow}px"
        );
    }

    /// Answers the page's next `confirm()` with yes, keeping its text in
    /// `window.confirmed` for the test to read.
    pub async fn accept_confirms(&self) {
        self.execute(
            "window.confirmed = null;
             window.confirm = (text) => { window.confirmed = text; return true; };
             return true;",
        )
        .await;
    }

    /// Polls `script` (a function body) until it returns something other
    /// than `null`/`false`; fails after `patience` saying `what`.
    pub async fn wait_for(&self, what: &str, patience: Duration, script: &str) -> Value {
        let deadline = Instant::now() + patience;
        loop {
            let value = self.execute(script).await;
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            let error = self
                .execute("return document.querySelector('#action-error').textContent;")
                .await;
            assert!(
                Instant::now() < deadline,
                "the page did not show {what} within {patience:?} (#action-error: {error})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot as `target/worker-web/{name}.png`.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let png = self.screenshot_png().await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = root.join(format!("target/worker-web/{name}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &png).unwrap();
        if name == "overview" && std::env::var_os("UPDATE_SCREENSHOT").is_some() {
            std::fs::write(root.join("docs/web-dashboard.png"), &png).unwrap();
        }
        path
    }
}

pub fn base64_decode(text: &str) -> Vec<u8> {
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
