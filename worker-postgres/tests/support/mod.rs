//! What the PostgreSQL tests share: a real server, a schema per test, the
//! test workers, and node processes.
//!
//! The server is `DATABASE_URL` if it is set. Otherwise a private,
//! throwaway cluster is started from the machine's PostgreSQL binaries
//! (`/usr/lib/postgresql/*/bin`: `initdb`, then `pg_ctl start`, on a free
//! port, in a temporary directory), once per test binary, and a watchdog
//! stops and deletes it when the test binary exits. If neither is
//! possible, the tests say so loudly and pass without testing anything;
//! with `WORKER_REQUIRE_POSTGRES=1` (as `.ci/run` sets) they fail instead.

#![allow(dead_code)] // each test binary uses some of it

pub mod throwaway;
pub mod workers;

pub use throwaway::Cluster;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use worker_core::WorkerManager;
use worker_postgres::Postgres;

/// Long enough for anything these tests wait for; short enough to fail
/// clearly.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A PostgreSQL server the tests can use.
pub struct Database {
    pub url: String,
    /// The private cluster behind `url`, if the harness started one.
    pub cluster: Option<Cluster>,
}

/// The test binary's database, or `None` (after saying why) if there is
/// none and none is required.
pub fn database() -> Option<&'static Database> {
    static DATABASE: OnceLock<Option<Database>> = OnceLock::new();
    DATABASE
        .get_or_init(|| {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                sweep_leftover_schemas(&url);
                return Some(Database { url, cluster: None });
            }
            match Cluster::start() {
                Ok(cluster) => Some(Database {
                    url: cluster.url(),
                    cluster: Some(cluster),
                }),
                Err(why) => {
                    unavailable(&why);
                    None
                }
            }
        })
        .as_ref()
}

/// Drops the schemas that test binaries no longer running left in a
/// shared `DATABASE_URL` database (a private cluster goes whole). A schema
/// is named after its binary's pid (see [`schema`]); one whose process is
/// still alive is kept, since another `cargo test` may be using it.
fn sweep_leftover_schemas(url: &str) {
    let url = url.to_owned();
    let swept = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the sweep");
        runtime.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await?;
            let names: Vec<String> = sqlx::query_scalar(
                r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\_%'",
            )
            .fetch_all(&pool)
            .await?;
            for name in names {
                let mut parts = name.rsplit('_');
                let (Some(_n), Some(pid)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Ok(pid) = pid.parse::<u32>() else {
                    continue;
                };
                if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&pool)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        })
    })
    .join();
    if let Ok(Err(err)) = swept {
        eprintln!("can't drop the schemas earlier test runs left: {err}");
    }
}

/// A cluster of its own, for a test that stops and starts the server; or
/// `None` (after saying why).
pub fn private_cluster() -> Option<Cluster> {
    match Cluster::start() {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            unavailable(&why);
            None
        }
    }
}

fn unavailable(why: &str) {
    let required = std::env::var("WORKER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "WORKER_REQUIRE_POSTGRES=1 but there is no PostgreSQL: {why}"
    );
    eprintln!(
        "\n==================== SKIPPED: no PostgreSQL ====================\n\
         {why}\n\
         Set DATABASE_URL, or install Debian's postgresql package, to run these tests.\n\
         ================================================================\n"
    );
}

/// A schema no other test uses.
pub fn schema(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("t_{clean}_{}_{n}", std::process::id())
}

/// A backend on `db` in `schema`, with short leases for tests.
pub fn backend(db: &Database, schema: &str) -> Postgres {
    Postgres::new(db.url.clone())
        .schema(schema)
        .lease(Duration::from_secs(2))
}

/// A manager with the test workers and `backend` started.
pub async fn manager(backend: Postgres) -> WorkerManager {
    manager_with(backend, async |_| {}).await
}

/// [`manager`], with a test's own workers registered beside the shared
/// ones before the backend starts (so that their options reach its
/// claims).
pub async fn manager_with(
    backend: Postgres,
    register: impl AsyncFnOnce(&WorkerManager),
) -> WorkerManager {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(300));
    workers::register(&manager).await;
    register(&manager).await;
    manager
        .set_backend(backend)
        .await
        .expect("the backend starts");
    manager
}

/// A connection pool on `db`, for looking at the tables directly.
pub async fn pool(db: &Database) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .expect("connect to the test database")
}

/// Waits until `check` holds, polling; panics with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node process: `worker-postgres-test-node`, the test workers with a
/// backend that executes. Killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

/// Settings of a node process.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub url: String,
    pub schema: String,
    pub lease_ms: u64,
    pub concurrency: usize,
    pub max_stalls: u32,
    pub grace_ms: u64,
    pub ticks: bool,
    /// Where the node appends the starts of `counted`.
    pub starts_file: Option<std::path::PathBuf>,
    /// Env settings of their own (for example the keyed calls of
    /// `CALL_KEY`, see the node binary).
    pub env: Vec<(String, String)>,
}

impl NodeSettings {
    pub fn new(db: &Database, schema: &str) -> Self {
        NodeSettings {
            url: db.url.clone(),
            schema: schema.to_owned(),
            lease_ms: 2000,
            concurrency: 16,
            max_stalls: 2,
            grace_ms: 300,
            ticks: false,
            starts_file: None,
            env: Vec::new(),
        }
    }
}

impl NodeProcess {
    /// Starts a node and waits until it says it is ready.
    pub fn start(settings: &NodeSettings) -> NodeProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker-postgres-test-node"));
        if let Some(file) = &settings.starts_file {
            command.env("STARTS_FILE", file);
        }
        command.envs(settings.env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .env("DATABASE_URL", &settings.url)
            .env("WORKER_SCHEMA", &settings.schema)
            .env("LEASE_MS", settings.lease_ms.to_string())
            .env("CONCURRENCY", settings.concurrency.to_string())
            .env("MAX_STALLS", settings.max_stalls.to_string())
            .env("GRACE_MS", settings.grace_ms.to_string())
            .env("TICKS", if settings.ticks { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test node starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = NodeProcess {
            child,
            lines,
            log: Vec::new(),
        };
        node.wait_for_line("ready");
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line of the node's output that contains `text`.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the node never printed {text:?}; it printed {:#?}",
                    self.log
                ),
            }
        }
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, `TERM`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits for the process to exit; its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
