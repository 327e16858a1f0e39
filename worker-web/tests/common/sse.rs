//! Reading `text/event-stream` responses in tests, and waiting for a
//! condition. Shared with `examples/web`'s tests (by `#[path]`).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

/// Long enough for any run of these tests; short enough to fail clearly.
pub const PATIENCE: Duration = Duration::from_secs(20);

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
