//! Progress of a long command on stderr: a one-line bar that fits 80 columns on a terminal,
//! and one line per finished step otherwise (a log then shows how far a run got).

use std::io::{IsTerminal, Write};

/// Columns a progress line may take on a terminal (one less than 80, so the cursor never
/// wraps).
const COLUMNS: usize = 79;

/// Reports the steps of a run on stderr.
pub struct Progress {
    terminal: bool,
    total: usize,
}

impl Progress {
    /// Progress over `total` steps, drawn as a bar when stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            total,
        }
    }

    /// Step `index` (from 0) starts: on a terminal, the bar shows it.
    pub fn start(&self, index: usize, what: &str) {
        if self.terminal {
            eprint!("\r\x1b[2K{}", bar_line(index, self.total, what));
            let _ = std::io::stderr().flush();
        }
    }

    /// Step `index` (from 0) has finished with `result`: off a terminal, one line says so.
    pub fn finish(&self, index: usize, what: &str, result: &str) {
        if !self.terminal {
            eprintln!("{}", step_line(index, self.total, what, result));
        }
    }

    /// Clears the bar, before the results are printed.
    pub fn done(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// `[###.....] 3/12 what`, cut to [`COLUMNS`].
fn bar_line(index: usize, total: usize, what: &str) -> String {
    let width = 20;
    let filled = width * index / total.max(1);
    let line = format!(
        "[{}{}] {index}/{total} {what}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    line.chars().take(COLUMNS).collect()
}

/// `[ 3/12] what: result`, numbering steps from 1.
fn step_line(index: usize, total: usize, what: &str, result: &str) -> String {
    let digits = total.to_string().len();
    format!("[{:>digits$}/{total}] {what}: {result}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::{bar_line, step_line, COLUMNS};

    #[test]
    fn a_bar_fits_80_columns_and_a_step_line_counts_from_one() {
        let long = "x".repeat(200);
        assert_eq!(bar_line(3, 12, &long).chars().count(), COLUMNS);
        assert!(bar_line(6, 12, "ce").starts_with("[##########..........] 6/12 ce"));
        assert_eq!(step_line(0, 12, "ce", "pass"), "[ 1/12] ce: pass");
        assert_eq!(step_line(11, 12, "ce", "FAIL"), "[12/12] ce: FAIL");
    }
}
