//! A progress line on stderr for tools that call the classifier once per item: redrawn
//! in place on a terminal, and a plain line every tenth of the way otherwise, so a CI
//! log or a captured stderr stays readable.

use std::io::IsTerminal;

/// How far a run is, `verb done/total`.
pub struct Progress {
    verb: &'static str,
    total: usize,
    done: usize,
    terminal: bool,
    next_line: usize,
}

impl Progress {
    /// A run of `total` items, shown as `verb done/total`.
    pub fn new(verb: &'static str, total: usize) -> Self {
        Progress {
            verb,
            total,
            done: 0,
            terminal: std::io::stderr().is_terminal(),
            next_line: every(total),
        }
    }

    /// One more item is done.
    pub fn step(&mut self) {
        self.done += 1;
        let (verb, done, total) = (self.verb, self.done, self.total);
        if self.terminal {
            eprint!("\r{verb} {done}/{total}");
            if done >= total {
                eprintln!();
            }
        } else if done >= self.next_line || done >= total {
            eprintln!("{verb} {done}/{total}");
            self.next_line = done + every(total);
        }
    }
}

/// A line per tenth of the run, at least one per item.
fn every(total: usize) -> usize {
    (total / 10).max(1)
}
