//! The durable-mode bench: worker-postgres against apalis-postgres,
//! graphile_worker and awa on one PostgreSQL server. Built only with the
//! `durable` feature, so that everyday builds never compile the other
//! libraries:
//!
//! ```text
//! cargo run --release -p bench --features durable --bin durable -- --postgres URL
//! ```
//!
//! The code lives in `src/durable/`, one module per library.

#[path = "../durable/mod.rs"]
mod durable;

fn main() -> std::process::ExitCode {
    durable::main()
}
