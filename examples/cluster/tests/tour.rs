//! The cluster tour, run as a person runs it: two worker nodes and a web
//! node on a throwaway PostgreSQL (or `DATABASE_URL`); one node killed;
//! every run ends, once, some of them started again elsewhere.

use std::process::Command;

#[test]
fn runs_of_a_killed_node_finish_on_the_others() {
    let has_postgres = std::env::var("DATABASE_URL").is_ok()
        || std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|mut d| d.next().is_some());
    if !has_postgres {
        assert_ne!(
            std::env::var("WORKER_REQUIRE_POSTGRES").as_deref(),
            Ok("1"),
            "WORKER_REQUIRE_POSTGRES=1 but there is no PostgreSQL"
        );
        eprintln!("SKIPPED: no PostgreSQL (set DATABASE_URL or install postgresql)");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_cluster"))
        .args(["--nodes", "2"])
        .output()
        .expect("the tour runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 worker nodes"), "{stdout}");
    assert!(stdout.contains("kill -9"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("all 8 runs ended"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    assert!(summary.contains("8 succeeded, 0 failed"), "{summary}");
    let restarted: u32 = summary
        .split("; ")
        .nth(1)
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        restarted >= 1,
        "the killed node's runs started again: {summary}"
    );
}
