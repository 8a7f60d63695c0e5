//! The echo loops — plain `recv_from`/`send_to`, batched `recvmmsg`/`sendmmsg`
//! and, in `gro`, batched with UDP GRO/GSO — and the per-loop state every
//! datagram passes through.
//!
//! # A datagram's path through the server
//!
//! 1. Start: `Server::bind`, or `Server::adopt` for inherited sockets (a loop each). `bind`: one
//!    socket, or N with `SO_REUSEPORT` before the bind (port 0: the first picks it); `SO_REUSEADDR`
//!    after it, except `--exclusive` (one socket, neither flag, N loops on it); a 100 ms read timeout
//!    each (`STOP_POLL`). `foreign_holders` (`/proc/net/udp{,6}` minus our inodes): under
//!    `SO_REUSEPORT` a co-holder is `Error::PortShared`, else a warning. `assemble`: GRO asked and
//!    batch > 1 → `enable_gro` → `GroStatus` → `LoopKind` `Plain` (batch 1), `Gro(n)` or `Batched(n)`.
//! 2. Loops (`serve`; every socket gets `IP_RECVTOS`, with `--stamp` also `IP_RECVTTL` and, batched,
//!    `SO_TIMESTAMPNS`; a wildcard socket `IP_PKTINFO` before `listening on`, so every loop sends
//!    each reply from its request's destination, counted as `unsourced_replies` where it cannot). `plain_loop`: `recv_from_meta` into one 65,535-byte buffer, `inspect`, then
//!    `send_to_tos` with the request's DSCP (with `--stamp`, the `Reflector`'s reply built over the
//!    request; a malformed packet is dropped as `malformed`). With `--stamp` the batched and GRO loops
//!    reflect every kept datagram in place before the send (`loops/stamp.rs`).
//!    `batched_loop`: `Batch::recv` (one `recvmmsg`, `MSG_WAITFORONE`), prefetch, `inspect` each slot
//!    up to a stop datagram, `Batch::echo` (one `sendmmsg` of the kept slots to their sources, each
//!    with its request's DSCP; partial sends retried, a refused message counted and skipped). `gro_loop`: `GroBatch::recv` takes up to
//!    n buffers (a truncated one is a receive error), splits each by its `UDP_GRO` segment size,
//!    `inspect`s every datagram, `queue`s kept runs with the buffer's DSCP (≤ 64 segments a message; a
//!    drop splits a run),
//!    `flush`es them in one `sendmmsg` (after `EIO`/`EINVAL`, datagram by datagram). The clock is read
//!    once per receive (`tick`); a timeout or EINTR only leads back to the stop check.
//! 3. `LoopState::inspect`, which every datagram passes: count (debug line if on) → own-socket check
//!    (`LocalAddrs`, wildcard sockets only: the kernel asked, cached) → `Rules::check` → `--rate-limit` (lock the shared table,
//!    take a token from the source network's bucket: IPv4 /32, IPv6 /64 by default) → stop policy (empty datagram) → `LoopDetector::check`, last, as it records what
//!    passes as echoed (not with `--stamp`: a reply differs from its request, and the reflector
//!    refuses reflected packets instead) → echo. A drop is counted per `DropReason`, never answered.
//! 4. Accounting: `echoed` books what the kernel accepted; refused sends are `send_errors`, failed
//!    receives `recv_errors`. Received = echoed + dropped + send errors + taken after the stop (+ the
//!    stop datagram). `publish` stores the totals for `--stats-interval`/`--metrics` after each batch
//!    (plain: each echo). `run` joins the loops, merges their `Counters`, raises the stop flag and
//!    returns a `ServerSummary` (cause, kernel drops of our inodes, port sharers) for the caller to log.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use log::{debug, warn};

use super::StopPolicy;
use super::counters::{Counters, Published};
use crate::net::local_addrs::LocalAddrs;
use crate::server::guard::loop_detect::LoopDetector;
use crate::server::guard::{Decision, Rules, SharedRateLimiter};
use crate::shutdown::Stop;
use crate::stamp::{Reflector, ReflectorConfig};

/// How much of a payload a debug line shows.
const DEBUG_PAYLOAD_BYTES: usize = 64;

/// What every loop of a server shares: the stop flag and policy, the bound
/// address, the guard, the clock, and where to publish counters for
/// `--stats-interval`.
#[derive(Clone, Copy)]
pub(super) struct LoopContext<'a> {
    pub(super) stop: &'a Stop,
    pub(super) policy: StopPolicy,
    /// This loop's socket's address (with socket activation, each socket
    /// has its own). The guard's rules know every socket of the server.
    pub(super) local: SocketAddr,
    pub(super) rules: &'a Rules,
    /// Whether each loop runs a [`LoopDetector`] (`--no-loop-detect` turns it off).
    pub(super) loop_detect: bool,
    /// Each detector's near-copy budget (`--near-copy-budget`).
    pub(super) near_copy_budget: u32,
    /// The origin of the loops' nanosecond clock, one for all threads (the
    /// rate limiter's table is shared).
    pub(super) origin: Instant,
    /// One table for all threads (see [`SharedRateLimiter`]); `None` when off.
    pub(super) limiter: Option<&'a SharedRateLimiter>,
    pub(super) published: Option<&'a Published>,
    /// Whether per-datagram debug lines may be written at all.
    pub(super) datagram_log: bool,
    /// `--stamp`: every loop answers with the reply its [`Reflector`] builds
    /// over the request (see `stamp`) instead of the request's bytes.
    pub(super) stamp: Option<&'a ReflectorConfig>,
    /// A wildcard socket that answers every request from the address it was
    /// sent to (readied by `startup::enable_reply_source`; STAMP's Location
    /// TLV reports that address too). A socket bound to one address needs
    /// nothing of this, and pays nothing.
    pub(super) reply_source: bool,
}

mod batched;
mod gro;
mod gro_send;
mod inspect;
mod plain;
mod stamp;
mod throttle;

use throttle::*;

/// Which echo loop a socket gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoopKind {
    /// One `recv_from`/`send_to` per datagram (`--batch 1`).
    Plain,
    /// Up to this many datagrams per `recvmmsg`/`sendmmsg`.
    Batched(usize),
    /// Up to this many GRO buffers per `recvmmsg`, echoed with GSO; the socket
    /// has UDP GRO on.
    Gro(usize),
}

/// Runs the loop of `kind` on one socket until a stop.
pub(super) fn serve(socket: &UdpSocket, context: LoopContext<'_>, kind: LoopKind) -> Counters {
    let mut state = LoopState::new(context);
    // DSCP reflection needs each request's TOS; without it, replies go
    // unmarked. Every loop, on every socket (threads sharing one socket set
    // it again, which changes nothing).
    if let Err(e) = crate::sys::enable_recv_tos(socket) {
        log::debug!("no IP_RECVTOS/IPV6_RECVTCLASS here ({e}): replies keep the default DSCP");
    }
    if context.stamp.is_some() {
        // STAMP replies report the request's TTL and, batched, its kernel
        // receive time; without them, 255 and the loop's clock.
        if let Err(e) = crate::sys::enable_recv_ttl(socket) {
            log::debug!("no IP_RECVTTL here ({e}): STAMP replies report TTL 255");
        }
        if kind != LoopKind::Plain {
            if let Err(e) = crate::sys::enable_rx_timestamps(socket) {
                log::debug!("no SO_TIMESTAMPNS here ({e}): STAMP receive times from the clock");
            }
        }
    }
    match kind {
        LoopKind::Plain => plain::plain_loop(socket, &mut state),
        LoopKind::Batched(batch) => {
            let mut batch = crate::sys::Batch::new(batch);
            if state.reply_source {
                batch.reply_from_destination();
            }
            batched::batched_loop(socket, &mut state, &mut batch);
        }
        LoopKind::Gro(batch) => {
            let mut batch = crate::sys::GroBatch::new(batch);
            if state.reply_source {
                batch.reply_from_destination();
            }
            gro::gro_loop(socket, &mut state, &mut batch);
        }
    }
    state.counters
}

/// How often a loop reads the wall clock again (for [`is_known_reply`]).
const WALL_EVERY_NS: u64 = 10_000_000_000;

/// What one loop needs per datagram: counters, the stop policy and flag, and
/// whether debug lines are wanted (decided once, not per datagram).
struct LoopState<'a> {
    counters: Counters,
    context: LoopContext<'a>,
    debug: bool,
    send_log: Throttle,
    recv_log: Throttle,
    drop_log: Throttle,
    /// Warnings about loops and datagrams from the server's own socket.
    loop_log: Throttle,
    /// This loop's echo-loop detector; `None` with `--no-loop-detect`.
    loops: Option<LoopDetector>,
    /// The kernel's answer to "is this source this host?", for the server's
    /// wildcard sockets only: bound to one address, the guard's rules know
    /// the server's own socket.
    locals: Option<LocalAddrs>,
    /// The time of the current receive, ns since `context.origin`: read once
    /// per receive call, used by every check of what it brought.
    now_ns: u64,
    /// The wall clock's Unix seconds at `now_ns`, for the STAMP-reply check:
    /// derived from `now_ns` and `wall`, read again every [`WALL_EVERY_NS`].
    unix_secs: u32,
    /// (`now_ns`, Unix ns) when the wall clock was last read.
    wall: (u64, u64),
    /// This loop's STAMP reflector (`--stamp`), with its sessions when stateful.
    reflector: Option<Reflector>,
    /// Its replies' kernel transmit stamps, for Follow-Up Telemetry (a
    /// stateful reflector on a socket of its own; see `stamp`).
    tx: Option<stamp::TxStamps>,
    /// Replies leave from their request's destination address (a wildcard
    /// socket whose kernel reports it; see `sys::enable_reply_source`).
    reply_source: bool,
    /// Warnings about replies that could not.
    source_log: Throttle,
    /// The guard's rules' verdict on the last source: every datagram of a
    /// GRO buffer (or of a flood) has the same, and the rules never change
    /// while the loop runs.
    last_rules: Option<(SocketAddr, Decision)>,
}

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoVerdict {
    Echo,
    Drop,
    Stop,
}

impl<'a> LoopState<'a> {
    fn new(context: LoopContext<'a>) -> Self {
        let mut state = LoopState {
            counters: Counters::default(),
            context,
            debug: context.datagram_log && log::log_enabled!(log::Level::Debug),
            send_log: Throttle::default(),
            recv_log: Throttle::default(),
            drop_log: Throttle::every(DROP_LOG_INTERVAL),
            loop_log: Throttle::every(LOOP_LOG_INTERVAL),
            // A STAMP reply differs from its request, so the content detector
            // would never see its own bytes come back: the reflector's own
            // check (a reflected packet is refused) ends such loops instead.
            loops: (context.loop_detect && context.stamp.is_none())
                .then(|| LoopDetector::new().with_near_copy_budget(context.near_copy_budget)),
            locals: LocalAddrs::for_ports(context.rules.wildcard_ports()),
            now_ns: 0,
            unix_secs: 0,
            wall: (0, 0),
            reflector: context
                .stamp
                .cloned()
                .map(|config| Reflector::new(config).with_local(context.local)),
            tx: context
                .stamp
                .filter(|config| config.wants_tx_stamps())
                .map(|_| stamp::TxStamps::new()),
            reply_source: context.reply_source,
            source_log: Throttle::default(),
            last_rules: None,
        };
        state.tick();
        state
    }

    /// Reads the clock for the datagrams of one receive call.
    #[inline]
    fn tick(&mut self) {
        self.now_ns = u64::try_from(self.context.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let (at, unix_ns) = self.wall;
        if unix_ns == 0 || self.now_ns.wrapping_sub(at) >= WALL_EVERY_NS {
            self.read_wall();
        }
        let unix_ns = self.wall.1 + self.now_ns.saturating_sub(self.wall.0);
        self.unix_secs = (unix_ns / 1_000_000_000) as u32;
    }

    /// Reads the wall clock (rarely: it may step, the loop's clock does not).
    #[cold]
    fn read_wall(&mut self) {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.wall = (self.now_ns, unix_ns.max(1));
    }

    /// Whether the loop should end: the stop flag, raised by a signal, the
    /// embedding code, another loop or a stop datagram.
    fn stopping(&self) -> bool {
        self.context.stop.is_requested()
    }

    /// The one path for a receive call's result: `Some` with what it brought, or
    /// `None` after a wake-up (the stop poll's timeout or EINTR: look at the flag
    /// again) or an error, which is counted and logged at most once per interval.
    #[inline]
    fn received<T>(&mut self, result: io::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) if is_wake_up(&e) => None,
            Err(e) => {
                self.recv_failed(&e);
                None
            }
        }
    }

    /// The one path for echo accounting: books `datagrams` echoes of `bytes` bytes
    /// in all that the kernel accepted. At debug, one line per datagram in `sent`
    /// (length, destination), which is only walked then.
    #[inline]
    fn echoed<I>(&mut self, datagrams: usize, bytes: usize, sent: impl FnOnce() -> I)
    where
        I: IntoIterator<Item = (usize, SocketAddr)>,
    {
        self.counters.datagrams_echoed += datagrams as u64;
        self.counters.bytes_echoed += bytes as u64;
        if self.debug {
            for (len, to) in sent() {
                debug!("sent {len} bytes to {to}");
            }
        }
    }

    #[cold]
    fn send_failed(&mut self, errors: usize, what: &dyn fmt::Display) {
        self.counters.send_errors += errors as u64;
        if let Some(suppressed) = self.send_log.allow() {
            warn!(
                "cannot echo: {what}; going on{}",
                suppressed_note(suppressed)
            );
        }
    }

    /// The send errors of one batched echo, if any: counted, logged at most
    /// once per interval with the first error's reason.
    #[inline]
    fn batch_send_failed(&mut self, outcome: &crate::sys::EchoOutcome) {
        if outcome.errors == 0 {
            return;
        }
        let kind = outcome.first_error.map(io::Error::from);
        let why = kind
            .as_ref()
            .map(crate::error::describe)
            .unwrap_or_default();
        self.send_failed(
            outcome.errors,
            &format_args!(
                "{} of {} datagrams refused: {why}",
                outcome.errors,
                outcome.errors + outcome.sent
            ),
        );
    }

    /// Books the echoes of one send that left from the kernel's choice of
    /// source instead of their request's destination (wildcard sockets
    /// only): counted, logged at most once per interval.
    #[inline]
    fn unsourced(&mut self, outcome: &crate::sys::EchoOutcome) {
        if outcome.unsourced > 0 {
            self.unsourced_replies(outcome.unsourced, outcome.source_refused);
        }
    }

    #[cold]
    fn unsourced_replies(&mut self, unsourced: usize, refused: usize) {
        self.counters.unsourced_replies += unsourced as u64;
        if let Some(suppressed) = self.source_log.allow() {
            let why = if refused > 0 {
                "the kernel refused the address asked as their source"
            } else {
                "the kernel gave no address asked that can be a source (multicast, broadcast)"
            };
            warn!(
                "{unsourced} replies on {} left from the kernel's choice of source address: {why}; a connected client may not accept them{}",
                self.context.local,
                suppressed_note(suppressed)
            );
        }
    }

    #[cold]
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

    /// Books the datagrams one receive took after the stop datagram (their
    /// lengths): read, so received, but neither echoed nor dropped. Without
    /// this they would vanish from the books.
    #[cold]
    fn taken_after_stop(&mut self, lens: impl Iterator<Item = usize>) {
        let mut taken = 0;
        for len in lens {
            taken += 1;
            self.counters.bytes_received += len as u64;
        }
        self.counters.datagrams_received += taken;
        self.counters.taken_after_stop += taken;
        if self.debug && taken > 0 {
            debug!("{taken} datagrams taken after the stop datagram are not echoed");
        }
    }

    fn publish(&self) {
        if let Some(published) = self.context.published {
            published.store(&self.counters);
        }
    }
}

/// The DSCP bits of the TOS / traffic-class byte (the low two are ECN).
const DSCP_MASK: u8 = 0xfc;

/// The TOS byte an echo goes back with: the request's DSCP, never its ECN
/// bits (an echo is Not-ECT: ECN is the path's business, not the echo's);
/// 0, which costs no control message, when there is none to copy.
#[inline]
fn reply_tos(received: Option<u8>) -> u8 {
    received.map_or(0, |tos| tos & DSCP_MASK)
}

/// A receive timeout (our stop poll) or an interrupted call: look at the flag, retry.
fn is_wake_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests;
