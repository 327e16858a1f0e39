//! The command line: the tour by default, or one worker with a payload.

use std::time::Instant;

use worker_core::prelude::*;

pub const USAGE: &str = "\
usage: demo [--verbose]
       demo --list
       demo --worker NAME [--payload JSON] [--verbose]

With no arguments, runs a tour of every feature. With --worker, runs that
worker once with the JSON payload, prints each message it emits and its
result, and exits non-zero if it failed.";

pub enum Command {
    Tour {
        verbose: bool,
    },
    List,
    One {
        worker: String,
        payload: Option<Value>,
        verbose: bool,
    },
    Help,
}

impl Command {
    pub fn verbose(&self) -> bool {
        matches!(
            self,
            Command::Tour { verbose: true } | Command::One { verbose: true, .. }
        )
    }
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut verbose = false;
    let mut list = false;
    let mut worker = None;
    let mut payload = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-v" | "--verbose" => verbose = true,
            "--list" => list = true,
            "--worker" => worker = Some(args.next().ok_or("--worker needs a worker name")?),
            "--payload" => {
                let text = args.next().ok_or("--payload needs a JSON value")?;
                let value = serde_json::from_str(&text)
                    .map_err(|e| format!("--payload is not valid JSON ({e}): {text}"))?;
                payload = Some(value);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match (list, worker) {
        (true, None) if payload.is_none() => Ok(Command::List),
        (true, _) => Err("--list takes no other arguments".to_owned()),
        (false, Some(worker)) => Ok(Command::One {
            worker,
            payload,
            verbose,
        }),
        (false, None) if payload.is_some() => Err("--payload goes with --worker NAME".to_owned()),
        (false, None) => Ok(Command::Tour { verbose }),
    }
}

pub async fn list(manager: &WorkerManager) -> Result<()> {
    use worker_core::format_duration as show;
    for name in manager.definitions().await? {
        let Some(options) = manager.options(&name) else {
            continue;
        };
        let mut policy = Vec::new();
        if let Some(timeout) = options.get_timeout() {
            policy.push(format!("timeout {}", show(timeout)));
        }
        if options.get_retries() > 0 {
            policy.push(format!("retries {}", options.get_retries()));
        }
        if let Some(limit) = options.get_concurrency() {
            policy.push(format!("concurrency {limit}"));
        }
        if let Some(limit) = options.get_global_concurrency() {
            policy.push(format!("global_concurrency {limit}"));
        }
        if let Some(rate) = options.get_rate() {
            policy.push(format!("rate {rate}"));
        }
        if let Some(field) = options.get_limit_by() {
            policy.push(format!("limit_by {field}"));
        }
        if let Some(limit) = options.get_key_concurrency() {
            policy.push(format!("key_concurrency {limit}"));
        }
        if let Some(rate) = options.get_key_rate() {
            policy.push(format!("key_rate {rate}"));
        }
        if let Some(every) = options.get_every() {
            policy.push(format!("every {}", show(every)));
        }
        if let Some(cron) = options.get_cron() {
            policy.push(format!(
                "cron {cron:?} {}",
                options.get_tz().unwrap_or("UTC")
            ));
        }
        match policy.is_empty() {
            true => println!("{name}"),
            false => println!("{name}  ({})", policy.join(", ")),
        }
    }
    Ok(())
}

pub async fn run_one(worker: &str, payload: Option<Value>) -> Result<()> {
    let started = Instant::now();
    let mut handle = WORKER::call(worker, None, payload).await?;
    while let Some(message) = handle.recv().await {
        println!("{message}");
    }
    handle.await_result().await?;
    eprintln!("{worker}: ok in {}", crate::took(started));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn one_worker_with_a_payload() {
        let Ok(Command::One {
            worker,
            payload,
            verbose,
        }) = parse_args(&["--worker", "send-email", "--payload", r#"{"to":"a@b.c"}"#])
        else {
            panic!("not parsed as one worker");
        };
        assert_eq!(worker, "send-email");
        assert_eq!(payload, Some(json!({"to": "a@b.c"})));
        assert!(!verbose);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let err = parse_args(&["--worker", "x", "--payload", "{to:"])
            .err()
            .unwrap();
        assert!(err.starts_with("--payload is not valid JSON"), "{err}");
        assert_eq!(
            parse_args(&["--frobnicate"]).err().unwrap(),
            "unknown argument `--frobnicate`"
        );
        assert_eq!(
            parse_args(&["--payload", "1"]).err().unwrap(),
            "--payload goes with --worker NAME"
        );
        assert_eq!(
            parse_args(&["--worker"]).err().unwrap(),
            "--worker needs a worker name"
        );
        assert!(matches!(
            parse_args(&[]),
            Ok(Command::Tour { verbose: false })
        ));
    }
}
