//! Argument parsing shared by the commands: clap errors become one line and exit status 2.

use clap::Parser;
use std::process::ExitCode;

pub use crate::error::EXIT_BAD_INPUT;

/// Print an error on one line and return its exit status ([`crate::error::exit_status`]).
pub fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
    ExitCode::from(crate::error::exit_status(e))
}

/// Parse `T` from the process arguments. Help and version print and exit 0; any other error
/// prints one line (what was wrong and what is accepted) and exits 2 — never a panic. A command
/// called without its subcommand prints its help on stderr and exits 2 too.
pub fn parse_or_exit<T: Parser>() -> T {
    match T::try_parse() {
        Ok(v) => v,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    use std::io::Write;
                    let text = e.render().to_string();
                    let mut out = std::io::stdout().lock();
                    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                    std::process::exit(finish_output(ExitCode::SUCCESS, written) as i32);
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    eprint!("{}", e.render());
                    eprintln!("error: give a subcommand (listed above)");
                    std::process::exit(EXIT_BAD_INPUT as i32);
                }
                _ => {
                    eprintln!("{} (see --help)", one_line(&e.render().to_string()));
                    std::process::exit(EXIT_BAD_INPUT as i32);
                }
            }
        }
    }
}

/// The status once standard output is flushed: a write error there (a full disk, a closed
/// device) is status 3 with one line, whatever the command did; a closed pipe (`| head`) is
/// not an error. Returns the status as a number for `std::process::exit` too.
pub fn finish_output(code: ExitCode, flushed: std::io::Result<()>) -> u8 {
    match flushed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            // A command that already reported its failed write said so on its one line.
            if status_of(code) != crate::error::EXIT_IO || code == ExitCode::SUCCESS {
                eprintln!("error: could not write output: {e}");
            }
            crate::error::EXIT_IO
        }
        _ if code == ExitCode::SUCCESS => 0,
        _ => status_of(code),
    }
}

/// The number of an [`ExitCode`] made by this crate (its `Debug` form is the only way to read
/// it back; anything else counts as a failure).
fn status_of(code: ExitCode) -> u8 {
    for s in 1..=255u8 {
        if code == ExitCode::from(s) {
            return s;
        }
    }
    crate::error::EXIT_FAILED
}

/// A clap error's message on one line: its first line, with the list that follows a line
/// ending in ':' (e.g. the missing arguments' names) joined onto it.
pub fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim_end);
    let first = lines.next().unwrap_or("error: bad arguments").to_string();
    if !first.ends_with(':') {
        return first;
    }
    let items: Vec<&str> = lines
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    format!("{first} {}", items.join(", "))
}

/// A command's output written, or the error of the write (status 3); a closed pipe (`| head`)
/// is not an error of the command.
pub fn written(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("could not write output"))
        }
        _ => Ok(()),
    }
}

/// Print a one-line error and return exit status 2.
pub fn exit_bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

pub use crate::parse::{parse_in_range, parse_range, parse_usize_list};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("2..16", "bases"), Ok((2, 16)));
        assert_eq!(parse_range("2..=16", "bases"), Ok((2, 16)));
        assert_eq!(parse_range("3-5", "bases"), Ok((3, 5)));
        assert_eq!(parse_range("4", "bases"), Ok((4, 4)));
        assert!(parse_range("5..2", "bases").is_err());
        assert!(parse_range("x", "bases").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(
            parse_in_range("100", "depth", 1, 10),
            Err("depth 100 is out of range: accepted 1..=10".into())
        );
        assert!(parse_in_range("-5", "depth", 1, 10).is_err());
        assert!(parse_in_range("abc", "depth", 1, 10).is_err());
        assert_eq!(parse_usize_list("1, 2,3", "offsets"), Ok(vec![1, 2, 3]));
        assert!(parse_usize_list("1,-2", "offsets").is_err());
        assert!(parse_usize_list("", "offsets").is_err());
    }
}
