//! A client of the dashboard's HTTP API, shared by worker-web's tests and
//! examples/web's (which include this file by path, as they do `sse.rs`).

use std::time::Duration;

use serde_json::Value;

use super::{SseEvent, SseStream};

/// The API at `base`, through a client that never goes through a proxy.
pub struct Http {
    /// `http://127.0.0.1:PORT` and the mount prefix, if any.
    pub base: String,
    pub client: reqwest::Client,
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Http {
    pub fn new(base: String) -> Self {
        Http {
            base,
            client: client(),
        }
    }

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

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
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
