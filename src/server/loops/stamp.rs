//! `--stamp` in the echo loops: the [`Reflector`](crate::stamp::Reflector)
//! turns each request that passed [`LoopState::inspect`] into its reply in
//! place, in the buffer it was received into, and the loop sends the replies
//! as it sends echoes — one `sendmmsg` per batch, a GRO buffer's replies as
//! `UDP_SEGMENT` messages (they are as long as their requests, so they keep
//! the segment size; only their contents differ).
//!
//! What each loop gives the reflector:
//!
//! - **Receive time**: the kernel's `SO_TIMESTAMPNS` stamp in the batched and
//!   GRO loops — one per GRO buffer, the time its first datagram came in, so
//!   the later datagrams of a coalesced burst carry their burst's time — or
//!   the clock read right after the receive call where the kernel gave none
//!   (and in the plain loop).
//! - **Transmit time**: the clock read once per GRO buffer (batched loop:
//!   per receive), just before its replies are built and sent.
//! - **TOS and TTL**: from `IP_RECVTOS`/`IPV6_RECVTCLASS` and
//!   `IP_RECVTTL`/`IPV6_RECVHOPLIMIT`, one per buffer (the kernel coalesces
//!   only datagrams whose IP headers agree on both); the reply reports the
//!   TTL (255 without one) and goes back with the request's DSCP, or the
//!   DSCP1 a Class of Service TLV asks for.
//!
//! - **Kernel transmit stamps** (Follow-Up Telemetry, stateful reflector on
//!   a socket of its own): the first reply whose request carries a
//!   Follow-Up Telemetry TLV turns on `SO_TIMESTAMPING` software transmit
//!   stamps for the socket (`OPT_ID`, `OPT_TSONLY`: each send numbered from
//!   0, stamp only), before that reply is sent; from then on every send is
//!   booked in a [`TxRing`] by its number (the send's reply's session and
//!   sequence number when its session asked for follow-up, nothing
//!   otherwise) and, after every send, the error queue is read without
//!   blocking and each stamp handed to the reflector's session. A refused
//!   send leaves the numbering in doubt (the kernel may or may not have
//!   counted it): the stamps are then turned off and on again, which
//!   restarts the kernel's numbering at 0, and the ring is cleared. Until
//!   a session asks, nothing of this runs: no stamps, no error-queue reads;
//!   a session idle time (60 s) after the last reply that asked, stamping
//!   goes off again.
//!   In the GRO loop a `UDP_SEGMENT` message is one send with one stamp (its
//!   first segment's), which every reply it carries shares.
//!
//! A reply is never longer than its request: one shorter than the base
//! packet (TWAMP-Light, 14 to 43 bytes) is refused, so a spoofed source can
//! never be sent more than it sent. Refusals are booked as drops: `short`,
//! `malformed` (a wrong HMAC), `loop` for a reflected packet coming back, or
//! `no-reply` for a request whose Return Path asked for none (RFC 9503).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::ops::Range;

use super::gro_send::{DropMarks, echo_run, flush};
use super::{LoopState, reply_tos};
use crate::server::guard::DropReason;
use crate::stamp::followup::{TxRing, TxTag};
use crate::stamp::{Arrival, Refusal};
use crate::sys::{Batch, GroBatch};

/// Replies that asked for follow-up noted per batch at most; later ones of
/// the same batch go without a transmit time.
const PENDING_MAX: usize = 1024;

/// A loop's kernel transmit stamps (see the module doc), its memory taken
/// when the loop starts.
pub(super) struct TxStamps {
    /// Stamping is on for the socket.
    on: bool,
    /// The kernel refused it: never asked again.
    refused: bool,
    ring: TxRing,
    /// The replies of the sends at hand that asked for follow-up, in send
    /// order: (batch slot, datagram of the slot, reply).
    pending: Vec<(usize, usize, TxTag)>,
    /// Sends with a reply that asked whose stamp was not read yet.
    awaiting: usize,
    /// When a reply last asked (the loop's clock, ns): stamping goes off
    /// again after [`IDLE_OFF_NS`] without one.
    asked_ns: u64,
}

/// How long stamping stays on after the last reply that asked for it: a
/// session's idle time (a forgotten session cannot ask any more), so one
/// stray Follow-Up Telemetry TLV does not make every later reply pay.
const IDLE_OFF_NS: u64 = crate::stamp::sessions::SESSION_IDLE_NS;

impl TxStamps {
    pub(super) fn new() -> TxStamps {
        TxStamps {
            on: false,
            refused: false,
            ring: TxRing::new(),
            pending: Vec::with_capacity(PENDING_MAX),
            awaiting: 0,
            asked_ns: 0,
        }
    }

    /// Turns stamping on (numbering from 0): false when the kernel refuses.
    /// Stamps left from an earlier time on are dropped first: their numbers
    /// are the old count's.
    fn enable(&mut self, socket: &UdpSocket) -> bool {
        let _ = crate::sys::read_tx_timestamps(socket, &mut |_, _| {});
        match crate::sys::enable_tx_timestamps(socket) {
            Ok(()) => {
                self.on = true;
                self.ring.reset();
                self.pending.clear();
                self.awaiting = 0;
                true
            }
            Err(e) => {
                log::debug!(
                    "no kernel transmit time stamps here ({e}): Follow-Up Telemetry without times"
                );
                self.on = false;
                self.refused = true;
                false
            }
        }
    }

    /// After a refused send: the numbering is in doubt. The stamps queued
    /// are dropped, stamping turned off and on (the kernel numbers from 0
    /// again), the ring cleared.
    #[cold]
    fn rearm(&mut self, socket: &UdpSocket) {
        let _ = crate::sys::read_tx_timestamps(socket, &mut |_, _| {});
        if let Err(e) = crate::sys::disable_tx_timestamps(socket) {
            log::debug!("cannot turn kernel transmit stamps off ({e})");
        }
        self.enable(socket);
    }

    /// No reply asked for a while: stamping off, so replies cost no stamp
    /// again (the next that asks turns it back on, numbering from 0).
    #[cold]
    fn disable(&mut self, socket: &UdpSocket) {
        if let Err(e) = crate::sys::disable_tx_timestamps(socket) {
            log::debug!("cannot turn kernel transmit stamps off ({e})");
            return;
        }
        let _ = crate::sys::read_tx_timestamps(socket, &mut |_, _| {});
        self.on = false;
        self.ring.reset();
        self.pending.clear();
        self.awaiting = 0;
    }
}

impl LoopState<'_> {
    /// Turns the request in `buf` into its reply in place (as long as the
    /// request) and returns the TOS to send it with and, when a Return Path
    /// the operator allows says so, where to send it instead of the source;
    /// or `None` when the reflector refuses it (booked as a drop: `short`, `malformed`,
    /// `loop` for a reflected packet, or `no-reply` when it asked for none). `at` is the reply's place in the
    /// sends to come (batch slot, datagram of the slot), for its kernel
    /// transmit stamp when its session asked for follow-up.
    pub(super) fn reflect(
        &mut self,
        socket: &UdpSocket,
        buf: &mut [u8],
        source: SocketAddr,
        arrival: &Arrival,
        transmit: SystemTime,
        at: (usize, usize),
    ) -> Option<(u8, Option<SocketAddr>)> {
        let reflector = self.reflector.as_mut()?;
        let refusal = match reflector.reflect_in_place(buf, source, arrival, transmit, self.now_ns)
        {
            Ok(reply) => {
                if let Some(to) = reply.to {
                    if let Some(reason) = self.redirect_refused(to) {
                        self.dropped(reason, buf.len(), source);
                        return None;
                    }
                }
                if let (Some(tag), Some(tx)) = (reply.follow_up, &mut self.tx) {
                    note_follow_up(tx, socket, at, tag, self.now_ns);
                }
                let tos = reply.tos.unwrap_or_else(|| reply_tos(arrival.tos));
                return Some((tos, reply.to));
            }
            Err(refusal) => refusal,
        };
        let reason = match refusal {
            Refusal::Short => DropReason::Short,
            Refusal::Malformed => DropReason::Malformed,
            Refusal::Reflected => DropReason::Loop,
            Refusal::NoReply => DropReason::NoReply,
        };
        self.dropped(reason, buf.len(), source);
        None
    }

    /// Why a reply a Return Path sends to `to` instead of the request's
    /// source must not go, if it must not: `to` passes the guard as a
    /// source would — not one of the server's own sockets, nor an address
    /// no reply goes to, and within its own `--rate-limit` budget, so forged
    /// sources, each with a budget of its own, cannot pour more than that
    /// onto one address. `--allow` (whom to answer) is not asked: where a
    /// reply may be redirected is `--stamp-return-path-allow`'s to say.
    fn redirect_refused(&mut self, to: SocketAddr) -> Option<DropReason> {
        use crate::server::guard::Decision;
        if self.is_own_socket(to) {
            return Some(DropReason::BadSource);
        }
        match self.context.rules.check(to) {
            Decision::Drop(DropReason::NotAllowed) | Decision::Echo => {}
            Decision::Drop(reason) => return Some(reason),
        }
        let limiter = self.context.limiter?;
        (!limiter.allow_at(to.ip(), self.now_ns)).then_some(DropReason::RateLimited)
    }

    /// Before a STAMP pass: stamps of earlier sends that came late are read
    /// now, so this pass's Follow-Up Telemetry can report them.
    pub(super) fn tx_prepare(&mut self, socket: &UdpSocket) {
        if self.tx.as_ref().is_some_and(|tx| tx.on && tx.awaiting > 0) {
            self.tx_read(socket);
        }
    }

    /// After a send of `messages` (each: batch slot and the range of its
    /// datagrams one kernel send carried), in order; `failed`: some send was
    /// refused or GSO given up, so the kernel's numbering is in doubt. Books
    /// each send's reply that asked for follow-up by its number, then reads
    /// the stamps queued. Nothing while stamping is off.
    pub(super) fn tx_sent(
        &mut self,
        socket: &UdpSocket,
        messages: impl Iterator<Item = (usize, Range<usize>)>,
        failed: bool,
    ) {
        let Some(tx) = self.tx.as_mut().filter(|tx| tx.on) else {
            return;
        };
        if failed {
            tx.rearm(socket);
            return;
        }
        let mut p = 0;
        for (slot, datagrams) in messages {
            let mut tag = None;
            while let Some(&(s, k, t)) = tx.pending.get(p) {
                if s > slot || (s == slot && k >= datagrams.end) {
                    break;
                }
                if s == slot && k >= datagrams.start {
                    tag = Some(t);
                }
                p += 1;
            }
            tx.awaiting += usize::from(tag.is_some());
            tx.ring.sent(tag);
        }
        tx.pending.drain(..p);
        if self.now_ns.saturating_sub(tx.asked_ns) > IDLE_OFF_NS {
            tx.disable(socket);
            return;
        }
        self.tx_read(socket);
    }

    /// Reads the transmit stamps queued, without blocking, and hands each
    /// that belongs to a reply that asked to its session.
    fn tx_read(&mut self, socket: &UdpSocket) {
        let (Some(tx), Some(reflector)) = (self.tx.as_mut(), self.reflector.as_mut()) else {
            return;
        };
        let mut found = 0;
        let read = crate::sys::read_tx_timestamps(socket, &mut |key, ns| {
            if let Some(tag) = tx.ring.take(key) {
                reflector.transmitted(tag, ns);
                found += 1;
            }
        });
        tx.awaiting = match read {
            // An empty queue: a stamp not there by now was lost (a late one
            // is still matched when it comes).
            Ok(0) | Err(_) => 0,
            Ok(_) => tx.awaiting.saturating_sub(found),
        };
    }

    /// Sends one datagram to `to` with TOS `tos` (0: no control message)
    /// and, on a wildcard socket, from `from`, the address its request was
    /// sent to (without one, or when the kernel refuses it, from the
    /// kernel's choice, booked as such), and books it. True when it went
    /// out at the first try (so the kernel's transmit-stamp count is sure);
    /// false when refused, or sent again without `from`.
    pub(super) fn send_one(
        &mut self,
        socket: &UdpSocket,
        data: &[u8],
        to: SocketAddr,
        tos: u8,
        from: Option<IpAddr>,
    ) -> bool {
        let mut sourced = crate::sys::EchoOutcome::default();
        let mut sent = crate::sys::send_to_from(socket, data, to, tos, from);
        // EINVAL, ENETUNREACH: the kernel may refuse the source (see
        // `sys::send_to_from`); sent again without it, the datagram fails
        // again if that was not the cause.
        let refusal = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::NetworkUnreachable
            )
        };
        if from.is_some() && matches!(&sent, Err(e) if refusal(e)) {
            sent = crate::sys::send_to_from(socket, data, to, tos, None);
            sourced.source_refused = 1;
            sourced.unsourced = 1;
        } else if self.reply_source && from.is_none() {
            sourced.unsourced = 1;
        }
        let ok = sent.is_ok() && sourced.source_refused == 0;
        match sent {
            Ok(sent) => {
                self.echoed(1, sent, || [(sent, to)]);
                self.unsourced(&sourced);
            }
            Err(e) => self.send_failed(
                1,
                &format_args!(
                    "{} bytes to {to}: {}",
                    data.len(),
                    crate::error::describe(&e)
                ),
            ),
        }
        ok
    }
}

/// Notes a reply whose session asked for follow-up, turning stamping on
/// first if it is off (before the reply is sent, so its send is numbered).
fn note_follow_up(
    tx: &mut TxStamps,
    socket: &UdpSocket,
    at: (usize, usize),
    tag: TxTag,
    now_ns: u64,
) {
    tx.asked_ns = now_ns;
    if !tx.on && (tx.refused || !tx.enable(socket)) {
        return;
    }
    if tx.pending.len() < PENDING_MAX {
        tx.pending.push((at.0, at.1, tag));
    }
}

/// A kernel receive time (ns since the Unix epoch), or `fallback`.
fn received_at(kernel_ns: Option<u64>, fallback: SystemTime) -> SystemTime {
    kernel_ns.map_or(fallback, |ns| UNIX_EPOCH + Duration::from_nanos(ns))
}

/// The batched loop's STAMP pass: every slot `keep` holds (`Some`, below
/// `end`) is reflected in place and its TOS set to the reply's; a refused
/// one is no longer kept. `fallback` is the receive time for slots without
/// a kernel stamp.
pub(super) fn reflect_slots(
    socket: &UdpSocket,
    state: &mut LoopState<'_>,
    batch: &mut Batch,
    keep: &mut [Option<u8>],
    end: usize,
    fallback: SystemTime,
) {
    state.tx_prepare(socket);
    let transmit = SystemTime::now();
    for (i, kept) in keep.iter_mut().enumerate().take(end) {
        if kept.is_none() {
            continue;
        }
        let (request, Some(source)) = batch.datagram(i) else {
            continue;
        };
        let request_len = request.len();
        let arrival = Arrival {
            received: received_at(batch.rx_time_ns(i), fallback),
            tos: batch.tos(i),
            ttl: batch.ttl(i),
            destination: batch.destination(i),
        };
        let buf = &mut batch.slot_mut(i)[..request_len];
        *kept = match state.reflect(socket, buf, source, &arrival, transmit, (i, 0)) {
            Some((tos, to)) => {
                if let Some(to) = to {
                    batch.set_destination(i, to);
                }
                Some(tos)
            }
            None => None,
        };
    }
}

/// The GRO loop's STAMP pass over datagrams `..end` of buffer `slot` (those
/// `drops` marks were dropped by the guard): each is reflected in place and
/// queued in runs of replies with the same TOS (one `UDP_SEGMENT` message
/// per run); a refusal splits a run.
pub(super) fn reflect_buffer(
    socket: &UdpSocket,
    state: &mut LoopState<'_>,
    batch: &mut GroBatch,
    slot: usize,
    end: usize,
    drops: &DropMarks,
    fallback: SystemTime,
) {
    let Some(source) = batch.buffer(slot).source else {
        return;
    };
    let arrival = Arrival {
        received: received_at(batch.rx_time_ns(slot), fallback),
        tos: batch.tos(slot),
        ttl: batch.ttl(slot),
        destination: batch.destination(slot),
    };
    state.tx_prepare(socket);
    let transmit = SystemTime::now();
    let (mut start, mut run_tos) = (0, 0);
    for k in 0..end {
        if drops.is_marked(k) {
            echo_run(socket, state, batch, slot, start..k, run_tos);
            start = k + 1;
            continue;
        }
        let request = batch.datagram_mut(slot, k);
        match state.reflect(socket, request, source, &arrival, transmit, (slot, k)) {
            Some((tos, Some(to))) => {
                // A Return Path the operator allows: this reply alone, to
                // `to`, after everything queued before it (in order, for
                // the transmit-stamp numbering).
                echo_run(socket, state, batch, slot, start..k, run_tos);
                flush(socket, state, batch);
                let from = batch.reply_source(slot);
                let sent = state.send_one(socket, batch.datagram_mut(slot, k), to, tos, from);
                state.tx_sent(socket, std::iter::once((slot, k..k + 1)), !sent);
                start = k + 1;
            }
            Some((tos, None)) => {
                if k > start && tos != run_tos {
                    echo_run(socket, state, batch, slot, start..k, run_tos);
                    start = k;
                }
                run_tos = tos;
            }
            None => {
                echo_run(socket, state, batch, slot, start..k, run_tos);
                start = k + 1;
            }
        }
    }
    echo_run(socket, state, batch, slot, start..end, run_tos);
}

#[cfg(all(test, target_os = "linux", not(udp_echo_portable)))]
mod tests {
    use super::*;

    /// The stamps' numbers read from `socket`'s error queue now.
    fn keys(socket: &UdpSocket) -> Vec<u32> {
        let mut keys = Vec::new();
        crate::sys::read_tx_timestamps(socket, &mut |key, _| keys.push(key)).unwrap();
        keys
    }

    #[test]
    fn stamping_goes_on_numbered_from_zero_off_again_and_on_anew() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        socket.send_to(b"before", to).unwrap();
        let mut tx = TxStamps::new();
        assert!(
            tx.enable(&socket),
            "this kernel gives software transmit stamps"
        );
        socket.send_to(b"a", to).unwrap();
        socket.send_to(b"b", to).unwrap();
        // Loopback stamps as the send leaves: queued by the time it returns.
        assert_eq!(keys(&socket), [0, 1]);
        tx.disable(&socket);
        assert!(!tx.on);
        socket.send_to(b"c", to).unwrap();
        assert_eq!(keys(&socket), [0u32; 0], "off: no stamps");
        assert!(tx.enable(&socket));
        socket.send_to(b"d", to).unwrap();
        assert_eq!(keys(&socket), [0], "numbered from 0 again");
        tx.rearm(&socket);
        socket.send_to(b"e", to).unwrap();
        assert_eq!(keys(&socket), [0], "after a refused send: from 0 again");
    }
}
