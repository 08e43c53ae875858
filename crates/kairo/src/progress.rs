//! A progress bar on a terminal, shown only once work has taken more than a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    shown: AtomicBool,
    enabled: bool,
}

impl Bar {
    pub fn new(message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_string());
        Bar { bar, started: Instant::now(), shown: AtomicBool::new(false), enabled: std::io::stderr().is_terminal() }
    }

    /// A bar for work whose size is learnt as it goes (a pull walks directories level by
    /// level): bytes so far and the rate, no total.
    pub fn counting(message: &str) -> Self {
        let bar = Bar::new(message);
        bar.bar.set_style(
            ProgressStyle::with_template("{msg} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.bar.set_length(u64::MAX);
        bar
    }

    pub fn finish(&self) {
        if self.shown.load(Ordering::Relaxed) {
            self.bar.finish_and_clear();
        }
    }
}

impl kairo_data::Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn advance(&self, bytes: u64, _files: u64) {
        self.bar.inc(bytes);
        if self.enabled && !self.shown.load(Ordering::Relaxed) && self.started.elapsed() > Duration::from_secs(1) {
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}
