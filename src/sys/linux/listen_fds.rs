//! Socket activation's one `unsafe` step: taking ownership of the
//! descriptors a service manager passed, and the process-wide facts that
//! make it sound (the thread count, the descriptor limit).

use std::io;

/// Socket activation: takes ownership of the sockets the service manager
/// passed from descriptor 3 on (`sd_listen_fds(3)`) and marks each
/// close-on-exec. Empty when the variables are absent or meant for another
/// process. The range is claimed at most once per process: a second call
/// finds nothing. A count beyond the process's descriptor limit is refused
/// before anything is reserved for it.
///
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` are unset only when this
/// thread is provably the process's only one (`only_thread`), the one case
/// in which changing the environment is sound; otherwise they stay, which is
/// harmless: a child has another PID, so it ignores them, and the
/// descriptors are close-on-exec. So this is safe to call at any time.
pub fn take_listen_fds() -> io::Result<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);

    let count = crate::sys::listen_fds::listen_fds_from_env();
    if std::env::var_os("LISTEN_PID").is_some() && only_thread() {
        for name in crate::sys::listen_fds::VARIABLES {
            // SAFETY: `only_thread` just read from the kernel that this
            // thread is the process's only one, and no other can appear
            // meanwhile (only this thread could start one, and it is here):
            // nothing reads or writes the environment concurrently, std's
            // requirement for `remove_var`.
            unsafe { std::env::remove_var(name) };
        }
    }
    let count = count?;
    if count == 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let first = crate::sys::listen_fds::FIRST_FD;
    // Descriptors at or past the limit cannot be open: refuse an absurd
    // count at once instead of reserving memory for it.
    if let Some(limit) = open_files_limit() {
        if count as u64 + first as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "LISTEN_FDS={count} is more descriptors than this process may have open (limit {limit}, RLIMIT_NOFILE)"
                ),
            ));
        }
    }
    let mut fds = Vec::with_capacity(count.min(64));
    for fd in first..first + count as libc::c_int {
        // Open at all? (F_GETFD touches nothing.)
        // SAFETY: fcntl on a descriptor number reads only its flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("LISTEN_FDS={count} but inherited fd {fd} is not open: {e}"),
            ));
        }
        // SAFETY: as above; FD_CLOEXEC keeps the socket out of any child.
        super::cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        // SAFETY: LISTEN_PID names this process, so by the sd_listen_fds
        // protocol the service manager opened descriptors 3..3+LISTEN_FDS for
        // it to own; nothing in this process opened or claimed them (the
        // `TAKEN` flag above lets this run once), and the check above showed
        // the descriptor is open. So this is its one owner, and it closes it
        // exactly once, on drop.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`); `None` when unlimited
/// or unreadable.
pub(super) fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live struct it is given.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Whether the calling thread is the process's only thread, by the kernel's
/// count (`Threads:` in `/proc/self/status`); `false` when it cannot be read.
pub(super) fn only_thread() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| threads_of(&status) == Some(1))
}

/// The `Threads:` count of a `/proc/PID/status` text.
pub(super) fn threads_of(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
}
