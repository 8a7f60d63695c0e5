//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! binary can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.
//! What `bind` found is a [`StartupReport`], data for the binary to log: the
//! library logs nothing of its own start-up.
//! The loops live in `loops`, what they count and the summary in `counters`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use log::Level;

use crate::error::{Error, Result};
use crate::guard::{GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter};
use crate::net::udp_table::{self, UdpSocketEntry};
use crate::net::{self, BufferSize, Family, Limits, SocketOptions};
use crate::shutdown::{Stop, StopCause};
use crate::stamp::{ReflectorConfig, StampOptions};
use crate::watch::{self, watch_port};

mod counters;
mod loops;

pub use counters::{Counters, StopReason, Summary};
use counters::{Published, report_stats};
use loops::{LoopContext, serve};

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
    /// Datagrams per syscall: 1 = `recv_from`/`send_to`, more = `recvmmsg`/`sendmmsg`.
    pub batch: usize,
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

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    /// One socket per thread, or one for all with `--exclusive`.
    sockets: Vec<UdpSocket>,
    threads: usize,
    report: StartupReport,
    inodes: Vec<u64>,
    stop_on_empty: StopPolicy,
    batch: usize,
    stats_interval: Option<Duration>,
    rules: Rules,
    limiter: Option<SharedRateLimiter>,
    /// Per-datagram debug lines, when debug logging is on (see [`Server::without_datagram_log`]).
    datagram_log: bool,
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
        let stamp = config
            .stamp
            .as_ref()
            .map(StampOptions::reflector)
            .transpose()?;
        // STAMP replies are built one by one in the plain loop.
        let batch = if stamp.is_some() {
            1
        } else {
            effective_batch(batch_requested)
        };
        Ok(Server {
            sockets,
            threads,
            report: StartupReport {
                local: addr,
                limits,
                recv_buf,
                send_buf,
                threads,
                exclusive: config.exclusive,
                interface: config.interface.clone(),
                stamp,
                batch_requested,
                batch,
                guard: config.guard.clone(),
                port_sharers,
            },
            inodes,
            stop_on_empty: config.stop_on_empty,
            batch,
            stats_interval: config.stats_interval,
            rules: Rules::new(&config.guard, addr),
            limiter: config
                .guard
                .rate_limit
                .map(|rate| SharedRateLimiter::new(rate, RATE_LIMIT_SOURCES)),
            datagram_log: true,
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
                        published: self.stats_interval.map(|_| published),
                        datagram_log: self.datagram_log,
                        stamp: self.report.stamp.as_ref(),
                    };
                    scope.spawn(move || serve(socket, context, self.batch))
                })
                .collect();
            if let Some(interval) = self.stats_interval {
                let (published, inodes) = (&published, &self.inodes);
                scope.spawn(move || report_stats(published, inodes, interval, stop, started));
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
mod tests;
