//! Socket activation: the `sd_listen_fds(3)` protocol, as systemd (a `.socket`
//! unit), `systemd-socket-activate --datagram` or any compatible manager speaks
//! it. The manager binds the address, starts the server with the sockets open
//! from file descriptor 3 on, and says so in `LISTEN_PID` (which must be this
//! process) and `LISTEN_FDS` (how many).
//!
//! The protocol is two environment variables and a fixed descriptor range, so
//! it is written here rather than pulled in: `listenfd` and `sd-notify` would
//! each add a crate for a dozen lines, and neither checks what we must check
//! anyway — that each socket is UDP. Taking ownership of a raw descriptor is
//! the one `unsafe` step; it lives in [`crate::sys`] (`take_listen_fds`), which
//! claims the range at most once per process, refuses a count beyond the
//! descriptor limit, and unsets `LISTEN_PID`, `LISTEN_FDS` and
//! `LISTEN_FDNAMES` only while the process has one thread (the one case in
//! which changing the environment is sound; left set, they are harmless). This module parses the variables (pure) and
//! checks each socket: a datagram socket, IPv4 or IPv6, protocol UDP, bound.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use socket2::{Socket, Type};

pub use crate::sys::listen_fds::{FIRST_FD, VARIABLES, listen_fds_count};

/// One socket the service manager handed over, checked to be UDP.
#[derive(Debug)]
pub struct Inherited {
    /// Its descriptor number, for the log.
    pub fd: RawFd,
    /// The socket, owned by us now (blocking mode as the manager left it).
    pub socket: UdpSocket,
    /// The address the manager bound it to.
    pub local: SocketAddr,
}

impl fmt::Display for Inherited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "socket activation: inherited fd {}, a UDP socket bound to {}",
            self.fd, self.local
        )
    }
}

/// Why the inherited sockets cannot be served.
#[derive(Debug)]
pub enum ActivationError {
    /// `LISTEN_PID`/`LISTEN_FDS` are malformed, or a descriptor is not open.
    Environment(io::Error),
    /// A descriptor is open but not a socket.
    NotASocket {
        /// The descriptor.
        fd: RawFd,
    },
    /// A socket, but not a bound UDP one; `what` says what it is.
    NotUdp {
        /// The descriptor.
        fd: RawFd,
        /// What kind of socket it is instead.
        what: String,
    },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::Environment(e) => write!(f, "socket activation: {e}"),
            ActivationError::NotASocket { fd } => write!(
                f,
                "socket activation: inherited fd {fd} is not a socket; udp-echo-server serves UDP sockets only"
            ),
            ActivationError::NotUdp { fd, what } => write!(
                f,
                "socket activation: inherited fd {fd} is {what}, not a UDP socket; use ListenDatagram= in the .socket unit (systemd-socket-activate: --datagram)"
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

/// The sockets this process was started with, each checked to be a bound UDP
/// socket; empty when it was not socket-activated. Safe at any time; the
/// service layer ([`run`](super::run)) calls it at start, before it spawns a thread, so the `LISTEN_*`
/// variables are unset too (see [`crate::sys::take_listen_fds`]).
pub fn inherited() -> Result<Vec<Inherited>, ActivationError> {
    crate::sys::take_listen_fds()
        .map_err(ActivationError::Environment)?
        .into_iter()
        .map(check)
        .collect()
}

/// Checks that `fd` holds what the server can serve: a datagram socket of an
/// IP family, protocol UDP (not UDP-Lite), bound to an address.
pub fn check(fd: OwnedFd) -> Result<Inherited, ActivationError> {
    let number = fd.as_raw_fd();
    let socket = Socket::from(fd);
    let not_udp = |what: &str| ActivationError::NotUdp {
        fd: number,
        what: what.to_owned(),
    };
    let kind = match socket.r#type() {
        Ok(kind) => kind,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(ActivationError::NotASocket { fd: number });
        }
        Err(e) => return Err(ActivationError::Environment(e)),
    };
    let local = socket.local_addr().map_err(ActivationError::Environment)?;
    let family = if local.is_ipv4() || local.is_ipv6() {
        ""
    } else if local.is_unix() {
        "a Unix-domain "
    } else {
        "a non-IP "
    };
    if kind != Type::DGRAM {
        let kind = if kind == Type::STREAM {
            "stream (TCP)"
        } else if kind == Type::SEQPACKET {
            "seqpacket"
        } else {
            "non-datagram"
        };
        let article = if family.is_empty() { "a " } else { family };
        return Err(not_udp(&format!("{article}{kind} socket")));
    }
    let Some(local) = local.as_socket().filter(|_| family.is_empty()) else {
        return Err(not_udp(&format!("{family}datagram socket")));
    };
    #[cfg(target_os = "linux")]
    if let Ok(protocol) = socket.protocol() {
        if protocol.is_some_and(|p| p != socket2::Protocol::UDP) {
            return Err(not_udp(&format!(
                "a datagram socket of IP protocol {}",
                protocol.map_or(0, i32::from)
            )));
        }
    }
    if local.port() == 0 {
        return Err(not_udp("an unbound UDP socket (port 0)"));
    }
    Ok(Inherited {
        fd: number,
        socket: socket.into(),
        local,
    })
}

/// What to say when `--threads` asked for another number than the sockets
/// inherited (each gets one thread); `None` for the default of 1 or a match.
pub fn threads_note(requested: usize, inherited: usize) -> Option<String> {
    (requested > 1 && requested != inherited).then(|| {
        format!(
            "--threads {requested} ignored: serving the {inherited} inherited socket{}, one thread each (the socket unit decides how many)",
            if inherited == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, SockAddr};

    #[test]
    fn the_variables_are_for_us_only_with_our_pid() {
        assert_eq!(listen_fds_count(None, None, 42).unwrap(), 0);
        assert_eq!(listen_fds_count(None, Some("2"), 42).unwrap(), 0);
        assert_eq!(listen_fds_count(Some("41"), Some("2"), 42).unwrap(), 0);
        assert_eq!(listen_fds_count(Some("42"), Some("2"), 42).unwrap(), 2);
        assert_eq!(listen_fds_count(Some("42"), Some("0"), 42).unwrap(), 0);
    }

    #[test]
    fn malformed_variables_are_errors_that_name_them() {
        for (pid, fds, part) in [
            (Some("x"), Some("1"), "LISTEN_PID"),
            (Some("42"), None, "no LISTEN_FDS"),
            (Some("42"), Some("-1"), "LISTEN_FDS"),
            (Some("42"), Some("99999999999"), "LISTEN_FDS"),
        ] {
            let e = listen_fds_count(pid, fds, 42).unwrap_err();
            assert!(e.to_string().contains(part), "{pid:?} {fds:?}: {e}");
        }
    }

    fn owned(socket: Socket) -> OwnedFd {
        OwnedFd::from(socket)
    }

    #[test]
    fn a_bound_udp_socket_is_accepted_with_its_address() {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket
            .bind(&SockAddr::from(
                "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            ))
            .unwrap();
        let inherited = check(owned(socket)).unwrap();
        assert!(inherited.local.ip().is_loopback() && inherited.local.port() != 0);
        assert_eq!(inherited.socket.local_addr().unwrap(), inherited.local);
        assert!(
            inherited
                .to_string()
                .contains("a UDP socket bound to 127.0.0.1:")
        );
    }

    #[test]
    fn anything_else_is_refused_with_what_it_is() {
        let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        tcp.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        let unix = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        let unbound = Socket::new(Domain::IPV6, Type::DGRAM, None).unwrap();
        for (socket, part) in [
            (tcp, "is a stream (TCP) socket, not a UDP socket"),
            (unix, "is a Unix-domain datagram socket"),
            (unbound, "an unbound UDP socket"),
        ] {
            let e = check(owned(socket)).unwrap_err().to_string();
            assert!(e.contains(part), "{e}");
            assert!(e.contains("ListenDatagram="), "{e}");
        }
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = check(OwnedFd::from(file)).unwrap_err();
        assert!(matches!(e, ActivationError::NotASocket { .. }), "{e}");
    }

    #[test]
    fn a_threads_request_that_differs_is_named() {
        assert_eq!(threads_note(1, 3), None);
        assert_eq!(threads_note(3, 3), None);
        let note = threads_note(4, 2).unwrap();
        assert!(note.starts_with("--threads 4 ignored: serving the 2 inherited sockets"));
    }
}
