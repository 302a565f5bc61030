//! Progress on standard error for commands that can take more than a second: one line
//! redrawn in place while stderr is a terminal, and nothing at all when it is not (a log,
//! a pipe, CI) or under `--json`, so that machine-read output stays clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Redraws at most this often: a terminal needs no more, and a tight loop pays nothing.
const REDRAW: Duration = Duration::from_millis(100);
const BAR_WIDTH: u64 = 25;

pub struct Progress {
    show: bool,
    label: String,
    total: Option<u64>,
    unit: &'static str,
    start: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `label`, counting towards `total` (or open-ended) in `unit`.
    pub fn new(json: bool, label: &str, total: Option<u64>, unit: &'static str) -> Self {
        Self::with_terminal(!json && std::io::stderr().is_terminal(), label, total, unit)
    }

    fn with_terminal(show: bool, label: &str, total: Option<u64>, unit: &'static str) -> Self {
        Self {
            show,
            label: label.to_string(),
            total,
            unit,
            start: Instant::now(),
            drawn: None,
        }
    }

    /// `done` so far; drawn when enough time has passed since the last draw, or at the end.
    pub fn set(&mut self, done: u64) {
        if !self.show {
            return;
        }
        let finished = self.total.is_some_and(|t| done >= t);
        if !finished && self.drawn.is_some_and(|d| d.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        err!("\r\x1b[2K{}", self.line(done));
    }

    /// A new phase of the same work, under its own label.
    pub fn phase(&mut self, label: &str) {
        self.label = label.to_string();
        self.drawn = None;
        if self.show {
            err!("\r\x1b[2K{} …", self.label);
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.start.elapsed().as_secs();
        match self.total {
            Some(total) if total > 0 => {
                let filled = (done.min(total) * BAR_WIDTH / total).min(BAR_WIDTH);
                format!(
                    "{} [{}{}] {done}/{total} {} {secs}s",
                    self.label,
                    "#".repeat(usize::try_from(filled).unwrap_or(0)),
                    " ".repeat(usize::try_from(BAR_WIDTH - filled).unwrap_or(0)),
                    self.unit
                )
            }
            _ => format!("{} {done} {} {secs}s", self.label, self.unit),
        }
    }
}

impl Drop for Progress {
    /// The line is cleared, so that what the command prints next starts on a clean line.
    fn drop(&mut self) {
        if self.show {
            err!("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_towards_its_total() {
        let p = Progress::with_terminal(false, "simulating", Some(200), "blocks");
        assert!(
            p.line(100)
                .starts_with("simulating [############             ] 100/200 blocks")
        );
        assert!(p.line(900).contains("[#########################] 900/200"));
        let open = Progress::with_terminal(false, "sending", None, "txs");
        assert!(open.line(7).starts_with("sending 7 txs"));
    }
}
