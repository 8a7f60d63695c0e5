//! The start-up report as data: what `Server::bind` (or `adopt`) found and
//! set up, and the lines the service layer logs from it. The library logs nothing of
//! its own start-up, so a server embedded in another tool starts silently.
//! Also the socket preparation a start does: GRO, an inherited socket's
//! options, the batch size this platform can do.

use std::net::{SocketAddr, UdpSocket};

use log::Level;

use super::{STOP_POLL, ServerConfig};
use crate::error::{Error, Result};
use crate::net::udp_table::UdpSocketEntry;
use crate::net::{self, BufferSize, Limits};
use crate::server::guard::{GuardConfig, RATE_LIMIT_SOURCES};
use crate::server::watch;
use crate::stamp::ReflectorConfig;

/// What [`Server::bind`](crate::server::Server::bind) found and set up: the start-up report as data. The
/// service layer logs it ([`StartupReport::lines`]); the library does not, so a server
/// embedded in another tool (the doctor's self-test) starts silently.
#[derive(Debug, Clone)]
pub struct StartupReport {
    /// The bound address, with the real port when 0 was asked (with socket
    /// activation, the first inherited socket's).
    pub local: SocketAddr,
    /// Socket activation: every inherited socket's address, in descriptor
    /// order (each served by its own thread); empty when the server bound
    /// its sockets itself (all on `local`).
    pub inherited: Vec<SocketAddr>,
    /// The kernel's limits from `/proc/sys/net/core` (each `None` where unreadable).
    pub limits: Limits,
    /// The receive buffer as requested and as granted (with the clamp warning's
    /// data). Every socket asks the same; this is what the first one got.
    pub recv_buf: BufferSize,
    /// The send buffer, likewise.
    pub send_buf: BufferSize,
    /// Echo threads.
    pub threads: usize,
    /// Whether the threads share one exclusive socket (`--exclusive`) rather
    /// than one `SO_REUSEPORT` socket each.
    pub exclusive: bool,
    /// The interface or VRF device the sockets are bound to (`--interface`).
    pub interface: Option<String>,
    /// The STAMP reflector's settings (`--stamp`), key read.
    pub stamp: Option<ReflectorConfig>,
    /// Datagrams per syscall asked for (`--batch`, at least 1).
    pub batch_requested: usize,
    /// Datagrams per syscall the loops use: the request, or 1 where this
    /// platform has no `recvmmsg`/`sendmmsg`.
    pub batch: usize,
    /// Whether the loops use UDP GRO/GSO, and if not, why.
    pub gro: GroStatus,
    /// Whether the wildcard sockets answer from the address asked.
    pub reply_source: ReplySource,
    /// Loop guard, allowlist and rate limit, as configured.
    pub guard: GuardConfig,
    /// The port-sharing check at start: other sockets already on the port (of
    /// any inherited socket; the watch warns only about later ones). `None` when the kernel's socket table
    /// cannot be read, which turns the port-sharing watch off.
    pub port_sharers: Option<Vec<UdpSocketEntry>>,
}

impl StartupReport {
    /// The report as log lines, each with the level it deserves, in the order
    /// the server logs them: limits (and the `somaxconn` note), the buffers
    /// (each with its clamp warning), the batch fallback warning, threads and
    /// batch, the guard, then the port-sharing check.
    pub fn lines(&self) -> Vec<(Level, String)> {
        let mut lines = vec![(Level::Info, self.limits.to_string())];
        if let Some(note) = self.limits.somaxconn_note() {
            lines.push((Level::Info, note));
        }
        for buffer in [&self.recv_buf, &self.send_buf] {
            lines.push((Level::Info, buffer.to_string()));
            if let Some(warning) = buffer.clamp_warning() {
                lines.push((Level::Warn, warning));
            }
        }
        if let Some(stamp) = &self.stamp {
            lines.push((
                Level::Info,
                if self.batch == 1 {
                    format!("{}; one datagram per syscall", stamp.describe())
                } else {
                    format!(
                        "{}; up to {} datagrams per syscall, kernel receive time stamps",
                        stamp.describe(),
                        self.batch
                    )
                },
            ));
        }
        if self.batch != self.batch_requested {
            lines.push((
                Level::Warn,
                format!(
                    "--batch {} needs recvmmsg/sendmmsg, which this platform lacks; using {}",
                    self.batch_requested, self.batch
                ),
            ));
        }
        let threads = self.threads;
        lines.push((
            Level::Info,
            format!(
                "{threads} thread{}, {} per syscall",
                if threads == 1 {
                    ", one socket".to_owned()
                } else if !self.inherited.is_empty() {
                    let addrs: Vec<String> =
                        self.inherited.iter().map(ToString::to_string).collect();
                    format!("s, one per inherited socket ({})", addrs.join(", "))
                } else if self.exclusive {
                    "s on one socket (--exclusive: a flow's echoes may leave out of order)"
                        .to_owned()
                } else {
                    format!("s, {threads} sockets sharing the port with SO_REUSEPORT")
                },
                crate::units::count(self.batch as u64, "datagram", "datagrams"),
            ),
        ));
        match &self.gro {
            GroStatus::On => lines.push((
                Level::Info,
                format!(
                    "UDP GRO/GSO on: up to {} of 64 KiB per recvmmsg, each burst echoed with one UDP_SEGMENT send",
                    crate::units::count(self.batch as u64, "buffer", "buffers")
                ),
            )),
            GroStatus::NotAsked => {}
            GroStatus::Unavailable(why) => lines.push((
                Level::Info,
                format!(
                    "UDP GRO unavailable here ({why}): one datagram per buffer, no GSO"
                ),
            )),
        }
        match &self.reply_source {
            ReplySource::NotWildcard => {}
            ReplySource::On => lines.push((
                Level::Info,
                "wildcard bind: each reply leaves from the address its request was sent to (IP_PKTINFO/IPV6_PKTINFO)".to_owned(),
            )),
            ReplySource::Unavailable(why) => lines.push((
                Level::Warn,
                format!(
                    "wildcard bind, but requests' destinations are unknown here ({why}): replies leave from the kernel's choice of source address, which on a host with several addresses may not be the one asked"
                ),
            )),
        }
        if let Some(name) = &self.interface {
            lines.push((
                Level::Info,
                format!(
                    "bound to interface {name} (SO_BINDTODEVICE): only its datagrams are answered"
                ),
            ));
        }
        lines.push((Level::Info, guard_line(&self.guard, self.stamp.is_some())));
        match &self.port_sharers {
            None => lines.push((
                Level::Debug,
                "no /proc/net/udp here: the port-sharing watch is off".to_owned(),
            )),
            Some(sharers) => lines.extend(
                sharers
                    .iter()
                    .map(|h| (Level::Warn, watch::warning(h, self.exclusive))),
            ),
        }
        lines
    }
}

/// Whether the echo loops use UDP GRO on receive and GSO on send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroStatus {
    /// On: every socket has `UDP_GRO` set, and the loops split each buffer
    /// into its datagrams and echo runs of them with `UDP_SEGMENT`.
    On,
    /// Not asked for: `--no-gro`, or `--batch 1` (the plain loop).
    NotAsked,
    /// Asked for, but the kernel refused `UDP_GRO` (Linux < 5.0, or not
    /// Linux): the batched loop, with this reason.
    Unavailable(String),
}

/// Which protections are on, for the start-up report.
fn guard_line(guard: &GuardConfig, stamp: bool) -> String {
    let ports = match (guard.allow_service_ports, guard.answer_stamp_port) {
        (true, _) => "off (--allow-service-ports)",
        (false, false) => "on (drops source ports 0-1023, 1900, 5353, 11211)",
        (false, true) => "on (drops source ports 0-861, 863-1023, 1900, 5353, 11211)",
    };
    let allow = if guard.allow.is_empty() {
        "all sources".to_owned()
    } else {
        guard
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rate = guard.rate_limit.map_or("off".to_owned(), |r| {
        let prefix = guard.rate_limit_prefix;
        format!(
            "{r} datagrams/s per source network ({prefix}), burst {r}, {RATE_LIMIT_SOURCES} sources tracked"
        )
    });
    let loops = match (guard.loop_detect, stamp) {
        (true, false) => "on",
        (true, true) => "by refusing reflected packets (--stamp)",
        (false, _) => "off (--no-loop-detect)",
    };
    format!("loop guard {ports}; loop detection {loops}; allow {allow}; rate limit {rate}")
}

/// Whether the server's wildcard-bound sockets answer each request from the
/// address it was sent to (see `sys::enable_reply_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplySource {
    /// Every socket is bound to one address: its replies leave from it.
    NotWildcard,
    /// Every wildcard socket does.
    On,
    /// The kernel refused for one (this reason): its replies leave from the
    /// kernel's choice of source.
    Unavailable(String),
}

/// Readies every wildcard-bound socket to answer from the address asked,
/// before the server says it listens (a datagram queued before would come
/// without its destination): which sockets do, and the report's status.
pub(super) fn enable_reply_source(
    sockets: &[UdpSocket],
    addrs: &[SocketAddr],
) -> (Vec<bool>, ReplySource) {
    let mut status = ReplySource::NotWildcard;
    let ready = sockets
        .iter()
        .zip(addrs)
        .map(|(socket, addr)| {
            if !addr.ip().is_unspecified() {
                return false;
            }
            match crate::sys::enable_reply_source(socket) {
                Ok(()) => {
                    if status == ReplySource::NotWildcard {
                        status = ReplySource::On;
                    }
                    true
                }
                Err(e) => {
                    status =
                        ReplySource::Unavailable(format!("{addr}: {}", crate::error::describe(&e)));
                    false
                }
            }
        })
        .collect();
    (ready, status)
}

/// Turns UDP GRO on for every socket: `Unavailable` when the kernel refuses it
/// for the first (nothing changed then), an error when it refuses a later one
/// after accepting the first (a socket with GRO on must not be read by a loop
/// that does not split buffers, and this cannot happen on one kernel).
pub(super) fn enable_gro(sockets: &[UdpSocket], addr: SocketAddr) -> Result<GroStatus> {
    let Some((first, rest)) = sockets.split_first() else {
        return Ok(GroStatus::NotAsked);
    };
    if let Err(e) = crate::sys::enable_gro(first) {
        return Ok(GroStatus::Unavailable(crate::error::describe(&e)));
    }
    for socket in rest {
        crate::sys::enable_gro(socket).map_err(|source| Error::Socket {
            what: "turn UDP GRO on",
            addr,
            source,
        })?;
    }
    Ok(GroStatus::On)
}

/// An inherited socket gets what [`net::bind`] gives a new one: the requested
/// buffer sizes (read back, as granted) and the read timeout the loops poll
/// the stop flag with. Returns its address and both buffers.
pub(super) fn readopt_options(
    socket: &UdpSocket,
    config: &ServerConfig,
    limits: &Limits,
) -> Result<(SocketAddr, BufferSize, BufferSize)> {
    let placeholder: SocketAddr = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
    let addr = socket.local_addr().map_err(|source| Error::Socket {
        what: "read the inherited socket's address",
        addr: placeholder,
        source,
    })?;
    let fail = |what: &'static str| move |source| Error::Socket { what, addr, source };
    let sock = socket2::SockRef::from(socket);
    if let Some(size) = config.recv_buf {
        sock.set_recv_buffer_size(size)
            .map_err(fail("set SO_RCVBUF"))?;
    }
    if let Some(size) = config.send_buf {
        sock.set_send_buffer_size(size)
            .map_err(fail("set SO_SNDBUF"))?;
    }
    // The manager may hand it over non-blocking; the loops block with a timeout.
    socket
        .set_nonblocking(false)
        .map_err(fail("make the socket blocking"))?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(fail("set a receive timeout"))?;
    let recv_buf = BufferSize {
        kind: net::BufferKind::Recv,
        requested: config.recv_buf,
        effective: sock.recv_buffer_size().map_err(fail("read SO_RCVBUF"))?,
        max: limits.rmem_max,
    };
    let send_buf = BufferSize {
        kind: net::BufferKind::Send,
        requested: config.send_buf,
        effective: sock.send_buffer_size().map_err(fail("read SO_SNDBUF"))?,
        max: limits.wmem_max,
    };
    Ok((addr, recv_buf, send_buf))
}

/// The batch size this platform can do: batching needs `recvmmsg`/`sendmmsg` (Linux).
pub(super) fn effective_batch(requested: usize) -> usize {
    if crate::sys::BATCHING { requested } else { 1 }
}
