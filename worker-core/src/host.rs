//! [`process_name`]: how dashboards and backends name this process.

/// This process as the dashboard's nodes view and a durable backend name
/// it: `host:pid`, the host from the kernel (or `$HOSTNAME`, or
/// `localhost`). A backend may add a tag to tell restarts apart.
///
/// ```
/// let name = worker_core::process_name();
/// assert!(name.ends_with(&format!(":{}", std::process::id())));
/// ```
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}
