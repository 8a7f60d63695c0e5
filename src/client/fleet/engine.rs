//! The fleet's one probing thread: every target's probes leave from a few
//! unconnected sockets (one per address family in use), on the schedule's
//! timers, and every reply is matched to its target by source address and
//! booked in that target's [`Books`] — the checking path of ping, flood,
//! rate and STAMP (sequence, send time, whole body; lost only after the
//! timeout).
//!
//! Timing, as "numbers that are what they say" asks: kernel to kernel. Each
//! probe leaves in its own `sendto` and its round trip starts at the
//! kernel's transmit stamp of that send (`SO_TIMESTAMPING` with `OPT_ID`:
//! the stamp's key names the send, a ring maps it to the target's probe);
//! without one, at the time read just before that `sendto`, never a time
//! shared with another probe. Each reply is timed with the kernel's receive
//! stamp (`SO_TIMESTAMPNS`), moved onto the books' clock as flows do. So the
//! engine being late to a reply (a scrape, a reload, a busy host) does not
//! lengthen its round trip.
//!
//! Between timers the thread sleeps in `poll` on its sockets until the next
//! one is due: no spinning. Memory per target is its compact books, its
//! metrics' atomics and one or two timers; the receive buffers are shared.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use super::metrics::{FleetMetrics, Reply, TargetMetrics};
use super::schedule::{Kind, Schedule, Timer, first_due, next_due, phase_ns};
use super::spec::TargetSpec;
use crate::client::measure::books::Books;
use crate::client::measure::codec::{Codec, StampCodec};
use crate::client::measure::offload::{clock_pair, kernel_at};
use crate::client::probe::Clock;
use crate::client::stamp::StampBooks;
use crate::error::{Error, Result};
use crate::net::udp_table;
use crate::shutdown::Stop;
use crate::stamp::packet::ClassOfService;
use crate::stamp::{Key, Mode, TimeFormat};
use crate::sys::{self, Batch, PollFd};

/// A target the loader resolved: what to probe and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) spec: Arc<TargetSpec>,
    pub(crate) addr: SocketAddr,
}

/// The STAMP session fields every STAMP target shares.
#[derive(Clone)]
pub(crate) struct StampBase {
    pub(crate) key: Option<Key>,
    pub(crate) format: TimeFormat,
    pub(crate) ssid: u16,
}

/// Datagrams one `recvmmsg` takes.
const RECV_SLOTS: usize = 32;
/// The longest sleep: how soon a stop or a reload is seen with nothing due.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// How long after a probe's timeout its expiry timer fires: replies are
/// read at the start of every round, so one that came just in time (by its
/// kernel stamp) but is still queued when the timeout passes is booked as in
/// time, not as late after a loss.
const EXPIRY_GRACE_NS: u64 = 2_000_000;
/// The longest sleep while replies wait in the sockets for their turn.
const MAX_STAMPED_WAIT: Duration = Duration::from_millis(10);
/// The receive buffer asked for when `--recv-buf` is not given: a second of
/// replies of 10,000 targets, so a scrape or a reload stalling the thread
/// loses none.
const DEFAULT_RECV_BUF: usize = 4 << 20;

/// One target being probed.
struct Slot {
    spec: Arc<TargetSpec>,
    addr: SocketAddr,
    books: Books,
    /// Boxed: most targets are echo targets, and a STAMP session's figures
    /// are ten times an echo slot.
    stamp: Option<Box<StampBooks>>,
    metrics: Arc<TargetMetrics>,
    generation: u32,
    interval_ns: u64,
    timeout_ns: u64,
    dscp_sent: u8,
}

/// Socket options from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SocketConfig {
    pub(crate) recv_buf: Option<usize>,
    pub(crate) send_buf: Option<usize>,
}

/// The probing thread's state.
pub(crate) struct Engine {
    clock: Clock,
    origin_unix_ns: u64,
    stamp: StampBase,
    /// Boxed, so the vector holds pointers and each slot takes its own size
    /// (the vector's spare capacity is 8 bytes a target, not a whole slot).
    slots: Vec<Option<Box<Slot>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    by_target: HashMap<Arc<str>, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    schedule: Schedule,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// Each socket's sends by transmit-stamp key, where the kernel stamps them.
    tx4: Option<TxRing>,
    tx6: Option<TxRing>,
    /// Every socket gets kernel receive stamps: replies need not be read
    /// as they come ([`wait`](Self::wait)).
    rx_stamped: bool,
    sockets: SocketConfig,
    inbox: Batch,
    /// Where each probe is written before its send.
    out: Vec<u8>,
    metrics: Arc<FleetMetrics>,
    /// The kernel's drop count of our sockets, last read.
    drops_seen: u64,
    /// Send errors logged, to log only the first few.
    send_errors_logged: u64,
}

impl Engine {
    /// An engine with no target yet, on `clock` (whose 0 is `origin_unix_ns`).
    pub(crate) fn new(
        clock: Clock,
        origin_unix_ns: u64,
        stamp: StampBase,
        sockets: SocketConfig,
        metrics: Arc<FleetMetrics>,
    ) -> Engine {
        Engine {
            clock,
            origin_unix_ns,
            stamp,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            by_target: HashMap::new(),
            by_addr: HashMap::new(),
            schedule: Schedule::default(),
            v4: None,
            v6: None,
            tx4: None,
            tx6: None,
            rx_stamped: true,
            sockets,
            inbox: Batch::new(RECV_SLOTS),
            out: vec![0; crate::net::MAX_UDP_PAYLOAD_V6],
            metrics,
            drops_seen: 0,
            send_errors_logged: 0,
        }
    }

    /// Probes until `stop`, taking new target sets from `updates`.
    pub(crate) fn run(&mut self, updates: &Receiver<Vec<Resolved>>, stop: &Stop) {
        let mut next_drops = 0;
        while !stop.is_requested() {
            // Only the newest set matters.
            if let Some(set) = updates.try_iter().last() {
                self.apply(set);
            }
            // What came while asleep first: a reply in the socket before its
            // probe's expiry timer fires is booked as in time (its kernel
            // stamp says when it came).
            self.receive();
            let now = self.clock.now_ns();
            let mut fired = 0u32;
            while let Some(timer) = self.schedule.pop_due(now) {
                self.fire(timer);
                fired += 1;
                if fired % 256 == 0 {
                    // A long run of sends: take the replies meanwhile.
                    self.receive();
                }
            }
            self.receive();
            if now >= next_drops {
                self.read_drops();
                next_drops = now + 1_000_000_000;
            }
            let wait = self.schedule.next_due().map_or(MAX_WAIT, |due| {
                Duration::from_nanos(due.saturating_sub(self.clock.now_ns()))
            });
            self.wait(wait.min(MAX_WAIT));
        }
    }

    /// Sleeps until the next timer (`wait`, rounded up to a millisecond).
    ///
    /// With kernel receive stamps the sockets are not watched: a reply is
    /// timed by its stamp whenever it is read, so replies wait in the socket
    /// until the next timer and are taken in batches, and the thread wakes
    /// at most a thousand times a second instead of once per reply (10,000
    /// times a second with 10,000 targets; each wake-up costs more than the
    /// reply). Without them (portable build) the sockets are watched, so a
    /// reply is read, and timed, as it comes.
    fn wait(&self, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        if self.rx_stamped {
            // A stamp waiting in the socket is moved onto the books' clock
            // when read, through the realtime clock: a short wait keeps a
            // slewed clock's error out of it (≤ 5 µs in 10 ms at the
            // 500 ppm the kernel slews at most).
            let wait = wait.min(MAX_STAMPED_WAIT);
            if let Err(e) = sys::poll(&mut [], wait) {
                log::debug!("fleet: poll failed: {e}");
                std::thread::sleep(wait);
            }
            return;
        }
        let polled = match (&self.v4, &self.v6) {
            (Some(a), Some(b)) => {
                sys::poll(&mut [PollFd::new(a, false), PollFd::new(b, false)], wait)
            }
            (Some(a), None) | (None, Some(a)) => sys::poll(&mut [PollFd::new(a, false)], wait),
            (None, None) => {
                std::thread::sleep(wait);
                Ok(0)
            }
        };
        if let Err(e) = polled {
            log::debug!("fleet: poll failed: {e}");
            std::thread::sleep(wait);
        }
    }

    /// Opens the socket of `addr`'s family, if not yet open.
    fn socket_for(&mut self, addr: SocketAddr) -> Result<()> {
        let (cell, tx, bind): (&mut Option<UdpSocket>, &mut Option<TxRing>, SocketAddr) = match addr
        {
            SocketAddr::V4(_) => (
                &mut self.v4,
                &mut self.tx4,
                "0.0.0.0:0".parse().expect("address"),
            ),
            SocketAddr::V6(_) => (
                &mut self.v6,
                &mut self.tx6,
                "[::]:0".parse().expect("address"),
            ),
        };
        if cell.is_some() {
            return Ok(());
        }
        let fail = |what: &'static str| {
            move |source: io::Error| Error::Socket {
                what,
                addr: bind,
                source,
            }
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(bind),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(fail("create the fleet's socket"))?;
        if bind.is_ipv6() {
            socket
                .set_only_v6(true)
                .map_err(fail("make the fleet's IPv6 socket IPv6-only"))?;
        }
        let recv_buf = self.sockets.recv_buf.unwrap_or(DEFAULT_RECV_BUF);
        if let Err(e) = socket.set_recv_buffer_size(recv_buf) {
            log::warn!("fleet: cannot set SO_RCVBUF to {recv_buf}: {e}");
        }
        if let Some(size) = self.sockets.send_buf {
            if let Err(e) = socket.set_send_buffer_size(size) {
                log::warn!("fleet: cannot set SO_SNDBUF to {size}: {e}");
            }
        }
        socket
            .bind(&bind.into())
            .map_err(fail("bind the fleet's socket"))?;
        socket
            .set_nonblocking(true)
            .map_err(fail("make the fleet's socket non-blocking"))?;
        let socket: UdpSocket = socket.into();
        if let Err(e) = sys::enable_rx_timestamps(&socket) {
            log::warn!("fleet: no kernel receive time stamps ({e}): replies timed in user space");
            self.rx_stamped = false;
        }
        if let Err(e) = sys::enable_recv_tos(&socket) {
            log::debug!("fleet: cannot read the replies' TOS here: {e}");
        }
        // Round trips from the kernel's transmit stamp of each probe, as
        // ping's: the host's own send path is not in them.
        *tx = match sys::enable_tx_timestamps(&socket) {
            Ok(()) => Some(TxRing::new()),
            Err(e) => {
                log::debug!(
                    "fleet: no kernel transmit stamps ({e}): round trips from the send call"
                );
                None
            }
        };
        *cell = Some(socket);
        Ok(())
    }

    /// Handles one timer.
    fn fire(&mut self, timer: Timer) {
        let i = timer.slot as usize;
        let Some(slot) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if slot.generation != timer.generation {
            return;
        }
        match timer.kind {
            Kind::Expire => {
                slot.books.expire(self.clock.now_ns(), &mut |_| {});
                publish(slot, None);
            }
            Kind::Send => {
                let now = self.clock.now_ns();
                slot.books.expire(now, &mut |_| {});
                if slot
                    .spec
                    .settings
                    .rounds
                    .is_some_and(|rounds| slot.books.next_seq() > rounds)
                {
                    // --rounds sent: no more sends; the expiry timers
                    // already queued settle the last probes.
                    publish(slot, None);
                    return;
                }
                let (socket, tx) = match slot.addr {
                    SocketAddr::V4(_) => (self.v4.as_ref(), self.tx4.as_mut()),
                    SocketAddr::V6(_) => (self.v6.as_ref(), self.tx6.as_mut()),
                };
                if let Some(socket) = socket {
                    let seq = slot.books.next_seq();
                    let sent_at = send(slot, socket, &mut self.out, &self.clock);
                    match sent_at {
                        Ok(at) => {
                            if let Some(tx) = tx {
                                tx.sent(timer.slot, timer.generation, seq);
                            }
                            self.metrics.process.probes_sent.inc();
                            self.schedule.push(Timer {
                                due_ns: at
                                    .saturating_add(slot.timeout_ns)
                                    .saturating_add(EXPIRY_GRACE_NS),
                                kind: Kind::Expire,
                                ..timer
                            });
                        }
                        Err(e) => {
                            self.metrics.process.send_errors.inc();
                            if self.send_errors_logged < 10 {
                                self.send_errors_logged += 1;
                                log::warn!("fleet: send to {} failed: {e}", slot.spec.target);
                            }
                        }
                    }
                }
                publish(slot, None);
                let now = self.clock.now_ns();
                self.schedule.push(Timer {
                    due_ns: next_due(timer.due_ns, now, slot.interval_ns),
                    ..timer
                });
            }
        }
    }
}

/// Sends `slot`'s next probe on `socket`: its time read just before its own
/// send. Returns that time.
fn send(slot: &mut Slot, socket: &UdpSocket, out: &mut [u8], clock: &Clock) -> io::Result<u64> {
    let size = slot.spec.settings.size;
    let buf = &mut out[..size];
    let seq = slot.books.next_seq();
    let at = clock.now_ns();
    slot.books.codec().fill(buf, seq, slot.books.stamp(at));
    let sent = match slot.spec.settings.tos {
        Some(tos) => sys::send_to_tos(socket, buf, slot.addr, tos),
        None => socket.send_to(buf, slot.addr),
    };
    match sent {
        Ok(_) => {
            slot.books.sent(1, at);
            Ok(at)
        }
        Err(e) => {
            slot.books.send_error();
            Err(e)
        }
    }
}

/// Hands a target's books (and the reply that moved them) to its metrics.
fn publish(slot: &Slot, reply: Option<Reply>) {
    let counts = slot.books.counts();
    let stamp = slot
        .stamp
        .as_ref()
        .map(|s| s.figures(counts.lost, slot.books.outstanding()));
    slot.metrics.update(counts, reply, stamp);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

mod receive;
mod targets;
use receive::TxRing;

#[cfg(test)]
mod tests;
