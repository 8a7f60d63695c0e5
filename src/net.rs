//! Socket building: resolve a host, create a `socket2` UDP socket, size its buffers,
//! bind it, and report what the kernel really granted.
//!
//! Everything that touches socket options lives here, so the echo loop and the
//! client receive a ready `std::net::UdpSocket`.

pub mod cidr;
pub mod dscp;
pub mod limits;
pub mod local_addrs;
pub mod snmp;
pub mod udp_table;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::{Error, Result};
pub use limits::Limits;

/// The largest UDP payload over IPv4 (65535 − 20 − 8); also what the probes cap at.
pub const MAX_UDP_PAYLOAD_V4: usize = 65507;
/// The largest UDP payload over IPv6 without jumbograms (65535 − 8).
pub const MAX_UDP_PAYLOAD_V6: usize = 65527;
/// A receive buffer this large never truncates a datagram, whatever the family
/// (defined in `sys`, whose batches are built of such buffers).
pub use crate::sys::RECV_BUFFER_LEN;

/// The most datagrams one UDP GRO receive buffer can hold, so what one drop
/// the kernel counts on a GRO socket can be: its GRO coalesces up to 64
/// (`UDP_GRO_CNT_MAX`), but a sender's GSO send arrives whole over loopback
/// or veth, and kernels from 6.11 take sends of 128 (`UDP_MAX_SEGMENTS`).
pub const GRO_SEGMENTS_MAX: u64 = 128;

/// The largest payload one datagram to `addr` can carry.
pub fn max_payload(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => MAX_UDP_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_UDP_PAYLOAD_V6,
    }
}

/// Which address family a host name may resolve to (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Either; IPv4 is preferred when a name has both.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    /// The family `-4` / `-6` flags ask for (`-4` wins if both are given).
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    fn accepts(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Resolves `host` (a name or an address literal) and `port` to one socket address.
///
/// Names prefer IPv4: `localhost` is `127.0.0.1`
/// unless `-6` is given.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let candidates: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        // getaddrinfo reads a scope id (`fe80::1%eth0`) that IpAddr does not.
        Err(_) => (literal, port)
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect(),
    };
    let addr = choose(&candidates, family)
        .or_else(|| loopback_name(host, port, family))
        .ok_or_else(|| Error::NoAddress {
            host: host.to_owned(),
            family: family.name(),
        })?;
    if needs_scope(&addr) {
        return Err(Error::LinkLocalWithoutScope {
            host: literal.to_owned(),
        });
    }
    Ok(addr)
}

/// An IPv6 link-local address (fe80::/10) without a scope id: the kernel cannot
/// tell which interface it is on and answers a bare EINVAL.
fn needs_scope(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(v6) => (v6.ip().segments()[0] & 0xffc0) == 0xfe80 && v6.scope_id() == 0,
        SocketAddr::V4(_) => false,
    }
}

/// A broadcast or multicast address: one the kernel may let a socket bind, but
/// that no echo can be answered from (replies need a unicast source).
fn is_not_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// `localhost` is the loopback of either family (RFC 6761 §6.3), even where
/// `/etc/hosts` lists only `127.0.0.1`: `-6` with the default host means `::1`.
fn loopback_name(host: &str, port: u16, family: Family) -> Option<SocketAddr> {
    if !host.eq_ignore_ascii_case("localhost") {
        return None;
    }
    match family {
        Family::V6 => Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)),
        _ => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
    }
}

/// Picks the address to use among a name's addresses: the first IPv4 one when
/// the family is free, else the first of the requested family.
pub fn choose(candidates: &[SocketAddr], family: Family) -> Option<SocketAddr> {
    let first = |family: Family| candidates.iter().find(|a| family.accepts(a)).copied();
    match family {
        Family::Any => first(Family::V4).or_else(|| first(Family::Any)),
        _ => first(family),
    }
}

/// Parses a `--bind` value: `IP`, `IP:PORT` or `[IPv6]:PORT` (port 0 when absent).
pub fn parse_bind_addr(text: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| format!("invalid local address '{text}': expected IP, IP:PORT or [IPv6]:PORT"))
}

/// The unspecified address of `target`'s family, port 0: where a client binds by default.
pub fn unspecified_for(target: &SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// `SO_BINDTODEVICE`: ties `socket` to the interface (or VRF device) `name`.
/// Linux answers `ENODEV` for an unknown name and `EPERM` without CAP_NET_RAW
/// when the socket is already bound to a device; both become
/// [`Error::Interface`], whose message says which.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn bind_device(socket: &Socket, name: &str) -> Result<()> {
    socket
        .bind_device(Some(name.as_bytes()))
        .map_err(|source| Error::Interface {
            name: name.to_owned(),
            source,
        })
}

/// `SO_BINDTODEVICE` is Linux's: elsewhere `--interface` is refused.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn bind_device(_socket: &Socket, name: &str) -> Result<()> {
    Err(Error::Interface {
        name: name.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::Unsupported),
    })
}

/// What to ask of a new socket.
#[derive(Debug, Clone, Default)]
pub struct SocketOptions {
    /// `SO_RCVBUF` request in bytes; `None` keeps the kernel default.
    pub recv_buf: Option<usize>,
    /// `SO_SNDBUF` request in bytes; `None` keeps the kernel default.
    pub send_buf: Option<usize>,
    /// Set `SO_REUSEADDR` once bound (see [`bind`]); off with `--exclusive`.
    pub reuse_address: bool,
    /// Set `SO_REUSEPORT` before binding, so several sockets (one per server
    /// thread) share the port and the kernel spreads flows over them.
    pub reuse_port: bool,
    /// Bind to this network interface (or VRF device) with `SO_BINDTODEVICE`
    /// before binding the address: only datagrams that arrive on it are
    /// received, and sends leave through it.
    pub interface: Option<String>,
}

/// Which of the two buffers a [`BufferSize`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    /// `SO_RCVBUF`, capped by `net.core.rmem_max`.
    Recv,
    /// `SO_SNDBUF`, capped by `net.core.wmem_max`.
    Send,
}

impl BufferKind {
    fn name(self) -> &'static str {
        match self {
            BufferKind::Recv => "recv",
            BufferKind::Send => "send",
        }
    }

    fn sysctl(self) -> &'static str {
        match self {
            BufferKind::Recv => "net.core.rmem_max",
            BufferKind::Send => "net.core.wmem_max",
        }
    }
}

/// A buffer size as requested and as granted: the kernel is trusted, not the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSize {
    /// Which buffer.
    pub kind: BufferKind,
    /// What was asked for, in bytes.
    pub requested: Option<usize>,
    /// What `getsockopt` reports, in bytes (Linux doubles the request for its bookkeeping).
    pub effective: usize,
    /// The sysctl cap on requests, in bytes, when known.
    pub max: Option<u64>,
}

impl BufferSize {
    /// True when the kernel capped the request at its limit. Linux silently caps an
    /// unprivileged request at `rmem_max`/`wmem_max` and then doubles it, so the
    /// reliable sign is a request above the limit.
    pub fn clamped(&self) -> bool {
        let Some(requested) = self.requested else {
            return false;
        };
        match self.max {
            Some(max) => requested as u64 > max,
            None => self.effective < requested,
        }
    }

    /// Logs the granted size at `level`, and the clamp warning when there is one.
    pub fn log(&self, level: log::Level) {
        log::log!(level, "{self}");
        if let Some(warning) = self.clamp_warning() {
            log::warn!("{warning}");
        }
    }

    /// The warning to log when [`clamped`](Self::clamped), with the command that fixes it.
    pub fn clamp_warning(&self) -> Option<String> {
        if !self.clamped() {
            return None;
        }
        let requested = self.requested?;
        let limit = limits::Reading(self.max);
        Some(format!(
            "{} buffer: asked for {requested} bytes but {} = {limit} caps it (granted {}); raise it with: sysctl -w {}={requested}",
            self.kind.name(),
            self.kind.sysctl(),
            self.effective,
            self.kind.sysctl(),
        ))
    }
}

impl fmt::Display for BufferSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} buffer: {} bytes (max {}",
            self.kind.name(),
            self.effective,
            limits::Reading(self.max)
        )?;
        if let Some(requested) = self.requested {
            write!(f, ", requested {requested}")?;
        }
        f.write_str(")")
    }
}

/// A bound socket and what the kernel granted it.
#[derive(Debug)]
pub struct BoundSocket {
    /// The ready socket, blocking.
    pub socket: UdpSocket,
    /// The address it is bound to (the real port when 0 was asked).
    pub local: SocketAddr,
    /// Receive buffer, requested and effective.
    pub recv_buf: BufferSize,
    /// Send buffer, requested and effective.
    pub send_buf: BufferSize,
}

/// Creates a UDP socket for `addr`'s family, sizes its buffers and binds it.
///
/// Without `reuse_port` the bind itself is exclusive: no socket that already holds
/// the address and port, or a wildcard covering it, can be joined silently — the
/// kernel answers `EADDRINUSE`, which is how a second server is refused without
/// racing a `/proc` scan. `SO_REUSEADDR` is set only after the bind when asked,
/// which lets whoever binds later share the port (Linux checks the flag
/// on both sockets at the later bind). With `reuse_port`, a same-uid socket that
/// also set `SO_REUSEPORT` can share the port; [`foreign_holders`] finds it.
pub fn bind(addr: SocketAddr, options: &SocketOptions, limits: &Limits) -> Result<BoundSocket> {
    if is_not_unicast(addr.ip()) {
        return Err(Error::NotUnicast { addr });
    }
    let fail = |what: &'static str| move |source| Error::Socket { what, addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(fail("create a UDP socket"))?;
    if let Some(size) = options.recv_buf {
        socket
            .set_recv_buffer_size(size)
            .map_err(fail("set SO_RCVBUF"))?;
    }
    if let Some(size) = options.send_buf {
        socket
            .set_send_buffer_size(size)
            .map_err(fail("set SO_SNDBUF"))?;
    }
    if options.reuse_port {
        socket
            .set_reuse_port(true)
            .map_err(fail("set SO_REUSEPORT"))?;
    }
    if let Some(name) = &options.interface {
        bind_device(&socket, name)?;
    }
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|source| Error::Bind { addr, source })?;
    if options.reuse_address {
        socket
            .set_reuse_address(true)
            .map_err(fail("set SO_REUSEADDR"))?;
    }
    let recv_buf = BufferSize {
        kind: BufferKind::Recv,
        requested: options.recv_buf,
        effective: socket.recv_buffer_size().map_err(fail("read SO_RCVBUF"))?,
        max: limits.rmem_max,
    };
    let send_buf = BufferSize {
        kind: BufferKind::Send,
        requested: options.send_buf,
        effective: socket.send_buffer_size().map_err(fail("read SO_SNDBUF"))?,
        max: limits.wmem_max,
    };
    let socket: UdpSocket = socket.into();
    let local = socket
        .local_addr()
        .map_err(fail("read the bound address"))?;
    Ok(BoundSocket {
        socket,
        local,
        recv_buf,
        send_buf,
    })
}

/// Sockets in the kernel's table that hold `local`'s port on an overlapping
/// address (the same one, or a wildcard on either side, same family) and are not
/// among `ours` (inodes). `None` when the table is unavailable.
pub fn foreign_holders(local: SocketAddr, ours: &[u64]) -> Option<Vec<udp_table::UdpSocketEntry>> {
    foreign_holders_of(&[local], ours)
}

/// [`foreign_holders`] of any of `locals` (the sockets of a socket-activated
/// server), from one read of the table.
pub fn foreign_holders_of(
    locals: &[SocketAddr],
    ours: &[u64],
) -> Option<Vec<udp_table::UdpSocketEntry>> {
    let table = udp_table::read()?;
    Some(
        table
            .into_iter()
            .filter(|e| {
                !ours.contains(&e.inode)
                    && locals.iter().any(|local| {
                        e.local.port() == local.port()
                            && e.local.is_ipv4() == local.is_ipv4()
                            && (e.local.ip() == local.ip()
                                || e.local.ip().is_unspecified()
                                || local.ip().is_unspecified())
                    })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
