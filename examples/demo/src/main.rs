//! The worker-core demo: a tour of every feature, or one worker from the
//! command line.
//!
//! ```text
//! cargo run -p demo                                   # the tour
//! cargo run -p demo -- --list                         # the discovered workers
//! cargo run -p demo -- --worker send-email --payload '{"to":"a@b.c"}'
//! ```

mod cli;
mod display;
mod logger;
mod sandbox;
mod tour;

use std::process::ExitCode;

use worker_core::prelude::*;
use worker_core::{auto_discover, format_duration};

#[auto_discover]
#[tokio::main]
async fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if let cli::Command::Help = command {
        println!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    logger::init(command.verbose());

    let sandbox = match sandbox::Sandbox::create() {
        Ok(sandbox) => sandbox,
        Err(err) => {
            eprintln!("error: can't prepare the demo's temp directory: {err}");
            return ExitCode::FAILURE;
        }
    };
    let started = Workers::new()
        .config(sandbox.config())
        .auto_load() // the install() fns of the files #[auto_discover] found
        .start()
        .await;
    let manager = match started {
        Ok(manager) => manager,
        Err(err) => {
            eprintln!("error: the workers did not start: {err}");
            return ExitCode::FAILURE;
        }
    };

    let result = match command {
        cli::Command::Tour { .. } => tour::run(&manager, &sandbox).await,
        cli::Command::List => cli::list(&manager).await,
        cli::Command::One {
            worker, payload, ..
        } => cli::run_one(&worker, payload).await,
        cli::Command::Help => Ok(()),
    };
    let shutdown = manager.shutdown().await;
    match result.and(shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `150ms`, `1s200ms`: how long something took, to the millisecond.
fn took(since: std::time::Instant) -> String {
    let ms = since.elapsed().as_millis().max(1) as u64;
    format_duration(std::time::Duration::from_millis(ms))
}
