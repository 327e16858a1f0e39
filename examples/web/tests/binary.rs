//! The `web` binary, run the way a person runs it: it logs its URL, serves
//! the dashboard and the workers' metrics for Prometheus, and on SIGTERM
//! stops serving and stops the workers, then exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the server if the test fails before it has stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_and_bad_arguments() {
    let help = Command::new(env!("CARGO_BIN_EXE_web"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--addr HOST:PORT"));

    let bad = Command::new(env!("CARGO_BIN_EXE_web"))
        .arg("--port")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument \"--port\""));
}

#[cfg(unix)]
#[tokio::test]
async fn serves_until_sigterm_then_stops_gracefully() {
    let child = Command::new(env!("CARGO_BIN_EXE_web"))
        .env("WEB_ADDR", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = server.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no 'listening on' line in {log:#?}"));
        log.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // One run that succeeds, one that fails: both in the metrics, scraped
    // the way Prometheus does.
    for outcome in ["ok", "error"] {
        let response = client
            .post(format!("{url}workers/flaky-job/runs"))
            .json(&serde_json::json!({"outcome": outcome}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let mut scraped = String::new();
    for _ in 0..100 {
        let response = client.get(format!("{url}metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        scraped = response.text().await.unwrap();
        if scraped.contains(r#"outcome="succeeded""#) && scraped.contains(r#"outcome="failed""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line_of = |name: &str, labels: &[&str]| {
        scraped
            .lines()
            .find(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
            .unwrap_or_else(|| panic!("{name} {labels:?} in:\n{scraped}"))
            .to_owned()
    };
    let ok = line_of(
        "worker_runs_total{",
        &[r#"worker="flaky-job""#, r#"outcome="succeeded""#],
    );
    assert!(ok.ends_with(" 1"), "{ok}");
    let failed = line_of(
        "worker_runs_total{",
        &[r#"worker="flaky-job""#, r#"outcome="failed""#],
    );
    assert!(failed.ends_with(" 1"), "{failed}");
    line_of("worker_run_duration_seconds", &[r#"worker="flaky-job""#]);
    let in_flight = line_of("worker_in_flight{", &[r#"worker="flaky-job""#]);
    assert!(in_flight.ends_with(" 0"), "{in_flight}");
    assert!(!scraped.contains("run_id"), "no run id in any label");

    let started = client
        .post(format!("{url}workers/rebuild-index/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);

    let killed = Command::new("sh")
        .args(["-c", r#"kill -TERM "$1""#, "sh"])
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = server.0.wait().unwrap();
        (status, server)
    });
    let (status, _server) = tokio::time::timeout(Duration::from_secs(20), status)
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
    }
    assert!(status.success(), "{status:?}\n{log:#?}");
    let log = log.join("\n");
    for expected in [
        "workers: flaky-job, generate-report, rebuild-index, send-email",
        "started rebuild-index run",
        "signal received",
        "workers stopped",
        "stopped",
    ] {
        assert!(log.contains(expected), "{expected:?} in:\n{log}");
    }
}
