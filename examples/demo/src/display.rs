//! Progress as bars on a terminal, as plain lines anywhere else, and a
//! place for log lines that doesn't tear the bars.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// While bars are drawn, log lines go through them.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Prints a line above any live bars.
pub fn print_line(line: &str) {
    let bars = BARS.lock().unwrap_or_else(|p| p.into_inner());
    match bars.as_ref() {
        Some(bars) => {
            let _ = bars.println(line);
        }
        None => eprintln!("{line}"),
    }
}

/// A group of progress displays, one per run.
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    pub fn new() -> Self {
        let bars = std::io::stdout()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = bars.clone();
        Progress { bars }
    }

    pub fn track(&self, label: &str) -> Tracker {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(100));
            bar.set_style(
                ProgressStyle::with_template(
                    "   {prefix:<16} [{bar:30.cyan/blue}] {pos:>3}% {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        Tracker {
            label: label.to_owned(),
            bar,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// One run's progress.
pub struct Tracker {
    label: String,
    bar: Option<ProgressBar>,
}

impl Tracker {
    pub fn update(&self, percent: u64, note: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(percent.min(100));
                bar.set_message(note.to_owned());
            }
            None => println!("   {:<16} {percent:>3}% {note}", self.label),
        }
    }

    pub fn finish(&self, outcome: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(outcome.to_owned()),
            None => println!("   {:<16} {outcome}", self.label),
        }
    }
}
