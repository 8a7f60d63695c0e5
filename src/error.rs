//! The crate's one error type: every variant names the operation and the address
//! it failed on, so a single `{}` line tells a user what went wrong and what to do.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Anything that stops a server from starting or a client probe from succeeding.
///
/// Variants are typed because the binaries act on them (exit 1 for a failed probe,
/// 2 for a local problem); their `Display` is the one line a user reads.
// Each variant's fields are named for what they hold (`addr`, `source`,
// `what`, …) and its doc and `Display` say the rest: a line per field would
// only repeat its name.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Error {
    /// The host name did not resolve at all.
    Resolve { host: String, source: io::Error },
    /// The host resolved, but not to an address of the requested family.
    NoAddress { host: String, family: &'static str },
    /// The kernel refused to create a socket or set an option on it.
    Socket {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    /// `bind(2)` failed; the message explains the usual causes.
    Bind { addr: SocketAddr, source: io::Error },
    /// `SO_BINDTODEVICE` (`--interface`) failed: no such interface, or no permission.
    Interface { name: String, source: io::Error },
    /// The STAMP key file (`--stamp-key`) cannot be read or holds no usable key.
    StampKey {
        path: std::path::PathBuf,
        problem: String,
    },
    /// The STAMP key directory (`--stamp-key-dir`) cannot be read or holds no key.
    StampKeyDir {
        dir: std::path::PathBuf,
        problem: String,
    },
    /// Another process's socket shares the port through `SO_REUSEPORT`.
    PortShared {
        addr: SocketAddr,
        uid: u32,
        inode: u64,
    },
    /// `connect(2)` on the client's socket failed.
    Connect { addr: SocketAddr, source: io::Error },
    /// The payload cannot fit in one UDP datagram; `len` is its size, or a
    /// lower bound when `at_least` (stdin was not read to its end).
    PayloadTooLarge {
        len: usize,
        max: usize,
        at_least: bool,
    },
    /// The payload read from stdin was empty: an empty datagram would stop the server.
    EmptyPayload,
    /// `--size` does not fit the packet as it is once the target is
    /// resolved (STAMP with `--stamp-tlv dna`, whose length is the
    /// family's); `problem` is the one line that says why.
    Size { problem: String },
    /// The host is an IPv6 link-local address without the interface it belongs to.
    LinkLocalWithoutScope { host: String },
    /// The address to bind is a broadcast or multicast group, not a unicast address.
    NotUnicast { addr: SocketAddr },
    /// Sending the probe failed.
    Send { addr: SocketAddr, source: io::Error },
    /// Nothing listens on the target port: the kernel answered with ICMP port unreachable.
    Refused { addr: SocketAddr },
    /// No reply arrived in time.
    Timeout { addr: SocketAddr, waited: Duration },
    /// Receiving the reply failed for another reason (e.g. host unreachable).
    Recv { addr: SocketAddr, source: io::Error },
    /// A reply came back, but not byte for byte what was sent.
    Mismatch {
        addr: SocketAddr,
        sent: usize,
        received: usize,
        first_difference: usize,
    },
    /// The server echoed the stop datagram instead of stopping.
    StopIgnored { addr: SocketAddr },
    /// An output file (`--probes`, `--plot`) cannot be created or written.
    File {
        what: &'static str,
        path: std::path::PathBuf,
        source: io::Error,
    },
    /// The fleet's targets (`--targets`) cannot be read or are wrong.
    Targets(crate::client::fleet::SourceError),
    /// A local I/O step failed: reading stdin, writing stdout, installing
    /// signal handlers.
    Io {
        what: &'static str,
        source: io::Error,
    },
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the failure says something about the peer or the path (exit 1),
    /// false when it is a local problem: resolving, binding, stdin (exit 2).
    pub fn is_probe_failure(&self) -> bool {
        match self {
            Error::Refused { .. }
            | Error::Timeout { .. }
            | Error::Mismatch { .. }
            | Error::StopIgnored { .. }
            | Error::Recv { .. } => true,
            Error::Send { source, .. } => !is_local_send_error(source),
            _ => false,
        }
    }
}

fn is_local_send_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMSGSIZE) | Some(libc::ENOBUFS) | Some(libc::EACCES) | Some(libc::EPERM)
    )
}

/// `io::Error`'s text with a lower-case first letter and without the trailing
/// `(os error N)`, so it reads inside a sentence.
pub(crate) fn describe(e: &io::Error) -> String {
    let full = e.to_string();
    let text = match full.rfind(" (os error ") {
        Some(at) if full.ends_with(')') => &full[..at],
        _ => &full,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { host, source } => write!(
                f,
                "cannot resolve host '{host}': {}; check the name or give an IP address",
                describe(source)
            ),
            Error::NoAddress { host, family } => write!(
                f,
                "host '{host}' has no {family} address; drop -4/-6 or give an address of that family"
            ),
            Error::Socket { what, addr, source } => {
                write!(f, "cannot {what} for {addr}: {}", describe(source))
            }
            Error::Bind { addr, source } => {
                let why = describe(source);
                match source.kind() {
                    io::ErrorKind::AddrInUse => write!(
                        f,
                        "cannot bind {addr}: another socket already holds UDP port {} on this address ({why}); stop it, or choose another port with --port",
                        addr.port()
                    ),
                    io::ErrorKind::AddrNotAvailable => write!(
                        f,
                        "cannot bind {addr}: {} is not an address of this host ({why}); use a local address, or 0.0.0.0 / :: for all interfaces",
                        addr.ip()
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "cannot bind {addr}: port {} is privileged ({why}); use a port of 1024 or more, run as root, or grant CAP_NET_BIND_SERVICE",
                        addr.port()
                    ),
                    _ => write!(f, "cannot bind {addr}: {why}"),
                }
            }
            Error::Interface { name, source } => match source.raw_os_error() {
                Some(libc::ENODEV) => write!(f, "no interface {name} on this host; see `ip link`"),
                Some(libc::EPERM) | Some(libc::EACCES) => write!(
                    f,
                    "cannot bind to interface {name}: SO_BINDTODEVICE needs CAP_NET_RAW or root ({})",
                    describe(source)
                ),
                _ if source.kind() == io::ErrorKind::Unsupported => write!(
                    f,
                    "cannot bind to interface {name}: --interface needs SO_BINDTODEVICE (Linux)"
                ),
                _ => write!(f, "cannot bind to interface {name}: {}", describe(source)),
            },
            Error::StampKey { path, problem } => write!(
                f,
                "cannot use STAMP key file {}: {problem}; it holds the shared key as hex text (at least 32 digits) or raw bytes (at least 16)",
                path.display()
            ),
            Error::StampKeyDir { dir, problem } => write!(
                f,
                "cannot use STAMP key directory {}: {problem}",
                dir.display()
            ),
            Error::PortShared { addr, uid, inode } => write!(
                f,
                "cannot bind {addr}: another socket (uid {uid}, inode {inode}) already holds UDP port {} on this address and shares it with SO_REUSEPORT; stop it, or choose another port with --port",
                addr.port()
            ),
            Error::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {}", describe(source))
            }
            Error::PayloadTooLarge { len, max, at_least } => write!(
                f,
                "payload of {}{len} bytes does not fit in one UDP datagram (at most {max} bytes); send less",
                if *at_least { "more than " } else { "" }
            ),
            Error::EmptyPayload => write!(
                f,
                "the payload from stdin is empty, and an empty datagram stops the server; to stop it, use --stop"
            ),
            Error::Size { problem } => f.write_str(problem),
            Error::LinkLocalWithoutScope { host } => write!(
                f,
                "'{host}' is a link-local address, valid only with the interface it belongs to; add it as a scope id, e.g. {host}%eth0"
            ),
            Error::NotUnicast { addr } => write!(
                f,
                "cannot bind {addr}: {} is a {} address, not one that can echo; bind an address of this host, or 0.0.0.0 / :: for all interfaces",
                addr.ip(),
                if addr.ip().is_multicast() {
                    "multicast"
                } else {
                    "broadcast"
                }
            ),
            Error::Send { addr, source } => {
                write!(f, "cannot send to {addr}: {}", describe(source))
            }
            Error::Refused { addr } => {
                write!(f, "no UDP server at {addr} (connection refused)")
            }
            Error::Timeout { addr, waited } => write!(
                f,
                "no reply from {addr} within {} s; is the server running? (raise --timeout for slow paths)",
                waited.as_secs_f64()
            ),
            Error::Recv { addr, source } => {
                write!(f, "no reply from {addr}: {}", describe(source))
            }
            Error::Mismatch {
                addr,
                sent,
                received,
                first_difference,
            } => write!(
                f,
                "reply from {addr} differs from what was sent: sent {sent} bytes, received {received} bytes, first difference at byte {first_difference}"
            ),
            Error::StopIgnored { addr } => write!(
                f,
                "the server at {addr} echoed the stop datagram instead of stopping (its --stop-on-empty policy does not accept stops from this address)"
            ),
            Error::File { what, path, source } => {
                write!(f, "cannot {what} {}: {}", path.display(), describe(source))
            }
            Error::Io { what, source } => write!(f, "cannot {what}: {}", describe(source)),
            Error::Targets(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. }
            | Error::Socket { source, .. }
            | Error::Bind { source, .. }
            | Error::Connect { source, .. }
            | Error::Send { source, .. }
            | Error::Recv { source, .. }
            | Error::File { source, .. }
            | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_message_names_the_port_and_the_way_out() {
        let e = Error::Bind {
            addr: "127.0.0.1:9999".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cannot bind 127.0.0.1:9999: another socket already holds UDP port 9999"
            ),
            "{text}"
        );
        assert!(text.contains("address already in use"), "{text}");
        assert!(text.contains("--port"), "{text}");
        assert!(!text.contains('\n'));
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn refusal_and_timeout_are_probe_failures_but_binding_is_not() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(Error::Refused { addr }.is_probe_failure());
        assert!(
            Error::Timeout {
                addr,
                waited: Duration::from_secs(1)
            }
            .is_probe_failure()
        );
        let bind = Error::Bind {
            addr,
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(!bind.is_probe_failure());
        let too_big = Error::Send {
            addr,
            source: io::Error::from_raw_os_error(libc::EMSGSIZE),
        };
        assert!(!too_big.is_probe_failure());
    }
}
