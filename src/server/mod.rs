//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! binary can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.
//! The loops live in `loops`, what they count and the summary in `counters`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::error::{Error, Result};
use crate::guard::{GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter};
use crate::net::{self, Family, Limits, SocketOptions, udp_table};
use crate::shutdown::{Stop, StopCause};
use crate::watch::watch_port;

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

/// Everything the server needs to know, free of any command-line types.
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
    /// Sockets sharing the port with `SO_REUSEPORT`, one blocking thread each.
    pub threads: usize,
    /// Log a counter line this often; `None` costs nothing.
    pub stats_interval: Option<Duration>,
    /// Loop guard, allowlist and rate limit.
    pub guard: GuardConfig,
    /// Bind without SO_REUSEADDR, so the kernel refuses any later co-binder.
    pub exclusive: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "localhost".to_owned(),
            port: 9999,
            family: Family::Any,
            recv_buf: None,
            send_buf: None,
            stop_on_empty: StopPolicy::Loopback,
            batch: DEFAULT_BATCH,
            threads: 1,
            stats_interval: None,
            guard: GuardConfig::default(),
            exclusive: false,
        }
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    sockets: Vec<UdpSocket>,
    local: SocketAddr,
    inodes: Vec<u64>,
    stop_on_empty: StopPolicy,
    batch: usize,
    stats_interval: Option<Duration>,
    rules: Rules,
    limiter: Option<SharedRateLimiter>,
}

impl Server {
    /// Resolves, binds and logs the start-up report (limits, effective buffers,
    /// warnings for clamped requests). Fails when the host does not resolve, the
    /// address is not local, the port is privileged, or another socket holds it.
    pub fn bind(config: &ServerConfig) -> Result<Server> {
        let mut addr = net::resolve(&config.host, config.port, config.family)?;
        let limits = Limits::read();
        let threads = config.threads.max(1);
        let options = SocketOptions {
            recv_buf: config.recv_buf,
            send_buf: config.send_buf,
            reuse_address: !config.exclusive,
            reuse_port: threads > 1,
        };
        let mut sockets = Vec::with_capacity(threads);
        let mut first = None;
        for _ in 0..threads {
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
            first.get_or_insert((bound.recv_buf, bound.send_buf));
            sockets.push(bound.socket);
        }
        let inodes: Vec<u64> = sockets.iter().filter_map(udp_table::socket_inode).collect();
        if threads > 1 {
            // SO_REUSEPORT lets a same-uid socket that set it too share the port
            // silently; the kernel's table shows whether one already does.
            if let Some(other) =
                net::foreign_holders(addr, &inodes).and_then(|o| o.first().copied())
            {
                return Err(Error::PortShared {
                    addr,
                    uid: other.uid,
                    inode: other.inode,
                });
            }
        }
        info!("{limits}");
        if let Some(note) = limits.somaxconn_note() {
            info!("{note}");
        }
        if let Some((recv_buf, send_buf)) = first {
            recv_buf.log(log::Level::Info);
            send_buf.log(log::Level::Info);
        }
        let batch = effective_batch(config.batch);
        info!(
            "{threads} thread{}, {batch} datagrams per syscall",
            if threads == 1 {
                ", one socket".to_owned()
            } else {
                format!("s, {threads} sockets sharing the port with SO_REUSEPORT")
            },
        );
        log_guard(&config.guard);
        Ok(Server {
            sockets,
            local: addr,
            inodes,
            stop_on_empty: config.stop_on_empty,
            batch,
            stats_interval: config.stats_interval,
            rules: Rules::new(&config.guard, addr),
            limiter: config
                .guard
                .rate_limit
                .map(|rate| SharedRateLimiter::new(rate, RATE_LIMIT_SOURCES)),
        })
    }

    /// The bound address, with the real port when 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Echoes until an allowed empty datagram or `stop`, then returns the summary.
    /// Each socket gets its own thread; a stop seen by one ends them all.
    pub fn run(self, stop: &Stop) -> Summary {
        let started = Instant::now();
        let published: Vec<Published> = self.sockets.iter().map(|_| Published::default()).collect();
        let counters = thread::scope(|scope| {
            let loops: Vec<_> = self
                .sockets
                .iter()
                .zip(&published)
                .map(|(socket, published)| {
                    let context = LoopContext {
                        stop,
                        policy: self.stop_on_empty,
                        rules: &self.rules,
                        limiter: self.limiter.as_ref(),
                        published: self.stats_interval.map(|_| published),
                    };
                    scope.spawn(move || serve(socket, context, self.batch))
                })
                .collect();
            if let Some(interval) = self.stats_interval {
                let (published, inodes) = (&published, &self.inodes);
                scope.spawn(move || report_stats(published, inodes, interval, stop, started));
            }
            let watcher = scope.spawn(|| watch_port(self.local, &self.inodes, stop));
            let mut total = Counters::default();
            for handle in loops {
                match handle.join() {
                    Ok(counters) => total.merge(&counters),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            // Whatever ended one loop ends the stats and watch threads too.
            stop.request();
            let sharers = watcher
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
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
    let requested = requested.max(1);
    if crate::sys::BATCHING || requested == 1 {
        requested
    } else {
        warn!("--batch {requested} needs recvmmsg/sendmmsg, which this platform lacks; using 1");
        1
    }
}

/// Logs which protections are on, once at start.
fn log_guard(guard: &GuardConfig) {
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
    info!("loop guard {ports}; allow {allow}; rate limit {rate}");
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
