//! The web example's binary: workers behind HTTP.
//!
//! ```text
//! cargo run -p web                            # http://127.0.0.1:3000
//! cargo run -p web -- --addr 0.0.0.0:8080     # or WEB_ADDR=0.0.0.0:8080
//! cargo run -p web -- --postgres URL          # durable runs on PostgreSQL
//! ```
//!
//! Serves until Ctrl+C or SIGTERM, then stops accepting connections,
//! cancels the runs in flight and exits once they and the requests in
//! flight have ended.

use std::process::ExitCode;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

const USAGE: &str = "\
usage: web [--addr HOST:PORT] [--postgres URL]

Serves worker-core's workers over HTTP: the dashboard at /, Prometheus
metrics at /metrics. RUST_LOG-style filtering is not built in: it logs
info and above.

  --addr HOST:PORT   where to listen (default 127.0.0.1:3000, or $WEB_ADDR)
  --postgres URL     run the workers durably on this PostgreSQL (they also
                     run on every other process started with it)
  -h, --help         this help";

#[tokio::main]
async fn main() -> ExitCode {
    let Args { addr, postgres } =
        match parse_args(std::env::args().skip(1), std::env::var("WEB_ADDR").ok()) {
            Ok(Some(args)) => args,
            Ok(None) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Err(message) => {
                eprintln!("error: {message}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        };
    init_tracing();
    let metrics = match web::install_metrics() {
        Ok(handle) => Some(handle),
        Err(err) => {
            log::warn!(target: "web", "{err}; /metrics is off");
            None
        }
    };

    let manager = match web::start_workers(postgres).await {
        Ok(manager) => manager,
        Err(err) => {
            eprintln!("error: the workers did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: can't listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let names = manager.definitions().await.unwrap_or_default();
    log::info!(target: "web", "{} workers: {}", names.len(), names.join(", "));
    match listener.local_addr() {
        Ok(local) => log::info!(target: "web", "listening on http://{local}/ (Ctrl+C to stop)"),
        Err(_) => log::info!(target: "web", "listening on http://{addr}/ (Ctrl+C to stop)"),
    }

    let app = web::app(manager.clone(), metrics);
    match web::serve(listener, app, manager, shutdown_signal()).await {
        Ok(()) => {
            log::info!(target: "web", "stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: the server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    addr: String,
    postgres: Option<String>,
}

/// `Ok(None)` for `--help`; else the address from `--addr`, `$WEB_ADDR` or
/// the default, in that order, and the database of `--postgres`.
fn parse_args(
    args: impl IntoIterator<Item = String>,
    env_addr: Option<String>,
) -> Result<Option<Args>, String> {
    let mut addr = None;
    let mut postgres = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--postgres" => match args.next() {
                Some(value) => postgres = Some(value),
                None => {
                    return Err(
                        "--postgres needs a value, like postgres://app@localhost/app".to_owned(),
                    );
                }
            },
            "--addr" => match args.next() {
                Some(value) => addr = Some(value),
                None => return Err("--addr needs a value, like 127.0.0.1:3000".to_owned()),
            },
            _ => match arg.strip_prefix("--addr=") {
                Some(value) => addr = Some(value.to_owned()),
                None => return Err(format!("unknown argument {arg:?}")),
            },
        }
    }
    let addr = addr
        .or(env_addr.filter(|value| !value.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    Ok(Some(Args { addr, postgres }))
}

/// Resolves on Ctrl+C, or SIGTERM on Unix.
async fn shutdown_signal() {
    match worker_core::shutdown_signal().await {
        Ok(()) => log::info!(target: "web", "signal received"),
        Err(err) => {
            // Without handlers, only a kill stops the server: say so, and
            // serve on rather than stop at once.
            log::error!(target: "web", "can't listen for Ctrl+C/SIGTERM: {err}");
            std::future::pending::<()>().await;
        }
    }
}

/// Log lines on stderr, info and above, through `tracing`: each run's lines
/// carry its span (`worker.run{worker=.. run_id=..}`), and the `log`
/// records of the app and its libraries are read in too.
fn init_tracing() {
    let installed = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .try_init();
    if let Err(err) = installed {
        eprintln!("warning: no log output: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Option<String>, String> {
        parse_args(
            args.iter().map(|arg| arg.to_string()),
            env.map(str::to_owned),
        )
        .map(|args| args.map(|args| args.addr))
    }

    #[test]
    fn the_flag_wins_over_the_environment_which_wins_over_the_default() {
        assert_eq!(parse(&[], None), Ok(Some("127.0.0.1:3000".into())));
        assert_eq!(
            parse(&[], Some("0.0.0.0:80")),
            Ok(Some("0.0.0.0:80".into()))
        );
        assert_eq!(
            parse(&["--addr", "[::1]:9"], Some("0.0.0.0:80")),
            Ok(Some("[::1]:9".into()))
        );
        assert_eq!(parse(&["--addr=h:1"], None), Ok(Some("h:1".into())));
        assert_eq!(parse(&["--help"], None), Ok(None));
        assert!(parse(&["--addr"], None).is_err());
        assert!(parse(&["--port", "1"], None).is_err());
        let durable = parse_args(["--postgres".into(), "postgres://a@b/c".into()], None);
        assert_eq!(
            durable.unwrap().unwrap().postgres.as_deref(),
            Some("postgres://a@b/c")
        );
        assert!(parse(&["--postgres"], None).is_err());
    }
}
