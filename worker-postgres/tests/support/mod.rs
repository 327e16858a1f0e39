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

pub mod workers;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
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
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(300));
    workers::register(&manager).await;
    manager
        .set_backend(Arc::new(backend))
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

/// A private PostgreSQL cluster: stopped and deleted when dropped, or by
/// its watchdog when the test binary exits.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

fn binaries() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e})"))?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no initdb and pg_ctl under /usr/lib/postgresql/*/bin".to_owned())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and can't fail.
    unsafe { geteuid() == 0 }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// A command run as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: can't run it: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = binaries()?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "worker-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown the cluster's directory to postgres",
            )?;
        }
        let mut initdb = as_server_user(&bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let cluster = Cluster { bin, dir, port };
        cluster.start_server()?;
        cluster.watchdog();
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let mut start = as_server_user(&self.bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400",
                self.port,
                self.dir.display()
            ))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null());
        run(start, "pg_ctl start")
    }

    /// `pg_ctl stop -m immediate`: as abrupt as a crash.
    pub fn stop_server(&self) -> Result<(), String> {
        let mut stop = as_server_user(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null());
        run(stop, "pg_ctl stop")
    }

    /// Stops the server and deletes its files once this test process is
    /// gone, whatever way it ends.
    fn watchdog(&self) {
        let script = format!(
            r#"while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}"#,
            pid = std::process::id(),
            stop = if is_root() {
                format!(
                    "runuser -u postgres -- {}",
                    self.bin.join("pg_ctl").display()
                )
            } else {
                self.bin.join("pg_ctl").display().to_string()
            },
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
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
        }
    }
}

impl NodeProcess {
    /// Starts a node and waits until it says it is ready.
    pub fn start(settings: &NodeSettings) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_worker-postgres-test-node"))
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
