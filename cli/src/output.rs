//! Standard output and error that a closed pipe ends quietly.
//!
//! `cairn store status --json | head` closes the pipe after ten lines; std's `println!`
//! then panics (exit 101). Every print of the binary goes through [`out!`] / [`outln!`]
//! (and [`errln!`] for stderr) instead: a write that finds the reader gone ends the process
//! with exit 0, as `head` asked. Rust leaves SIGPIPE ignored, so the error arrives as
//! `BrokenPipe` here rather than as a signal, whichever thread prints.

use std::io::{self, Write};

/// Writes formatted text to stdout; a closed pipe exits 0, any other failure exits 1.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Writes formatted text to stderr. A failure is ignored: there is nowhere left to say it,
/// and the command's outcome should not depend on whether its diagnostics were read.
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Ends the process for a stdout write that failed: quietly with 0 when the reader went
/// away, else with 1 and the reason on stderr.
pub fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    write_stderr(format_args!("error: writing to standard output: {e}\n"));
    std::process::exit(1);
}

/// Standard output as a writer (for streaming a blob or a log), with the same rule for a
/// closed pipe.
pub struct Stdout(io::Stdout);

impl Stdout {
    pub fn new() -> Self {
        Self(io::stdout())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).inspect_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                stdout_failed(e);
            }
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().inspect_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                stdout_failed(e);
            }
        })
    }
}

/// `print!` that a closed pipe ends quietly (exit 0) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that a closed pipe ends quietly (exit 0) instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => {
        $crate::output::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!($($arg)*))
    };
}
