//! What the test binaries share: the real server on `127.0.0.1:0`, an HTTP
//! client, and a small `text/event-stream` reader.

#![allow(dead_code)] // each test binary uses some of it

#[path = "../../../../worker-web/tests/common/http.rs"]
mod http;
#[path = "../../../../worker-web/tests/common/sse.rs"]
mod sse;
pub use http::*;
pub use sse::*;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use worker_core::WorkerManager;

/// The server, serving until the test's runtime ends.
pub struct Server {
    pub http: Http,
    pub manager: WorkerManager,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Serves the app over the global manager (`WORKER::`), with the demo
/// workers, on a free port of 127.0.0.1, until `shutdown` resolves.
pub async fn start_until(shutdown: impl Future<Output = ()> + Send + 'static) -> Server {
    let manager = web::start_workers(None).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = web::app(manager.clone(), None);
    let task = tokio::spawn(web::serve(listener, app, manager.clone(), shutdown));
    Server {
        http: Http::new(base),
        manager,
        task,
    }
}

impl std::ops::Deref for Server {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}
