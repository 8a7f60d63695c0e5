//! `poll(2)` over a handful of descriptors: the metrics endpoint's one thread
//! waits on its listener and every connection it holds at once, so no
//! connection can make it wait on another. POSIX, so both builds (Linux and
//! `--cfg udp_echo_portable`) use it.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// One descriptor to wait on, and after [`poll`] what it is ready for.
/// `repr(transparent)` over `libc::pollfd`, so a slice of them is the array
/// `poll(2)` takes.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    /// Waits for `fd` to be readable, or writable when `write`. The
    /// descriptor must stay open until the [`poll`] call that takes it returns.
    pub fn new(fd: &impl AsRawFd, write: bool) -> PollFd {
        PollFd(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        })
    }

    /// Whether the last [`poll`] found anything to do: data, room to write,
    /// a hang-up or an error (the next read or write says which).
    pub fn ready(&self) -> bool {
        self.0.revents != 0
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (rounded up to a
/// millisecond); returns how many are ready, 0 on timeout or a signal.
pub fn poll(fds: &mut [PollFd], timeout: Duration) -> io::Result<usize> {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    for fd in fds.iter_mut() {
        fd.0.revents = 0;
    }
    // SAFETY: `PollFd` is repr(transparent) over `libc::pollfd`, so the slice
    // is `count` valid, writable pollfd structs that live for the call; the
    // kernel writes only their `revents`.
    let rc = unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), count, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(err)
        };
    }
    Ok(rc as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_socket_is_ready_once_it_has_data_and_not_before() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut fds = [PollFd::new(&a, false)];
        assert_eq!(poll(&mut fds, Duration::from_millis(1)).unwrap(), 0);
        assert!(!fds[0].ready());
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert_eq!(poll(&mut fds, Duration::from_secs(2)).unwrap(), 1);
        assert!(fds[0].ready());
        let mut fds = [PollFd::new(&b, true)];
        assert_eq!(poll(&mut fds, Duration::ZERO).unwrap(), 1, "room to write");
    }
}
