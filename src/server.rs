//! The echo server: binding with a start-up report, the echo loop, its stop policy,
//! counters and the summary.
//!
//! [`Server::bind`] does everything that can fail (resolve, bind, buffers) so the
//! binary can print `listening on` only once the socket is really there;
//! [`Server::run`] cannot fail: per-datagram errors are counted and survived.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::error::{Error, Result};
use crate::guard::{
    Decision, DropReason, GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter,
};
use crate::logging::escape_payload;
use crate::net::{self, Family, Limits, SocketOptions, udp_table};
use crate::shutdown::{Stop, StopCause, signal_name};
use crate::watch::watch_port;

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

/// What every loop of a server shares: the stop flag and policy, the guard, and
/// where to publish counters for `--stats-interval`.
#[derive(Clone, Copy)]
struct LoopContext<'a> {
    stop: &'a Stop,
    policy: StopPolicy,
    rules: &'a Rules,
    /// One table for all threads (see [`SharedRateLimiter`]); `None` when off.
    limiter: Option<&'a SharedRateLimiter>,
    published: Option<&'a Published>,
}

/// Runs the loop that fits `batch` on one socket until a stop.
fn serve(socket: &UdpSocket, context: LoopContext<'_>, batch: usize) -> Counters {
    let mut state = LoopState::new(context);
    if batch > 1 {
        batched_loop(socket, &mut state, &mut crate::sys::Batch::new(batch));
        return state.counters;
    }
    plain_loop(socket, &mut state);
    state.counters
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
    /// Datagrams dropped by the guard, per [`DropReason::index`].
    pub dropped: [u64; 4],
    /// The sender of the empty datagram that stopped this loop, if one did.
    pub stopped_by: Option<SocketAddr>,
}

impl Counters {
    /// Adds another loop's counts (the summary of a multi-threaded run).
    pub fn merge(&mut self, other: &Counters) {
        self.datagrams_received += other.datagrams_received;
        self.bytes_received += other.bytes_received;
        self.datagrams_echoed += other.datagrams_echoed;
        self.bytes_echoed += other.bytes_echoed;
        self.send_errors += other.send_errors;
        self.recv_errors += other.recv_errors;
        for (total, more) in self.dropped.iter_mut().zip(other.dropped) {
            *total += more;
        }
        self.stopped_by = self.stopped_by.or(other.stopped_by);
    }

    /// All datagrams the guard dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// A loop's counters as the stats thread sees them: the loop stores its own
/// totals (relaxed stores, no read-modify-write) after each batch, only when
/// `--stats-interval` is on. Padded to a cache line so threads don't share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Published {
    datagrams_echoed: AtomicU64,
    bytes_echoed: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    dropped: [AtomicU64; 4],
}

impl Published {
    fn store(&self, c: &Counters) {
        self.datagrams_echoed
            .store(c.datagrams_echoed, Ordering::Relaxed);
        self.bytes_echoed.store(c.bytes_echoed, Ordering::Relaxed);
        self.send_errors.store(c.send_errors, Ordering::Relaxed);
        self.recv_errors.store(c.recv_errors, Ordering::Relaxed);
        for (slot, value) in self.dropped.iter().zip(c.dropped) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Counters {
        Counters {
            datagrams_echoed: self.datagrams_echoed.load(Ordering::Relaxed),
            bytes_echoed: self.bytes_echoed.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            recv_errors: self.recv_errors.load(Ordering::Relaxed),
            dropped: self.dropped.each_ref().map(|d| d.load(Ordering::Relaxed)),
            ..Counters::default()
        }
    }
}

/// The `--stats-interval` thread: every interval, one line with rates over the
/// interval and running totals of drops, errors and kernel drops.
fn report_stats(
    published: &[Published],
    inodes: &[u64],
    interval: Duration,
    stop: &Stop,
    started: Instant,
) {
    let mut last = Counters::default();
    let mut last_at = started;
    let mut next = started + interval;
    while stop.sleep_until(next) {
        let now = Instant::now();
        let mut totals = Counters::default();
        for p in published {
            totals.merge(&p.load());
        }
        let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
        info!(
            "stats {:.1}-{:.1} s: {:.0} datagrams/s, {:.0} bytes/s, {}, send errors {}, receive errors {}, kernel drops {}",
            last_at.duration_since(started).as_secs_f64(),
            now.duration_since(started).as_secs_f64(),
            (totals.datagrams_echoed - last.datagrams_echoed) as f64 / secs,
            (totals.bytes_echoed - last.bytes_echoed) as f64 / secs,
            Drops(&totals.dropped),
            totals.send_errors,
            totals.recv_errors,
            crate::net::limits::Reading(udp_table::drops_of(inodes)),
        );
        last = totals;
        last_at = now;
        next += interval;
    }
}

/// Renders per-reason drop counts: `dropped 3 (service-port 1, bad-source 0, …)`.
struct Drops<'a>(&'a [u64; 4]);

impl fmt::Display for Drops<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dropped {} (", self.0.iter().sum::<u64>())?;
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{reason} {}", self.0[reason.index()])?;
        }
        f.write_str(")")
    }
}

/// At most one warning per kind of error per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// At most one debug line about dropped datagrams per this interval: a flood of
/// hostile traffic must not become a flood of log lines.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps a flood of identical events from flooding the log (and costing throughput).
#[derive(Debug)]
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::every(ERROR_LOG_INTERVAL)
    }
}

impl Throttle {
    fn every(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns `Some(suppressed since the last one)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
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

/// What one loop needs per datagram: counters, the stop policy and flag, and
/// whether debug lines are wanted (decided once, not per datagram).
struct LoopState<'a> {
    counters: Counters,
    context: LoopContext<'a>,
    stop: &'a Stop,
    debug: bool,
    send_log: Throttle,
    recv_log: Throttle,
    drop_log: Throttle,
}

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Echo,
    Drop,
    Stop,
}

impl<'a> LoopState<'a> {
    fn new(context: LoopContext<'a>) -> Self {
        LoopState {
            counters: Counters::default(),
            stop: context.stop,
            context,
            debug: log::log_enabled!(log::Level::Debug),
            send_log: Throttle::default(),
            recv_log: Throttle::default(),
            drop_log: Throttle::every(DROP_LOG_INTERVAL),
        }
    }

    /// The guard's verdict: the stateless rules, then the source's token bucket.
    fn guard(&self, source: SocketAddr) -> Decision {
        match (self.context.rules.check(source), self.context.limiter) {
            (Decision::Echo, Some(limiter)) if !limiter.allow(source.ip()) => {
                Decision::Drop(DropReason::RateLimited)
            }
            (decision, _) => decision,
        }
    }

    /// Counts a received datagram and decides its fate.
    fn inspect(&mut self, data: &[u8], source: SocketAddr) -> Verdict {
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += data.len() as u64;
        if self.debug {
            debug!(
                "recv {} bytes from {source}: {}",
                data.len(),
                escape_payload(data, DEBUG_PAYLOAD_BYTES)
            );
        }
        if let Decision::Drop(reason) = self.guard(source) {
            self.counters.dropped[reason.index()] += 1;
            if self.debug {
                if let Some(suppressed) = self.drop_log.allow() {
                    debug!(
                        "drop {} bytes from {source}: {reason}{}",
                        data.len(),
                        suppressed_note(suppressed)
                    );
                }
            }
            return Verdict::Drop;
        }
        if data.is_empty() && self.context.policy.stops(&source) {
            self.counters.stopped_by = Some(source);
            self.stop.request();
            return Verdict::Stop;
        }
        Verdict::Echo
    }

    fn echoed(&mut self, bytes: usize, to: SocketAddr) {
        self.counters.datagrams_echoed += 1;
        self.counters.bytes_echoed += bytes as u64;
        if self.debug {
            debug!("sent {bytes} bytes to {to}");
        }
    }

    fn send_failed(&mut self, errors: usize, what: &dyn fmt::Display) {
        self.counters.send_errors += errors as u64;
        if let Some(suppressed) = self.send_log.allow() {
            warn!(
                "cannot echo: {what}; going on{}",
                suppressed_note(suppressed)
            );
        }
    }

    fn recv_failed(&mut self, e: &io::Error) {
        self.counters.recv_errors += 1;
        if let Some(suppressed) = self.recv_log.allow() {
            warn!(
                "receive failed: {}; going on{}",
                crate::error::describe(e),
                suppressed_note(suppressed)
            );
        }
    }

    fn publish(&self) {
        if let Some(published) = self.context.published {
            published.store(&self.counters);
        }
    }
}

/// The plain echo loop: one `recv_from` and one `send_to` per datagram (`--batch 1`).
/// Allocates nothing per datagram; the socket's read timeout lets it see `stop`.
fn plain_loop(socket: &UdpSocket, state: &mut LoopState<'_>) {
    let mut buf = vec![0u8; net::RECV_BUFFER_LEN];
    while !state.stop.is_requested() {
        let (len, source) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if is_wake_up(&e) => continue,
            Err(e) => {
                state.recv_failed(&e);
                continue;
            }
        };
        let data = &buf[..len];
        match state.inspect(data, source) {
            Verdict::Echo => {}
            Verdict::Drop => continue,
            Verdict::Stop => break,
        }
        match socket.send_to(data, source) {
            Ok(sent) => state.echoed(sent, source),
            Err(e) => state.send_failed(
                1,
                &format_args!("{len} bytes to {source}: {}", crate::error::describe(&e)),
            ),
        }
        state.publish();
    }
    state.publish();
}

/// The batched loop: one `recvmmsg` takes what is queued (up to the batch size),
/// one `sendmmsg` echoes it. Datagrams before a stop datagram in the same batch
/// are still echoed.
fn batched_loop(socket: &UdpSocket, state: &mut LoopState<'_>, batch: &mut crate::sys::Batch) {
    let mut keep = vec![false; batch.capacity()];
    while !state.stop.is_requested() {
        let received = match batch.recv(socket) {
            Ok(n) => n,
            Err(e) if is_wake_up(&e) => continue,
            Err(e) => {
                state.recv_failed(&e);
                continue;
            }
        };
        let mut end = received;
        for (i, slot) in keep.iter_mut().enumerate().take(received) {
            let (data, source) = batch.datagram(i);
            *slot = match source {
                Some(source) => match state.inspect(data, source) {
                    Verdict::Echo => true,
                    Verdict::Drop => false,
                    Verdict::Stop => {
                        end = i;
                        break;
                    }
                },
                None => false,
            };
        }
        let outcome = batch.echo(socket, |i| i < end && keep[i]);
        state.counters.datagrams_echoed += outcome.sent as u64;
        state.counters.bytes_echoed += outcome.bytes as u64;
        if state.debug {
            for i in (0..end).filter(|&i| keep[i]) {
                if let (data, Some(source)) = batch.datagram(i) {
                    debug!("sent {} bytes to {source}", data.len());
                }
            }
        }
        if outcome.errors > 0 {
            let kind = outcome.first_error.map(io::Error::from);
            let why = kind
                .as_ref()
                .map(crate::error::describe)
                .unwrap_or_default();
            state.send_failed(
                outcome.errors,
                &format_args!("{} of {} datagrams refused: {why}", outcome.errors, end),
            );
        }
        state.publish();
        if end < received {
            break;
        }
    }
    state.publish();
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
    /// Foreign sockets seen sharing the port during the run.
    pub port_sharers: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "stopped by {} after {:.1} s: received {} datagrams ({} bytes), echoed {} ({} bytes), {}, send errors {}, receive errors {}, kernel drops {}, port sharers {}",
            self.cause,
            self.elapsed.as_secs_f64(),
            c.datagrams_received,
            c.bytes_received,
            c.datagrams_echoed,
            c.bytes_echoed,
            Drops(&c.dropped),
            c.send_errors,
            c.recv_errors,
            crate::net::limits::Reading(self.kernel_drops),
            self.port_sharers,
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

    fn loopback_server(
        policy: StopPolicy,
        batch: usize,
    ) -> (SocketAddr, Stop, thread::JoinHandle<Counters>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Stop::new();
        let flag = stop.clone();
        (
            addr,
            stop,
            thread::spawn(move || serve_plainly(&socket, &flag, policy, batch)),
        )
    }

    /// `serve` with the default guard and no stats, as `Server::run` would call it.
    fn serve_plainly(
        socket: &UdpSocket,
        stop: &Stop,
        policy: StopPolicy,
        batch: usize,
    ) -> Counters {
        let rules = Rules::new(&GuardConfig::default(), socket.local_addr().unwrap());
        let context = LoopContext {
            stop,
            policy,
            rules: &rules,
            limiter: None,
            published: None,
        };
        serve(socket, context, batch)
    }

    fn client() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
    }

    #[test]
    fn both_loops_echo_and_stop_on_an_empty_datagram_in_process() {
        for batch in [1, 8] {
            echoes_and_stops(batch);
        }
    }

    fn echoes_and_stops(batch: usize) {
        let (addr, stop, handle) = loopback_server(StopPolicy::Loopback, batch);
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
    fn both_loops_notice_the_stop_flag_while_idle() {
        for batch in [1, 8] {
            let (_, stop, handle) = loopback_server(StopPolicy::Never, batch);
            let asked = Instant::now();
            stop.request();
            let counters = handle.join().unwrap();
            assert!(asked.elapsed() < STOP_POLL * 5);
            assert_eq!(counters, Counters::default());
        }
    }

    #[test]
    fn datagrams_before_a_stop_datagram_in_one_batch_are_echoed() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        let addr = socket.local_addr().unwrap();
        let client = client();
        for payload in [&b"one"[..], b"two", b"", b"after"] {
            client.send_to(payload, addr).unwrap();
        }
        // All four are queued before the loop starts: one recvmmsg takes them.
        thread::sleep(Duration::from_millis(20));
        let counters = serve_plainly(&socket, &Stop::new(), StopPolicy::Loopback, 16);
        assert_eq!(
            counters.datagrams_received, 3,
            "the datagram after the stop is not read"
        );
        assert_eq!(counters.datagrams_echoed, 2);
        let mut buf = [0u8; 16];
        for want in [&b"one"[..], b"two"] {
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn send_errors_are_counted_and_the_loop_goes_on() {
        for batch in [1, 8] {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_read_timeout(Some(STOP_POLL)).unwrap();
            // Linux marks an unconnected UDP socket shut for writing (and says
            // ENOTCONN): every send then fails with EPIPE, receives still work.
            let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Write);
            let addr = socket.local_addr().unwrap();
            let handle = thread::spawn(move || {
                serve_plainly(&socket, &Stop::new(), StopPolicy::Loopback, batch)
            });
            let client = client();
            for _ in 0..3 {
                client.send_to(b"no way back", addr).unwrap();
            }
            // The loop keeps serving after the failures: a stop datagram still stops it.
            thread::sleep(Duration::from_millis(50));
            client.send_to(b"", addr).unwrap();
            let counters = handle.join().unwrap();
            assert_eq!(counters.datagrams_received, 4, "batch {batch}");
            assert_eq!(counters.send_errors, 3, "batch {batch}");
            assert_eq!(counters.datagrams_echoed, 0, "batch {batch}");
            assert!(counters.stopped_by.is_some(), "batch {batch}");
        }
    }

    #[test]
    fn the_summary_reads_as_one_line() {
        let summary = Summary {
            counters: Counters {
                datagrams_received: 3,
                bytes_received: 10,
                datagrams_echoed: 2,
                bytes_echoed: 10,
                dropped: [1, 0, 0, 0],
                ..Counters::default()
            },
            cause: StopReason::Signal(signal_hook::consts::SIGTERM),
            elapsed: Duration::from_millis(1500),
            kernel_drops: None,
            port_sharers: 0,
        };
        assert_eq!(
            summary.to_string(),
            "stopped by SIGTERM after 1.5 s: received 3 datagrams (10 bytes), echoed 2 (10 bytes), dropped 1 (service-port 1, bad-source 0, not-allowed 0, rate-limited 0), send errors 0, receive errors 0, kernel drops unknown, port sharers 0"
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
