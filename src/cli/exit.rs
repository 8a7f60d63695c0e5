//! The exit codes the binaries document (`--help`, the man pages, docs/client.md), in one
//! table: the binaries only say how a command ended.

use std::io;
use std::process::ExitCode;

use crate::Error;

/// The probe(s) did not come back intact: no reply, a wrong reply, refused.
pub const PROBE_FAILED: u8 = 1;
/// A usage error or a local problem (cannot resolve, cannot bind, stdin).
pub const LOCAL_PROBLEM: u8 = 2;
/// A run cut short by a signal (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED: u8 = 130;

/// How a client command ended, beyond errors: it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitVerdict {
    /// Everything came back intact: exit 0.
    Passed,
    /// The probes failed (no reply, corrupt, nothing found): exit 1.
    Failed,
    /// A signal stopped a run whose result only means something whole
    /// (`--find-rate`): exit 130.
    Interrupted,
}

impl From<bool> for ExitVerdict {
    fn from(passed: bool) -> ExitVerdict {
        if passed {
            ExitVerdict::Passed
        } else {
            ExitVerdict::Failed
        }
    }
}

impl From<ExitVerdict> for ExitCode {
    fn from(verdict: ExitVerdict) -> ExitCode {
        match verdict {
            ExitVerdict::Passed => ExitCode::SUCCESS,
            ExitVerdict::Failed => ExitCode::from(PROBE_FAILED),
            ExitVerdict::Interrupted => ExitCode::from(INTERRUPTED),
        }
    }
}

/// The client's exit code for an error: 1 when it says something about the
/// peer or the path, 2 for a local problem. `None` for a closed stdout
/// (`| head`), which is the reader's choice, not a failure: exit 0, quietly.
pub fn client_error_code(e: &Error) -> Option<ExitCode> {
    match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => None,
        e if e.is_probe_failure() => Some(ExitCode::from(PROBE_FAILED)),
        _ => Some(ExitCode::from(LOCAL_PROBLEM)),
    }
}
