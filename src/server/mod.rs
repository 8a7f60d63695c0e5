//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! service layer can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.
//! What `bind` found is a [`StartupReport`], data for the caller (`service::run`) to log: the
//! library logs nothing of its own start-up.
//! The loops live in `loops`, what they count and the summary in `counters`.
//! Its threads, and how a stop reaches them: `server/threads.rs`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::net::udp_table;
use crate::net::{self, Family, Limits, SocketOptions};
use crate::server::guard::{GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter};
use crate::server::watch::watch_port;
use crate::shutdown::{Stop, StopCause};
use crate::stamp::StampOptions;

mod counters;
pub mod guard;
mod loops;
mod observer;
mod reload;
pub mod service;
mod startup;
mod threads;
pub(crate) mod watch;

pub use counters::{Counters, ServerSummary, StopReason};
use counters::{Published, report_stats, totals};
use loops::{LoopContext, LoopKind, serve};
use observer::StatusSink;
pub use observer::{Observer, Running};
pub use startup::{GroStatus, ReplySource, StartupReport};
use startup::{effective_batch, enable_gro, enable_reply_source, readopt_options};

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
    /// Anyone: only sensible on a trusted network.
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
    /// Answer as a STAMP session-reflector (RFC 8762) instead of echoing,
    /// in whichever loop `batch` and `gro` choose.
    pub stamp: Option<StampOptions>,
    /// STAMP: what a Class of Service TLV's EC1 gets (`--stamp-ecn`).
    pub stamp_ecn: crate::stamp::tlv::EcnPolicy,
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    /// One socket per thread, or one for all with `--exclusive`.
    sockets: Vec<UdpSocket>,
    /// Each socket's address, in the same order: its loop's own address.
    addrs: Vec<SocketAddr>,
    /// Per socket, in the same order: whether its replies leave from the
    /// address asked (a wildcard socket whose kernel reports it).
    reply_source: Vec<bool>,
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
    /// Where the `--stats-interval` lines also go (see [`Server::with_status`]).
    status: Option<StatusSink>,
    /// One more thread that reads the published totals while the loops run
    /// (see [`Server::with_observer`]).
    observer: Option<Observer>,
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
                inherited: Vec::new(),
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
                reply_source: ReplySource::NotWildcard,
                guard: config.guard.clone(),
                port_sharers,
            },
        )
    }

    /// Serves sockets someone else bound — a service manager's, through socket
    /// activation ([`crate::server::service::activation`]) — instead of binding: one thread per
    /// socket, whatever `config.threads` says. Each gets the buffer sizes and
    /// read timeout [`bind`](Self::bind) would give it; the report names
    /// every socket's address, and the first one's buffers. Each loop knows
    /// its own socket's address, and the guard all of them: a datagram from
    /// one inherited socket to another is from the server itself. Fails only
    /// when the kernel refuses those options, or `sockets` is empty.
    pub fn adopt(sockets: Vec<UdpSocket>, config: &ServerConfig) -> Result<Server> {
        let limits = Limits::read();
        let mut granted = None;
        let mut inherited = Vec::with_capacity(sockets.len());
        for socket in &sockets {
            let (addr, recv_buf, send_buf) = readopt_options(socket, config, &limits)?;
            inherited.push(addr);
            granted.get_or_insert((recv_buf, send_buf));
        }
        let (Some(&addr), Some((recv_buf, send_buf))) = (inherited.first(), granted) else {
            return Err(Error::Io {
                what: "adopt inherited sockets",
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "none was given"),
            });
        };
        let inodes: Vec<u64> = sockets.iter().filter_map(udp_table::socket_inode).collect();
        let batch_requested = config.batch.max(1);
        let batch = effective_batch(batch_requested);
        let port_sharers = net::foreign_holders_of(&distinct(&inherited), &inodes);
        let report = StartupReport {
            local: addr,
            inherited,
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
            reply_source: ReplySource::NotWildcard,
            guard: config.guard.clone(),
            port_sharers,
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
        if let Some(stamp) = &mut report.stamp {
            // Threads sharing a socket share its transmit-stamp counter too:
            // no loop could tell its own sends' stamps (Follow-Up Telemetry).
            stamp.shared_socket = report.threads > sockets.len();
            stamp.ecn = config.stamp_ecn;
        }
        if config.gro && report.batch > 1 {
            report.gro = enable_gro(&sockets, report.local)?;
        }
        // Bound by us, every socket is on `report.local`; inherited, each on its own.
        let addrs: Vec<SocketAddr> = if report.inherited.len() == sockets.len() {
            report.inherited.clone()
        } else {
            vec![report.local; sockets.len()]
        };
        let (reply_source, status) = enable_reply_source(&sockets, &addrs);
        report.reply_source = status;
        let kind = match (report.batch, &report.gro) {
            (1, _) => LoopKind::Plain,
            (batch, GroStatus::On) => LoopKind::Gro(batch),
            (batch, _) => LoopKind::Batched(batch),
        };
        Ok(Server {
            sockets,
            reply_source,
            rules: Rules::serving(&config.guard, &addrs),
            addrs,
            threads: report.threads,
            inodes,
            stop_on_empty: config.stop_on_empty,
            kind,
            stats_interval: config.stats_interval,
            limiter: config.guard.rate_limit.map(|rate| {
                SharedRateLimiter::new(rate, RATE_LIMIT_SOURCES, config.guard.rate_limit_prefix)
            }),
            datagram_log: true,
            status: None,
            observer: None,
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

    /// Also hands each `--stats-interval` line to `status` (the service layer
    /// sends it to the service manager as its `STATUS=`).
    pub fn with_status(mut self, status: impl Fn(&str) + Send + Sync + 'static) -> Server {
        self.status = Some(StatusSink(Box::new(status)));
        self
    }

    /// Runs `observer` on one more thread while the loops run: the loops then
    /// publish their totals after each batch, as for `--stats-interval`, and
    /// the observer reads them through [`Running::totals`] until the stop
    /// (the `--metrics` endpoint, wired by [`service`]).
    pub fn with_observer(mut self, observer: Observer) -> Server {
        self.observer = Some(observer);
        self
    }

    /// Echoes until an allowed empty datagram or `stop`, then returns the summary.
    /// Each thread serves its own socket, or all serve the one exclusive
    /// socket; a stop seen by one ends them all.
    pub fn run(self, stop: &Stop) -> ServerSummary {
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
                        local: self.addrs[i % self.addrs.len()],
                        rules: &self.rules,
                        loop_detect: self.report.guard.loop_detect,
                        near_copy_budget: self.report.guard.near_copy_budget,
                        origin: started,
                        limiter: self.limiter.as_ref(),
                        published: (self.stats_interval.is_some() || self.observer.is_some())
                            .then_some(published),
                        datagram_log: self.datagram_log,
                        stamp: self.report.stamp.as_ref(),
                        reply_source: self.reply_source[i % self.reply_source.len()],
                    };
                    let name = format!("echo-{i}");
                    threads::spawn(scope, name, move || serve(socket, context, self.kind))
                })
                .collect();
            if let Some(interval) = self.stats_interval {
                let (published, inodes) = (&published, &self.inodes);
                let status = self.status.as_ref().map(|sink| &*sink.0);
                threads::spawn(scope, "stats".into(), move || {
                    report_stats(published, inodes, interval, stop, started, status)
                });
            }
            if let Some(observer) = self.observer {
                let (published, report, inodes) = (&published, &self.report, &self.inodes);
                let totals = move || totals(published);
                threads::spawn(scope, "observer".into(), move || {
                    (observer.0)(Running {
                        report,
                        inodes,
                        totals: &totals,
                        stop,
                    })
                });
            }
            // --stamp-key-dir: SIGHUP rereads the keys.
            if let Some(dir) = self
                .report
                .stamp
                .as_ref()
                .and_then(|s| s.key_dir.as_deref())
            {
                threads::spawn(scope, "key-reload".into(), move || {
                    reload::reload_on_hangup(dir, stop)
                });
            }
            // No socket table at start, no watch (the report says so).
            let watcher = self.report.port_sharers.as_ref().map(|at_start| {
                threads::spawn(scope, "port-watch".into(), || {
                    let report = &self.report;
                    let watched = distinct(&self.addrs);
                    watch_port(&watched, &self.inodes, at_start, report.exclusive, stop)
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
        ServerSummary {
            counters,
            cause,
            elapsed: started.elapsed(),
            kernel_drops: udp_table::drops_of(&self.inodes),
            kernel_drops_are_buffers: matches!(self.kind, LoopKind::Gro(_)),
            port_sharers,
        }
    }
}

/// `addrs` without repeats, in their order.
fn distinct(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut seen = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !seen.contains(addr) {
            seen.push(*addr);
        }
    }
    seen
}

#[cfg(test)]
mod tests;
