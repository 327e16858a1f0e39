fn main() {
    // Rebuild when a worker file is added or removed: #[auto_discover] in
    // lib.rs lists src/workers/ at compile time and cargo can't know that.
    worker_core::build::watch_workers();
}
