//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! binary can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::error::{Error, Result};
use crate::logging::escape_payload;
use crate::net::{self, Family, Limits, SocketOptions, udp_table};
use crate::shutdown::{Stop, StopCause, signal_name};

/// How often a blocked receive wakes up to look at the stop flag. Signal handlers
/// are installed with SA_RESTART, so without a timeout `recv_from` would never
/// notice SIGTERM; 100 ms bounds the stop delay at a cost of 10 wake-ups a second.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// How much of a payload a debug line shows.
const DEBUG_PAYLOAD_BYTES: usize = 64;

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

/// Everything the server needs to know, free of any command-line types.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address or name to bind.
    pub host: String,
    /// UDP port; 0 lets the kernel pick one.
    pub port: u16,
    /// Address family a name may resolve to.
    pub family: Family,
    /// Buffer requests.
    pub recv_buf: Option<usize>,
    /// Buffer requests.
    pub send_buf: Option<usize>,
    /// Who may stop the server with an empty datagram.
    pub stop_on_empty: StopPolicy,
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
        }
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    socket: UdpSocket,
    local: SocketAddr,
    inode: Option<u64>,
    stop_on_empty: StopPolicy,
}

impl Server {
    /// Resolves, binds and logs the start-up report (limits, effective buffers,
    /// warnings for clamped requests). Fails when the host does not resolve, the
    /// address is not local, the port is privileged, or another socket holds it.
    pub fn bind(config: &ServerConfig) -> Result<Server> {
        let addr = net::resolve(&config.host, config.port, config.family)?;
        let limits = Limits::read();
        let options = SocketOptions {
            recv_buf: config.recv_buf,
            send_buf: config.send_buf,
            reuse_address: true,
        };
        let bound = net::bind(addr, &options, &limits)?;
        info!("{limits}");
        if let Some(note) = limits.somaxconn_note() {
            info!("{note}");
        }
        for size in [bound.recv_buf, bound.send_buf] {
            info!("{size}");
            if let Some(warning) = size.clamp_warning() {
                warn!("{warning}");
            }
        }
        bound
            .socket
            .set_read_timeout(Some(STOP_POLL))
            .map_err(|source| Error::Socket {
                what: "set a receive timeout",
                addr,
                source,
            })?;
        Ok(Server {
            inode: udp_table::socket_inode(&bound.socket),
            socket: bound.socket,
            local: bound.local,
            stop_on_empty: config.stop_on_empty,
        })
    }

    /// The bound address, with the real port when 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Echoes until an allowed empty datagram or `stop`, then returns the summary.
    pub fn run(self, stop: &Stop) -> Summary {
        let started = Instant::now();
        let counters = echo_loop(&self.socket, stop, self.stop_on_empty);
        let cause = match (counters.stopped_by, stop.cause()) {
            (Some(source), _) => StopReason::EmptyDatagram(source),
            (None, Some(StopCause::Signal(signal))) => StopReason::Signal(signal),
            (None, _) => StopReason::Requested,
        };
        Summary {
            counters,
            cause,
            elapsed: started.elapsed(),
            kernel_drops: self.inode.and_then(|inode| udp_table::drops_of(&[inode])),
        }
    }
}

/// What one echo loop counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received, the stop datagram included.
    pub datagrams_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Datagrams sent back in full.
    pub datagrams_echoed: u64,
    /// Payload bytes sent back.
    pub bytes_echoed: u64,
    /// Echoes the kernel refused (ENOBUFS, EMSGSIZE, unreachable…): counted, not fatal.
    pub send_errors: u64,
    /// Receive calls that failed with something other than a timeout (e.g. an ICMP
    /// error queued on the socket): counted, not fatal.
    pub recv_errors: u64,
    /// The sender of the empty datagram that stopped this loop, if one did.
    pub stopped_by: Option<SocketAddr>,
}

/// At most one warning per kind of error per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Keeps a flood of identical errors from flooding the log (and costing throughput).
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Returns `Some(suppressed since the last one)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < ERROR_LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more since the last report)")
    }
}

/// The plain echo loop: one `recv_from` and one `send_to` per datagram, no
/// allocation per datagram, nothing logged per datagram above debug.
///
/// Returns when an empty datagram allowed by `policy` arrives (after raising
/// `stop` so sibling loops end too) or when `stop` is raised; the socket must have
/// a read timeout so the flag is seen.
pub fn echo_loop(socket: &UdpSocket, stop: &Stop, policy: StopPolicy) -> Counters {
    let mut buf = vec![0u8; net::RECV_BUFFER_LEN];
    let mut counters = Counters::default();
    let mut send_log = Throttle::default();
    let mut recv_log = Throttle::default();
    let debug = log::log_enabled!(log::Level::Debug);
    while !stop.is_requested() {
        let (len, source) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if is_wake_up(&e) => continue,
            Err(e) => {
                counters.recv_errors += 1;
                if let Some(suppressed) = recv_log.allow() {
                    warn!(
                        "receive failed: {}; going on{}",
                        crate::error::describe(&e),
                        suppressed_note(suppressed)
                    );
                }
                continue;
            }
        };
        counters.datagrams_received += 1;
        counters.bytes_received += len as u64;
        if debug {
            debug!(
                "recv {len} bytes from {source}: {}",
                escape_payload(&buf[..len], DEBUG_PAYLOAD_BYTES)
            );
        }
        if len == 0 && policy.stops(&source) {
            counters.stopped_by = Some(source);
            stop.request();
            break;
        }
        match socket.send_to(&buf[..len], source) {
            Ok(sent) => {
                counters.datagrams_echoed += 1;
                counters.bytes_echoed += sent as u64;
                if debug {
                    debug!("sent {sent} bytes to {source}");
                }
            }
            Err(e) => {
                counters.send_errors += 1;
                if let Some(suppressed) = send_log.allow() {
                    warn!(
                        "cannot echo {len} bytes to {source}: {}; going on{}",
                        crate::error::describe(&e),
                        suppressed_note(suppressed)
                    );
                }
            }
        }
    }
    counters
}

/// A receive timeout (our stop poll) or an interrupted call: look at the flag, retry.
fn is_wake_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An empty datagram from this sender, allowed by `--stop-on-empty`.
    EmptyDatagram(SocketAddr),
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The embedding code raised the stop flag.
    Requested,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::EmptyDatagram(source) => write!(f, "empty datagram from {source}"),
            StopReason::Signal(signal) => f.write_str(signal_name(*signal)),
            StopReason::Requested => f.write_str("request"),
        }
    }
}

/// The end-of-run report: what was echoed, what failed, and why it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Merged counters of the run.
    pub counters: Counters,
    /// Why the run ended.
    pub cause: StopReason,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Datagrams the kernel dropped before the server saw them (receive buffer
    /// full), from `/proc/net/udp`; `None` where that is unavailable.
    pub kernel_drops: Option<u64>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "stopped by {} after {:.1} s: received {} datagrams ({} bytes), echoed {} ({} bytes), send errors {}, receive errors {}, kernel drops {}",
            self.cause,
            self.elapsed.as_secs_f64(),
            c.datagrams_received,
            c.bytes_received,
            c.datagrams_echoed,
            c.bytes_echoed,
            c.send_errors,
            c.recv_errors,
            crate::net::limits::Reading(self.kernel_drops),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

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

    fn loopback_server(policy: StopPolicy) -> (SocketAddr, Stop, thread::JoinHandle<Counters>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Stop::new();
        let flag = stop.clone();
        (
            addr,
            stop,
            thread::spawn(move || echo_loop(&socket, &flag, policy)),
        )
    }

    fn client() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
    }

    #[test]
    fn the_loop_echoes_and_stops_on_an_empty_datagram_in_process() {
        let (addr, stop, handle) = loopback_server(StopPolicy::Loopback);
        let client = client();
        let mut reply = [0u8; 16];
        client.send_to(b"ping", addr).unwrap();
        let (n, from) = client.recv_from(&mut reply).unwrap();
        assert_eq!((&reply[..n], from), (&b"ping"[..], addr));
        client.send_to(b"", addr).unwrap();
        let counters = handle.join().unwrap();
        assert_eq!(counters.datagrams_echoed, 1);
        assert_eq!(counters.bytes_echoed, 4);
        assert_eq!(counters.datagrams_received, 2);
        assert_eq!(counters.stopped_by, Some(client.local_addr().unwrap()));
        assert!(
            stop.is_requested(),
            "the stop datagram raises the shared flag"
        );
    }

    #[test]
    fn the_loop_notices_the_stop_flag_while_idle() {
        let (_, stop, handle) = loopback_server(StopPolicy::Never);
        let asked = Instant::now();
        stop.request();
        let counters = handle.join().unwrap();
        assert!(asked.elapsed() < STOP_POLL * 5);
        assert_eq!(counters, Counters::default());
    }

    #[test]
    fn the_summary_reads_as_one_line() {
        let summary = Summary {
            counters: Counters {
                datagrams_received: 3,
                bytes_received: 10,
                datagrams_echoed: 2,
                bytes_echoed: 10,
                ..Counters::default()
            },
            cause: StopReason::Signal(signal_hook::consts::SIGTERM),
            elapsed: Duration::from_millis(1500),
            kernel_drops: None,
        };
        assert_eq!(
            summary.to_string(),
            "stopped by SIGTERM after 1.5 s: received 3 datagrams (10 bytes), echoed 2 (10 bytes), send errors 0, receive errors 0, kernel drops unknown"
        );
    }

    #[test]
    fn throttle_lets_one_line_through_then_counts() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.suppressed, 2);
    }
}
