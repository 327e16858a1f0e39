//! A small `log` backend for the demo: worker lines as they are, indented.

use crate::display::print_line;

struct DemoLogger {
    level: log::LevelFilter,
}

impl log::Log for DemoLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "ERROR ",
                log::Level::Warn => "WARN  ",
                _ => "",
            };
            print_line(&format!("   │ {level}{}", record.args()));
        }
    }

    fn flush(&self) {}
}

/// Info and above, or everything with `--verbose`.
pub fn init(verbose: bool) {
    let level = if verbose {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Info
    };
    if log::set_boxed_logger(Box::new(DemoLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}
