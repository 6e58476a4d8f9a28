//! The exit statuses of every command, and how an error maps to one. One table for all
//! commands (README, "Exit codes"):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command ran and its check failed (`paths`: a claim; `gpu-check`: a comparison), or a run failed for another reason (e.g. the GPU) |
//! | 2 | bad input: arguments, specs, or an input file whose contents are invalid or do not fit (corrupt data, a checkpoint of another network, a newer format) |
//! | 3 | a file could not be read or written (missing, no permission, full disk) |

use std::fmt;

/// The command's check failed, or the run failed for a reason other than its input or files.
pub const EXIT_FAILED: u8 = 1;
/// Bad input: arguments, specs, or invalid file contents.
pub const EXIT_BAD_INPUT: u8 = 2;
/// A file could not be read or written.
pub const EXIT_IO: u8 = 3;

/// Marks an error as caused by the command's input (arguments, specs, input files), so that it
/// maps to [`EXIT_BAD_INPUT`], or to [`EXIT_IO`] when a file could not be read at all. It prints
/// as the error it wraps.
#[derive(Debug)]
pub struct BadInput(pub anyhow::Error);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wrap an error of the input (for `map_err`).
pub fn bad_input(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(BadInput(e))
}

fn has_io_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some())
}

/// The exit status for an error: [`EXIT_IO`] when reading or writing a file failed,
/// [`EXIT_BAD_INPUT`] for input marked [`BadInput`], [`EXIT_FAILED`] otherwise.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<BadInput>() {
        Some(b) if has_io_error(&b.0) => EXIT_IO,
        Some(_) => EXIT_BAD_INPUT,
        None if has_io_error(e) => EXIT_IO,
        None => EXIT_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_status() {
        let io =
            || anyhow::Error::new(std::io::Error::other("disk full")).context("cannot write x");
        assert_eq!(exit_status(&io()), EXIT_IO);
        assert_eq!(exit_status(&bad_input(io())), EXIT_IO);
        assert_eq!(
            exit_status(&bad_input(anyhow::anyhow!("not an IDX file"))),
            EXIT_BAD_INPUT
        );
        assert_eq!(exit_status(&anyhow::anyhow!("CUDA failed")), EXIT_FAILED);
        // Marking does not change the message.
        let e = bad_input(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(format!("{e:#}"), "outer: inner");
    }
}
