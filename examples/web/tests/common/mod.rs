//! What the test binaries share: the real server on `127.0.0.1:0`, an HTTP
//! client, and a small `text/event-stream` reader.

#![allow(dead_code)] // each test binary uses some of it

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use worker_core::WorkerManager;

/// Long enough for any run of these tests; short enough to fail clearly.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The server, serving until the test's runtime ends.
pub struct Server {
    pub base: String,
    pub manager: WorkerManager,
    pub client: reqwest::Client,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Serves the app over the global manager (`WORKER::`), with the demo
/// workers, on a free port of 127.0.0.1, until `shutdown` resolves.
pub async fn start_until(shutdown: impl Future<Output = ()> + Send + 'static) -> Server {
    let manager = web::start_workers().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = web::app(manager.clone(), None);
    let task = tokio::spawn(web::serve(listener, app, manager.clone(), shutdown));
    Server {
        base,
        manager,
        client: client(),
        task,
    }
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// POSTs `body` as JSON (nothing for `None`) to start `worker`.
    pub async fn post_run(&self, worker: &str, body: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/workers/{worker}/runs")));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        request.send().await.unwrap()
    }

    /// Starts a run that must be accepted; returns its id.
    pub async fn start_run(&self, worker: &str, body: Option<&str>) -> String {
        let response = self.post_run(worker, body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "POST /workers/{worker}/runs: {json}");
        json["run_id"].as_str().unwrap().to_owned()
    }

    /// Opens the run's event stream.
    pub async fn events(&self, run_id: &str) -> SseStream {
        let response = self.get(&format!("/runs/{run_id}/events")).await;
        assert_eq!(response.status(), 200, "GET /runs/{run_id}/events");
        SseStream::new(response)
    }

    /// The run's whole event stream, from the start to the end.
    pub async fn all_events(&self, run_id: &str) -> Vec<SseEvent> {
        self.events(run_id).await.collect().await
    }

    /// The `GET /workers` entry of `worker`.
    pub async fn worker_stats(&self, worker: &str) -> Value {
        let workers = self.get_json("/workers").await;
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == worker)
            .unwrap_or_else(|| panic!("{worker} in {workers}"))
            .clone()
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|err| panic!("{:?} is not JSON: {err}", self.data))
    }
}

/// A `text/event-stream` response, read event by event.
pub struct SseStream {
    // reqwest's chunks are `bytes::Bytes`, which axum re-exports.
    body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
    ended: bool,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content-type {content_type:?}"
        );
        SseStream {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next event (comments and keep-alives skipped); `None` once the
    /// server has closed the stream. Panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(PATIENCE, self.next_event())
            .await
            .expect("no SSE event within the test's patience")
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
            }
            if self.ended {
                assert!(
                    self.buffer.trim().is_empty(),
                    "stream ended mid-event: {:?}",
                    self.buffer
                );
                return None;
            }
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk.expect("the event stream broke off");
                    let text = std::str::from_utf8(chunk.as_ref()).expect("UTF-8 events");
                    self.buffer.push_str(&text.replace("\r\n", "\n"));
                }
                None => self.ended = true,
            }
        }
    }

    /// Every remaining event, up to the end of the stream.
    pub async fn collect(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// One event block: `field: value` lines; `data` lines joined with `\n`;
/// `None` for a block of comments only (a keep-alive).
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut id = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    if event.is_none() && data.is_none() && id.is_none() {
        return None;
    }
    Some(SseEvent {
        event: event.unwrap_or_else(|| "message".to_owned()),
        id,
        data: data.unwrap_or_default(),
    })
}

/// Waits until `check` holds, polling; panics with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
