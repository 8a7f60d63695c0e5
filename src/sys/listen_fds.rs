//! The environment half of socket activation (`sd_listen_fds(3)`): which
//! descriptors a service manager says it passed. Here, below the server's
//! `service::activation`, because [`take_listen_fds`](crate::sys::take_listen_fds)
//! needs it and `sys` imports nothing from the layers above it.

use std::io;
use std::os::fd::RawFd;

/// The first inherited descriptor (`SD_LISTEN_FDS_START`): after stdin,
/// stdout and stderr.
pub const FIRST_FD: RawFd = 3;

/// The variables of the protocol, unset once read while the process has one thread.
pub const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// How many sockets the environment hands this process (`our_pid`): 0 when
/// `LISTEN_PID` is absent or names another process (the variables were meant
/// for a parent and leaked), the count in `LISTEN_FDS` otherwise. A value that
/// is not a number is an error, as `sd_listen_fds` makes it.
pub fn listen_fds_count(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    our_pid: u32,
) -> io::Result<usize> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let Some(pid) = listen_pid else {
        return Ok(0);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| invalid(format!("LISTEN_PID={pid:?} is not a process id")))?;
    if pid != our_pid {
        return Ok(0);
    }
    let Some(fds) = listen_fds else {
        return Err(invalid(format!("LISTEN_PID={pid} but no LISTEN_FDS")));
    };
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| invalid(format!("LISTEN_FDS={fds:?} is not a count")))?;
    // Descriptors are ints: a count past that range is a broken manager.
    if count > (RawFd::MAX - FIRST_FD) as usize {
        return Err(invalid(format!("LISTEN_FDS={count} is out of range")));
    }
    Ok(count)
}

/// [`listen_fds_count`] of this process's environment.
pub(crate) fn listen_fds_from_env() -> io::Result<usize> {
    let var = |name| std::env::var(name).ok();
    listen_fds_count(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        std::process::id(),
    )
}
