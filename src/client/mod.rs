//! The client: a connected socket to one echo server, and one function per mode.
//!
//! The socket is connected so the kernel delivers only the server's replies and
//! reports an ICMP port-unreachable as `ECONNREFUSED` on the next receive: a closed
//! port is named at once instead of waiting out the timeout.

pub mod doctor;
pub mod find_rate;
pub mod fleet;
pub mod measure;
pub mod metrics;
mod oneshot;
pub mod plot;
pub mod pmtu;
pub mod probe;
pub mod probes;
pub mod report;
pub mod session;
pub mod stamp;
pub mod stats;

pub use oneshot::{OneShotReply, one_shot, stop_server};

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::{self, BufferSize, Family, Limits, SocketOptions};

/// Where to send and how, free of any command-line types.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Address family the name may resolve to.
    pub family: Family,
    /// Local address (and port) to send from; any when `None`.
    pub bind: Option<SocketAddr>,
    /// `SO_RCVBUF` request in bytes.
    pub recv_buf: Option<usize>,
    /// `SO_SNDBUF` request in bytes.
    pub send_buf: Option<usize>,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Network interface or VRF device to send through (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
}

/// A socket connected to the server.
#[derive(Debug)]
pub struct Connection {
    /// The connected socket, with `timeout` as its read timeout.
    pub socket: UdpSocket,
    /// The server's address.
    pub peer: SocketAddr,
    /// How long a receive waits.
    pub timeout: Duration,
    /// Receive and send buffers, requested and granted.
    pub buffers: [BufferSize; 2],
}

/// The server's address: `target`'s name resolved in its family (a
/// `--bind` address fixes the family).
pub fn resolve(target: &Target) -> Result<SocketAddr> {
    let family = match (target.family, target.bind) {
        (Family::Any, Some(SocketAddr::V4(_))) => Family::V4,
        (Family::Any, Some(SocketAddr::V6(_))) => Family::V6,
        (family, _) => family,
    };
    net::resolve(&target.host, target.port, family)
}

/// `target` resolved once, and a copy of it that names that address, so
/// every socket of a run and every label of its report (`--metrics`, the
/// start line, the JSON) agree on one address even when a name resolves
/// differently each time. A scoped IPv6 address keeps the name given (its
/// scope is not in the address text).
pub fn pinned(target: &Target) -> Result<(Target, SocketAddr)> {
    let peer = resolve(target)?;
    let scoped = matches!(peer, SocketAddr::V6(v6) if v6.scope_id() != 0);
    let mut pinned = target.clone();
    if !scoped {
        pinned.host = peer.ip().to_string();
    }
    Ok((pinned, peer))
}

/// How a report names the server: the address probed, `127.0.0.1:9999`,
/// and the name given beside it when it was a name that says more than the
/// address: `192.0.2.7:9999 (echo.example.net)`. `localhost`, the default,
/// adds nothing to its loopback address.
pub fn target_label(host: &str, peer: SocketAddr) -> String {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if literal.parse::<std::net::IpAddr>().is_ok() || literal.eq_ignore_ascii_case("localhost") {
        peer.to_string()
    } else {
        format!("{peer} ({host})")
    }
}

/// Resolves the server, binds the local socket and connects it.
pub fn connect(target: &Target) -> Result<Connection> {
    let peer = resolve(target)?;
    let local = target.bind.unwrap_or_else(|| net::unspecified_for(&peer));
    let options = SocketOptions {
        recv_buf: target.recv_buf,
        send_buf: target.send_buf,
        reuse_address: false,
        reuse_port: false,
        interface: target.interface.clone(),
    };
    let limits = Limits::read();
    let bound = net::bind(local, &options, &limits)?;
    bound.recv_buf.log(log::Level::Debug);
    bound.send_buf.log(log::Level::Debug);
    let socket = bound.socket;
    socket
        .connect(peer)
        .map_err(|source| Error::Connect { addr: peer, source })?;
    socket
        .set_read_timeout(Some(target.timeout))
        .map_err(|source| Error::Socket {
            what: "set a receive timeout",
            addr: peer,
            source,
        })?;
    Ok(Connection {
        socket,
        peer,
        timeout: target.timeout,
        buffers: [bound.recv_buf, bound.send_buf],
    })
}

impl Connection {
    /// Sends one datagram; a payload too large for UDP is refused before the kernel is asked.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        let max = net::max_payload(&self.peer);
        if payload.len() > max {
            return Err(Error::PayloadTooLarge {
                len: payload.len(),
                max,
                at_least: false,
            });
        }
        loop {
            match self.socket.send(payload) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Error::Refused { addr: self.peer });
                }
                Err(source) => {
                    return Err(Error::Send {
                        addr: self.peer,
                        source,
                    });
                }
            }
        }
    }

    /// Receives one datagram into `buf`, waiting at most `wait` (the read timeout
    /// is set for this call only when it differs from the connection's).
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> Result<usize> {
        if wait != self.timeout {
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|source| Error::Recv {
                    addr: self.peer,
                    source,
                })?;
        }
        let result = loop {
            match self.socket.recv(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        if wait != self.timeout {
            let _ = self.socket.set_read_timeout(Some(self.timeout));
        }
        result.map_err(|source| match source.kind() {
            io::ErrorKind::ConnectionRefused => Error::Refused { addr: self.peer },
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                addr: self.peer,
                waited: wait,
            },
            _ => Error::Recv {
                addr: self.peer,
                source,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_shown_beside_the_address_probed() {
        let v4: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let v6: SocketAddr = "[::1]:9999".parse().unwrap();
        assert_eq!(target_label("127.0.0.1", v4), "127.0.0.1:9999");
        assert_eq!(target_label("localhost", v4), "127.0.0.1:9999");
        assert_eq!(
            target_label("echo.example.net", v4),
            "127.0.0.1:9999 (echo.example.net)"
        );
        assert_eq!(target_label("::1", v6), "[::1]:9999");
        assert_eq!(target_label("[::1]", v6), "[::1]:9999");
    }

    #[test]
    fn a_pinned_target_names_the_address_it_resolved_to() {
        let target = Target {
            host: "localhost".into(),
            port: 9999,
            family: Family::V4,
            bind: None,
            recv_buf: None,
            send_buf: None,
            timeout: Duration::from_secs(1),
            interface: None,
        };
        let (pinned, peer) = pinned(&target).unwrap();
        assert_eq!(peer, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(pinned.host, "127.0.0.1");
    }
}
