//! Progress of long CLI work (`flow replay`, `flow export` of many flows, `audit export`,
//! `plugin install`), on standard error only, so standard output stays the command's result.
//!
//! On a terminal one line is rewritten in place, once the work has taken longer than
//! [`TERMINAL_AFTER`] (quick work prints nothing) and then at most every [`REDRAW`]. Elsewhere
//! (a CI log, a redirect) the work must be long — at least `long_from` units — and a line is
//! written per tenth of it, or per `long_from` units when the total is not known. `--quiet`
//! turns it off.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A terminal shows progress only for work that lasts longer than this.
pub const TERMINAL_AFTER: Duration = Duration::from_millis(500);

/// A terminal's line is redrawn at most this often.
pub const REDRAW: Duration = Duration::from_millis(100);

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Items, named in the plural (`"events"`, `"flows"`).
    Items(&'static str),
    /// Bytes, shown in MiB.
    Bytes,
}

/// A progress reporter for one piece of work.
pub struct Progress {
    label: String,
    unit: Unit,
    total: Option<u64>,
    enabled: bool,
    terminal: bool,
    /// Lines are written each time `done` passes a multiple of this (not on a terminal).
    every: u64,
    next_line_at: u64,
    started: Instant,
    drawn_at: Option<Instant>,
    last_line: Option<String>,
}

impl Progress {
    /// Progress of `label` over `total` units (`None`: not known in advance); off with `quiet`.
    /// Off a terminal it shows only when the work reaches `long_from` units.
    pub fn new(label: &str, unit: Unit, total: Option<u64>, long_from: u64, quiet: bool) -> Self {
        Progress::with_terminal(
            label,
            unit,
            total,
            long_from,
            quiet,
            std::io::stderr().is_terminal(),
        )
    }

    fn with_terminal(
        label: &str,
        unit: Unit,
        total: Option<u64>,
        long_from: u64,
        quiet: bool,
        terminal: bool,
    ) -> Self {
        let long_from = long_from.max(1);
        let every = match total {
            Some(total) => total.div_ceil(10).max(1),
            None => long_from,
        };
        Progress {
            label: label.to_string(),
            unit,
            total,
            enabled: !quiet && (terminal || total.is_none_or(|t| t >= long_from)),
            terminal,
            every,
            next_line_at: if total.is_some() { every } else { long_from },
            started: Instant::now(),
            drawn_at: None,
            last_line: None,
        }
    }

    /// Reports `done` units; `note` (e.g. `", 3 alerts"`) is only built when a line is shown.
    pub fn show(&mut self, done: u64, note: impl FnOnce() -> String) {
        if !self.due(done, Instant::now()) {
            return;
        }
        let line = self.line(done, &note());
        self.write(&line);
    }

    /// The work is over: the final figures on a terminal that showed progress (then the line is
    /// ended), or off a terminal when any line was written.
    pub fn finish(&mut self, done: u64, note: impl FnOnce() -> String) {
        if !self.enabled || (self.drawn_at.is_none() && self.last_line.is_none()) {
            return;
        }
        let line = self.line(done, &note());
        if self.last_line.as_deref() != Some(line.as_str()) {
            self.write(&line);
        }
        if self.terminal {
            eprintln!();
        }
    }

    /// Whether `done` units at `now` call for a line.
    fn due(&mut self, done: u64, now: Instant) -> bool {
        if !self.enabled {
            return false;
        }
        if self.terminal {
            let quiet_until = match self.drawn_at {
                None => self.started + TERMINAL_AFTER,
                Some(at) => at + REDRAW,
            };
            if now < quiet_until {
                return false;
            }
            self.drawn_at = Some(now);
            return true;
        }
        if done < self.next_line_at {
            return false;
        }
        self.next_line_at = (done / self.every + 1) * self.every;
        true
    }

    fn line(&self, done: u64, note: &str) -> String {
        let amount = |n: u64| match self.unit {
            Unit::Items(_) => n.to_string(),
            Unit::Bytes => format!("{:.1}", n as f64 / (1 << 20) as f64),
        };
        let unit = match self.unit {
            Unit::Items(name) => name,
            Unit::Bytes => "MiB",
        };
        match self.total {
            Some(total) => format!(
                "{}: {}/{} {unit} ({}%){note}",
                self.label,
                amount(done),
                amount(total),
                done.min(total) * 100 / total.max(1)
            ),
            None => format!("{}: {} {unit}{note}", self.label, amount(done)),
        }
    }

    fn write(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            // `\x1b[K` clears what a longer earlier line left behind.
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}");
        }
        self.last_line = Some(line.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_at(progress: &mut Progress, points: &[u64]) -> Vec<u64> {
        let now = Instant::now();
        points
            .iter()
            .copied()
            .filter(|done| progress.due(*done, now))
            .collect()
    }

    #[test]
    fn off_a_terminal_long_work_gets_a_line_per_tenth_and_short_work_none() {
        let mut long =
            Progress::with_terminal("x", Unit::Items("events"), Some(100), 50, false, false);
        let points: Vec<u64> = (1..=100).collect();
        assert_eq!(
            lines_at(&mut long, &points),
            vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
        );
        let mut short =
            Progress::with_terminal("x", Unit::Items("events"), Some(20), 50, false, false);
        assert!(lines_at(&mut short, &points).is_empty());
        let mut quiet =
            Progress::with_terminal("x", Unit::Items("events"), Some(100), 50, true, true);
        assert!(lines_at(&mut quiet, &points).is_empty());
    }

    #[test]
    fn without_a_total_a_line_comes_every_long_from_units() {
        let mut open = Progress::with_terminal("x", Unit::Items("events"), None, 30, false, false);
        assert_eq!(
            lines_at(&mut open, &[10, 29, 30, 45, 61, 200]),
            vec![30, 61, 200]
        );
    }

    #[test]
    fn a_terminal_waits_before_the_first_line_then_throttles() {
        let mut p = Progress::with_terminal("x", Unit::Bytes, Some(10), 1000, false, true);
        let start = p.started;
        assert!(!p.due(1, start), "quick work shows nothing");
        assert!(p.due(2, start + TERMINAL_AFTER));
        assert!(!p.due(3, start + TERMINAL_AFTER + REDRAW / 2));
        assert!(p.due(4, start + TERMINAL_AFTER + REDRAW));
    }

    #[test]
    fn lines_name_the_work_in_its_unit() {
        let p = Progress::with_terminal(
            "replaying",
            Unit::Items("events"),
            Some(200),
            1,
            false,
            false,
        );
        assert_eq!(
            p.line(50, ", 2 alerts"),
            "replaying: 50/200 events (25%), 2 alerts"
        );
        let p = Progress::with_terminal(
            "uploading a.wasm",
            Unit::Bytes,
            Some(4 << 20),
            1,
            false,
            false,
        );
        assert_eq!(p.line(1 << 20, ""), "uploading a.wasm: 1.0/4.0 MiB (25%)");
        let p = Progress::with_terminal("exporting", Unit::Items("events"), None, 1, false, false);
        assert_eq!(p.line(7, ""), "exporting: 7 events");
    }
}
