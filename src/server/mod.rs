//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! binary can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.
//! What `bind` found is a [`StartupReport`], data for the binary to log: the
//! library logs nothing of its own start-up.
//! The loops live in `loops`, what they count and the summary in `counters`.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use log::Level;

use crate::error::{Error, Result};
use crate::guard::{GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter};
use crate::net::udp_table::{self, UdpSocketEntry};
use crate::net::{self, BufferSize, Family, Limits, SocketOptions};
use crate::notify::Notifier;
use crate::shutdown::{Stop, StopCause};
use crate::stamp::{ReflectorConfig, StampOptions};
use crate::watch::{self, watch_port};

mod counters;
mod loops;

pub use counters::{Counters, StopReason, Summary};
use counters::{Published, report_stats, totals};
use loops::{LoopContext, LoopKind, serve};

/// How often a blocked receive wakes up to look at the stop flag. Signal handlers
/// are installed with SA_RESTART, so without a timeout `recv_from` would never
/// notice SIGTERM; 100 ms bounds the stop delay at a cost of 10 wake-ups a second.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// Who may stop the server with an empty datagram (`--stop-on-empty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopPolicy {
    /// Only a sender on a loopback address, i.e. someone on this host (the default).
    #[default]
    Loopback,
    /// Anyone: the seed's behaviour, only sensible on a trusted network.
    Any,
    /// Nobody: empty datagrams are echoed like any other.
    Never,
}

impl StopPolicy {
    /// Whether an empty datagram from `source` stops the server.
    pub fn stops(self, source: &SocketAddr) -> bool {
        match self {
            StopPolicy::Never => false,
            StopPolicy::Any => true,
            StopPolicy::Loopback => is_loopback(source.ip()),
        }
    }
}

/// Loopback, including IPv4 loopback seen through a dual-stack socket (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The `--batch` default: datagrams per `recvmmsg`/`sendmmsg` call, from the
/// sweep recorded in BENCHMARKS.md.
pub const DEFAULT_BATCH: usize = 32;

/// Everything the server needs to know, free of any command-line types. It has
/// no `Default`: the defaults live in one place, the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address or name to bind.
    pub host: String,
    /// UDP port; 0 lets the kernel pick one.
    pub port: u16,
    /// Address family a name may resolve to.
    pub family: Family,
    /// `SO_RCVBUF` request in bytes, per socket.
    pub recv_buf: Option<usize>,
    /// `SO_SNDBUF` request in bytes, per socket.
    pub send_buf: Option<usize>,
    /// Who may stop the server with an empty datagram.
    pub stop_on_empty: StopPolicy,
    /// Datagrams per syscall: 1 = `recv_from`/`send_to`, more = `recvmmsg`/`sendmmsg`
    /// (with GRO: buffers of up to 64 KiB, each a burst of datagrams).
    pub batch: usize,
    /// Use UDP GRO on receive and GSO on send where the kernel has them (and
    /// `batch` > 1); `false` is `--no-gro`.
    pub gro: bool,
    /// Echo threads: each on its own socket sharing the port with
    /// `SO_REUSEPORT`, or all on one socket with `exclusive`.
    pub threads: usize,
    /// Log a counter line this often; `None` costs nothing.
    pub stats_interval: Option<Duration>,
    /// Loop guard, allowlist and rate limit.
    pub guard: GuardConfig,
    /// Bind one socket without SO_REUSEADDR and SO_REUSEPORT, so the kernel
    /// refuses any later co-binder; `threads` then share that socket.
    pub exclusive: bool,
    /// Network interface or VRF device every socket is bound to
    /// (`SO_BINDTODEVICE`); `None` serves all.
    pub interface: Option<String>,
    /// Answer as a STAMP session-reflector (RFC 8762) instead of echoing;
    /// the loops then take one datagram per syscall.
    pub stamp: Option<StampOptions>,
}

/// What [`Server::bind`] found and set up: the start-up report as data. The
/// binary logs it ([`StartupReport::lines`]); the library does not, so a server
/// embedded in another tool (the doctor's self-test) starts silently.
#[derive(Debug, Clone)]
pub struct StartupReport {
    /// The bound address, with the real port when 0 was asked.
    pub local: SocketAddr,
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
    /// Loop guard, allowlist and rate limit, as configured.
    pub guard: GuardConfig,
    /// The port-sharing check at start: other sockets already on the port (the
    /// watch warns only about later ones). `None` when the kernel's socket table
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
                format!(
                    "{}; one datagram per syscall (--batch {} is not used with --stamp)",
                    stamp.describe(),
                    self.batch_requested
                ),
            ));
        } else if self.batch != self.batch_requested {
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
                "{threads} thread{}, {} datagrams per syscall",
                if threads == 1 {
                    ", one socket".to_owned()
                } else if self.exclusive {
                    "s on one socket (--exclusive: a flow's echoes may leave out of order)"
                        .to_owned()
                } else {
                    format!("s, {threads} sockets sharing the port with SO_REUSEPORT")
                },
                self.batch,
            ),
        ));
        match &self.gro {
            GroStatus::On => lines.push((
                Level::Info,
                format!(
                    "UDP GRO/GSO on: up to {} buffers of 64 KiB per recvmmsg, each burst echoed with one UDP_SEGMENT send",
                    self.batch
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
        if let Some(name) = &self.interface {
            lines.push((
                Level::Info,
                format!(
                    "bound to interface {name} (SO_BINDTODEVICE): only its datagrams are answered"
                ),
            ));
        }
        lines.push((Level::Info, guard_line(&self.guard)));
        match &self.port_sharers {
            None => lines.push((
                Level::Debug,
                "no /proc/net/udp here: the port-sharing watch is off".to_owned(),
            )),
            Some(sharers) => lines.extend(
                sharers
                    .iter()
                    .map(|h| (Level::Warn, watch::warning(self.local, h, self.exclusive))),
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

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    /// One socket per thread, or one for all with `--exclusive`.
    sockets: Vec<UdpSocket>,
    threads: usize,
    report: StartupReport,
    inodes: Vec<u64>,
    stop_on_empty: StopPolicy,
    kind: LoopKind,
    stats_interval: Option<Duration>,
    rules: Rules,
    limiter: Option<SharedRateLimiter>,
    /// Per-datagram debug lines, when debug logging is on (see [`Server::without_datagram_log`]).
    datagram_log: bool,
    /// Where the `--stats-interval` lines also go, as `STATUS=` (see [`Server::notifying`]).
    notifier: Option<Arc<Notifier>>,
    /// The `--metrics` endpoint, served by one more thread (see [`Server::with_metrics`]).
    metrics: Option<TcpListener>,
}

impl Server {
    /// Resolves and binds, and keeps what it found in the [`StartupReport`]
    /// ([`Server::startup`]) without logging it. Fails when the host does not
    /// resolve, the address is not local, the port is privileged, or another
    /// socket holds it.
    pub fn bind(config: &ServerConfig) -> Result<Server> {
        let mut addr = net::resolve(&config.host, config.port, config.family)?;
        let limits = Limits::read();
        let threads = config.threads.max(1);
        // Exclusive: one socket with neither SO_REUSEADDR nor SO_REUSEPORT, so
        // the kernel refuses every co-binder; the threads share it.
        let (socket_count, reuse_port) = if config.exclusive {
            (1, false)
        } else {
            (threads, threads > 1)
        };
        let options = SocketOptions {
            recv_buf: config.recv_buf,
            send_buf: config.send_buf,
            reuse_address: !config.exclusive,
            reuse_port,
            interface: config.interface.clone(),
        };
        let mut sockets = Vec::with_capacity(socket_count);
        let mut granted = None;
        for _ in 0..socket_count {
            let bound = net::bind(addr, &options, &limits)?;
            // Port 0: the siblings join the port the kernel picked for the first.
            addr = bound.local;
            bound
                .socket
                .set_read_timeout(Some(STOP_POLL))
                .map_err(|source| Error::Socket {
                    what: "set a receive timeout",
                    addr,
                    source,
                })?;
            granted.get_or_insert((bound.recv_buf, bound.send_buf));
            sockets.push(bound.socket);
        }
        let (recv_buf, send_buf) = granted.expect("at least one socket was bound");
        let inodes: Vec<u64> = sockets.iter().filter_map(udp_table::socket_inode).collect();
        let port_sharers = net::foreign_holders(addr, &inodes);
        if reuse_port {
            // SO_REUSEPORT lets a same-uid socket that set it too share the port
            // silently; the kernel's table shows whether one already does.
            if let Some(other) = port_sharers.as_ref().and_then(|o| o.first()) {
                return Err(Error::PortShared {
                    addr,
                    uid: other.uid,
                    inode: other.inode,
                });
            }
        }
        let batch_requested = config.batch.max(1);
        let batch = effective_batch(batch_requested);
        Server::assemble(
            config,
            sockets,
            inodes,
            StartupReport {
                local: addr,
                limits,
                recv_buf,
                send_buf,
                threads,
                exclusive: config.exclusive,
                interface: config.interface.clone(),
                stamp: None,
                batch_requested,
                batch,
                gro: GroStatus::NotAsked,
                guard: config.guard.clone(),
                port_sharers,
            },
        )
    }

    /// Serves sockets someone else bound — a service manager's, through socket
    /// activation ([`crate::activation`]) — instead of binding: one thread per
    /// socket, whatever `config.threads` says. Each gets the buffer sizes and
    /// read timeout [`bind`](Self::bind) would give it; the report names the
    /// first socket's address (its buffers likewise). Fails only when the
    /// kernel refuses those options, or `sockets` is empty.
    pub fn adopt(sockets: Vec<UdpSocket>, config: &ServerConfig) -> Result<Server> {
        let limits = Limits::read();
        let mut granted = None;
        let mut first = None;
        for socket in &sockets {
            let (addr, recv_buf, send_buf) = readopt_options(socket, config, &limits)?;
            first.get_or_insert(addr);
            granted.get_or_insert((recv_buf, send_buf));
        }
        let (Some(addr), Some((recv_buf, send_buf))) = (first, granted) else {
            return Err(Error::Io {
                what: "adopt inherited sockets",
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "none was given"),
            });
        };
        let inodes: Vec<u64> = sockets.iter().filter_map(udp_table::socket_inode).collect();
        let batch_requested = config.batch.max(1);
        let batch = effective_batch(batch_requested);
        let report = StartupReport {
            local: addr,
            limits,
            recv_buf,
            send_buf,
            threads: sockets.len(),
            exclusive: false,
            interface: None,
            stamp: None,
            batch_requested,
            batch,
            gro: GroStatus::NotAsked,
            guard: config.guard.clone(),
            port_sharers: net::foreign_holders(addr, &inodes),
        };
        Server::assemble(config, sockets, inodes, report)
    }

    /// Everything after the sockets exist, shared by [`bind`](Self::bind) and
    /// [`adopt`](Self::adopt): UDP GRO on the sockets where asked for (an
    /// inherited socket gets it too) and the loop that fits, one thread per
    /// socket, or `report.threads` on the one exclusive socket.
    fn assemble(
        config: &ServerConfig,
        sockets: Vec<UdpSocket>,
        inodes: Vec<u64>,
        mut report: StartupReport,
    ) -> Result<Server> {
        report.stamp = config
            .stamp
            .as_ref()
            .map(StampOptions::reflector)
            .transpose()?;
        if report.stamp.is_some() {
            // STAMP replies are built one by one in the plain loop.
            report.batch = 1;
        }
        if config.gro && report.batch > 1 {
            report.gro = enable_gro(&sockets, report.local)?;
        }
        let kind = match (report.batch, &report.gro) {
            (1, _) => LoopKind::Plain,
            (batch, GroStatus::On) => LoopKind::Gro(batch),
            (batch, _) => LoopKind::Batched(batch),
        };
        Ok(Server {
            sockets,
            threads: report.threads,
            inodes,
            stop_on_empty: config.stop_on_empty,
            kind,
            stats_interval: config.stats_interval,
            rules: Rules::new(&config.guard, report.local),
            limiter: config
                .guard
                .rate_limit
                .map(|rate| SharedRateLimiter::new(rate, RATE_LIMIT_SOURCES)),
            datagram_log: true,
            notifier: None,
            metrics: None,
            report,
        })
    }

    /// The bound address, with the real port when 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.report.local
    }

    /// What [`bind`](Self::bind) found, for the caller to log or not.
    pub fn startup(&self) -> &StartupReport {
        &self.report
    }

    /// Keeps the per-datagram debug lines off even when debug logging is on: for
    /// a server embedded in another tool (the doctor's self-test), whose own log
    /// they would drown. Warnings (send and receive errors, port sharers) stay.
    pub fn without_datagram_log(mut self) -> Server {
        self.datagram_log = false;
        self
    }

    /// Also sends each `--stats-interval` line to the service manager as its
    /// `STATUS=` (socket activation's companion, [`crate::notify`]).
    pub fn notifying(mut self, notifier: Arc<Notifier>) -> Server {
        self.notifier = Some(notifier);
        self
    }

    /// Serves Prometheus metrics on `listener` while running (`--metrics`):
    /// the loops then publish their totals after each batch, as for
    /// `--stats-interval`, and one more thread renders them per scrape.
    pub fn with_metrics(mut self, listener: TcpListener) -> Server {
        self.metrics = Some(listener);
        self
    }

    /// Echoes until an allowed empty datagram or `stop`, then returns the summary.
    /// Each thread serves its own socket, or all serve the one exclusive
    /// socket; a stop seen by one ends them all.
    pub fn run(self, stop: &Stop) -> Summary {
        let started = Instant::now();
        let published: Vec<Published> = (0..self.threads).map(|_| Published::default()).collect();
        let counters = thread::scope(|scope| {
            let loops: Vec<_> = published
                .iter()
                .enumerate()
                .map(|(i, published)| {
                    let socket = &self.sockets[i % self.sockets.len()];
                    let context = LoopContext {
                        stop,
                        policy: self.stop_on_empty,
                        local: self.report.local,
                        rules: &self.rules,
                        loop_detect: self.report.guard.loop_detect,
                        origin: started,
                        limiter: self.limiter.as_ref(),
                        published: (self.stats_interval.is_some() || self.metrics.is_some())
                            .then_some(published),
                        datagram_log: self.datagram_log,
                        stamp: self.report.stamp.as_ref(),
                    };
                    scope.spawn(move || serve(socket, context, self.kind))
                })
                .collect();
            if let Some(interval) = self.stats_interval {
                let (published, inodes) = (&published, &self.inodes);
                let notifier = self.notifier.as_deref();
                scope.spawn(move || {
                    report_stats(published, inodes, interval, stop, started, notifier)
                });
            }
            if let Some(listener) = &self.metrics {
                let (published, report, inodes) = (&published, &self.report, &self.inodes);
                let totals = move || totals(published);
                scope.spawn(move || {
                    crate::metrics::server::serve(listener, report, inodes, &totals, stop)
                });
            }
            // No socket table at start, no watch (the report says so).
            let watcher = self.report.port_sharers.as_ref().map(|at_start| {
                scope.spawn(|| {
                    let report = &self.report;
                    watch_port(report.local, &self.inodes, at_start, report.exclusive, stop)
                })
            });
            let mut total = Counters::default();
            for handle in loops {
                match handle.join() {
                    Ok(counters) => total.merge(&counters),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            // Whatever ended one loop ends the stats and watch threads too.
            stop.request();
            let sharers = watcher.and_then(|watcher| {
                watcher
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            });
            (total, sharers)
        });
        let (counters, port_sharers) = counters;
        let cause = match (counters.stopped_by, stop.cause()) {
            (Some(source), _) => StopReason::EmptyDatagram(source),
            (None, Some(StopCause::Signal(signal))) => StopReason::Signal(signal),
            (None, _) => StopReason::Requested,
        };
        Summary {
            counters,
            cause,
            elapsed: started.elapsed(),
            kernel_drops: udp_table::drops_of(&self.inodes),
            port_sharers,
        }
    }
}

/// Turns UDP GRO on for every socket: `Unavailable` when the kernel refuses it
/// for the first (nothing changed then), an error when it refuses a later one
/// after accepting the first (a socket with GRO on must not be read by a loop
/// that does not split buffers, and this cannot happen on one kernel).
fn enable_gro(sockets: &[UdpSocket], addr: SocketAddr) -> Result<GroStatus> {
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
fn readopt_options(
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
fn effective_batch(requested: usize) -> usize {
    if crate::sys::BATCHING { requested } else { 1 }
}

/// Which protections are on, for the start-up report.
fn guard_line(guard: &GuardConfig) -> String {
    let ports = if guard.allow_service_ports {
        "off (--allow-service-ports)"
    } else {
        "on (drops source ports 0-1023, 1900, 5353, 11211)"
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
        format!(
            "{r} datagrams/s per source address, burst {r}, {RATE_LIMIT_SOURCES} sources tracked"
        )
    });
    let loops = if guard.loop_detect {
        "on"
    } else {
        "off (--no-loop-detect)"
    };
    format!("loop guard {ports}; loop detection {loops}; allow {allow}; rate limit {rate}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::BufferKind;

    #[test]
    fn the_stop_policy_decides_who_may_stop_the_server() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        for source in [local, local6, mapped] {
            assert!(StopPolicy::Loopback.stops(&source), "{source}");
        }
        assert!(!StopPolicy::Loopback.stops(&remote));
        assert!(StopPolicy::Any.stops(&remote));
        assert!(!StopPolicy::Never.stops(&local));
    }

    /// A loopback server on a free port, every field spelled out (no defaults here).
    fn loopback_config(batch: usize, threads: usize) -> ServerConfig {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 0,
            family: Family::Any,
            recv_buf: Some(64 * 1024),
            send_buf: None,
            stop_on_empty: StopPolicy::Loopback,
            batch,
            gro: true,
            threads,
            stats_interval: None,
            guard: GuardConfig::default(),
            exclusive: false,
            interface: None,
            stamp: None,
        }
    }

    #[test]
    fn bind_reports_what_it_found() {
        let server = Server::bind(&loopback_config(8, 2)).unwrap();
        let report = server.startup();
        assert_eq!(report.local, server.local_addr());
        assert_ne!(report.local.port(), 0, "the real port, not the 0 asked");
        assert_eq!(report.threads, 2);
        assert_eq!(report.batch_requested, 8);
        assert_eq!(report.batch, if crate::sys::BATCHING { 8 } else { 1 });
        assert_eq!(report.recv_buf.requested, Some(64 * 1024));
        assert_eq!(report.send_buf.requested, None);
        if let Some(sharers) = &report.port_sharers {
            assert!(
                sharers.is_empty(),
                "a fresh port has no one else: {sharers:?}"
            );
        }
    }

    #[test]
    fn gro_is_asked_for_only_with_batches_and_without_no_gro() {
        for (batch, gro) in [(1, true), (8, false)] {
            let mut config = loopback_config(batch, 1);
            config.gro = gro;
            let server = Server::bind(&config).unwrap();
            assert_eq!(server.startup().gro, GroStatus::NotAsked);
            assert_eq!(
                server.kind,
                if batch > 1 && crate::sys::BATCHING {
                    LoopKind::Batched(8)
                } else {
                    LoopKind::Plain
                }
            );
        }
        let server = Server::bind(&loopback_config(8, 2)).unwrap();
        match &server.startup().gro {
            GroStatus::On => assert_eq!(server.kind, LoopKind::Gro(8)),
            GroStatus::Unavailable(_) => assert_eq!(server.kind, LoopKind::Batched(8)),
            GroStatus::NotAsked => assert_eq!(server.kind, LoopKind::Plain, "no batching here"),
        }
    }

    #[test]
    fn exclusive_threads_share_one_socket() {
        let config = ServerConfig {
            exclusive: true,
            ..loopback_config(8, 3)
        };
        let server = Server::bind(&config).unwrap();
        assert_eq!(server.sockets.len(), 1);
        assert_eq!((server.threads, server.startup().threads), (3, 3));
        assert!(server.startup().exclusive);
        let socket = socket2::SockRef::from(&server.sockets[0]);
        assert!(!socket.reuse_address().unwrap());
        assert!(!socket.reuse_port().unwrap());
    }

    fn buffer(kind: BufferKind, requested: Option<usize>, effective: usize) -> BufferSize {
        BufferSize {
            kind,
            requested,
            effective,
            max: Some(212_992),
        }
    }

    #[test]
    fn the_startup_report_has_the_lines_and_levels_the_server_always_logged() {
        let local: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let mut report = StartupReport {
            local,
            limits: Limits {
                rmem_max: Some(212_992),
                wmem_max: Some(212_992),
                rmem_default: Some(212_992),
                wmem_default: Some(212_992),
                somaxconn: u64::try_from(crate::net::limits::SOMAXCONN).ok(),
            },
            recv_buf: buffer(BufferKind::Recv, None, 212_992),
            send_buf: buffer(BufferKind::Send, None, 212_992),
            threads: 1,
            exclusive: false,
            interface: None,
            stamp: None,
            batch_requested: 32,
            batch: 32,
            gro: GroStatus::NotAsked,
            guard: GuardConfig::default(),
            port_sharers: Some(Vec::new()),
        };
        let somaxconn = crate::net::limits::SOMAXCONN;
        assert_eq!(
            report.lines(),
            vec![
                (
                    Level::Info,
                    format!(
                        "limits: rmem_max 212992 wmem_max 212992 rmem_default 212992 wmem_default 212992 somaxconn {somaxconn} (SOMAXCONN {somaxconn})"
                    )
                ),
                (
                    Level::Info,
                    "recv buffer: 212992 bytes (max 212992)".to_owned()
                ),
                (
                    Level::Info,
                    "send buffer: 212992 bytes (max 212992)".to_owned()
                ),
                (
                    Level::Info,
                    "1 thread, one socket, 32 datagrams per syscall".to_owned()
                ),
                (
                    Level::Info,
                    "loop guard on (drops source ports 0-1023, 1900, 5353, 11211); loop detection on; allow all sources; rate limit off".to_owned()
                ),
            ]
        );
        // A clamped request, a platform without batching, threads, a guard,
        // another socket on the port, and no socket table.
        report.recv_buf = buffer(BufferKind::Recv, Some(1 << 30), 425_984);
        report.threads = 4;
        report.batch = 1;
        report.guard = GuardConfig {
            allow_service_ports: true,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            rate_limit: Some(100),
            loop_detect: false,
        };
        let sharer = UdpSocketEntry {
            local,
            uid: 1000,
            inode: 4242,
            drops: 0,
        };
        report.port_sharers = Some(vec![sharer]);
        report.gro = GroStatus::Unavailable("Protocol not available (os error 92)".to_owned());
        let lines = report.lines();
        let at = |level: Level, part: &str| {
            lines
                .iter()
                .any(|(l, text)| *l == level && text.contains(part))
        };
        assert!(
            at(Level::Warn, "net.core.rmem_max = 212992 caps it"),
            "{lines:?}"
        );
        assert!(
            at(
                Level::Warn,
                "--batch 32 needs recvmmsg/sendmmsg, which this platform lacks; using 1"
            ),
            "{lines:?}"
        );
        assert!(
            at(
                Level::Info,
                "4 threads, 4 sockets sharing the port with SO_REUSEPORT, 1 datagrams per syscall"
            ),
            "{lines:?}"
        );
        assert!(
            at(
                Level::Info,
                "loop guard off (--allow-service-ports); loop detection off (--no-loop-detect); allow 10.0.0.0/8; rate limit 100 datagrams/s per source address, burst 100, 65536 sources tracked"
            ),
            "{lines:?}"
        );
        assert!(at(Level::Warn, "inode 4242"), "{lines:?}");
        assert!(at(Level::Warn, "restart with --exclusive"), "{lines:?}");
        report.exclusive = true;
        let lines = report.lines();
        let at = |level: Level, part: &str| {
            lines
                .iter()
                .any(|(l, text)| *l == level && text.contains(part))
        };
        assert!(
            at(
                Level::Info,
                "4 threads on one socket (--exclusive: a flow's echoes may leave out of order), 1 datagrams per syscall"
            ),
            "{lines:?}"
        );
        assert!(!at(Level::Warn, "restart with --exclusive"), "{lines:?}");
        assert!(
            at(
                Level::Info,
                "UDP GRO unavailable here (Protocol not available (os error 92)): one datagram per buffer, no GSO"
            ),
            "{lines:?}"
        );
        report.gro = GroStatus::On;
        report.batch = 8;
        assert!(
            report.lines().contains(&(
                Level::Info,
                "UDP GRO/GSO on: up to 8 buffers of 64 KiB per recvmmsg, each burst echoed with one UDP_SEGMENT send".to_owned()
            )),
            "{lines:?}"
        );
        report.port_sharers = None;
        assert!(
            report.lines().contains(&(
                Level::Debug,
                "no /proc/net/udp here: the port-sharing watch is off".to_owned()
            )),
            "{lines:?}"
        );
    }
}
