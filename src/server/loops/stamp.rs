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
//! A reply is never longer than its request: one shorter than the base
//! packet (TWAMP-Light, 14 to 43 bytes) is refused, so a spoofed source can
//! never be sent more than it sent. Refusals are booked as drops: `short`,
//! `malformed` (a wrong HMAC), or `loop` for a reflected packet coming back.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::gro_send::{DropMarks, echo_run};
use super::{LoopState, reply_tos};
use crate::server::guard::DropReason;
use crate::stamp::{Arrival, Refusal};
use crate::sys::{Batch, GroBatch};

impl LoopState<'_> {
    /// Turns the request in `buf` into its reply in place (as long as the
    /// request) and returns the TOS to send it with, or `None` when the
    /// reflector refuses it (booked as a drop: `short`, `malformed`, or
    /// `loop` for a reflected packet).
    pub(super) fn reflect(
        &mut self,
        buf: &mut [u8],
        source: SocketAddr,
        arrival: &Arrival,
        transmit: SystemTime,
    ) -> Option<u8> {
        let reflector = self.reflector.as_mut()?;
        let refusal = match reflector.reflect_in_place(buf, source, arrival, transmit, self.now_ns)
        {
            Ok(reply) => return Some(reply.tos.unwrap_or_else(|| reply_tos(arrival.tos))),
            Err(refusal) => refusal,
        };
        let reason = match refusal {
            Refusal::Short => DropReason::Short,
            Refusal::Malformed => DropReason::Malformed,
            Refusal::Reflected => DropReason::Loop,
        };
        self.dropped(reason, buf.len(), source);
        None
    }

    /// Sends one datagram to `to` with TOS `tos` (0: no control message)
    /// and, on a wildcard socket, from `from`, the address its request was
    /// sent to (without one, or when the kernel refuses it, from the
    /// kernel's choice, booked as such), and books it.
    pub(super) fn send_one(
        &mut self,
        socket: &UdpSocket,
        data: &[u8],
        to: SocketAddr,
        tos: u8,
        from: Option<IpAddr>,
    ) {
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
    state: &mut LoopState<'_>,
    batch: &mut Batch,
    keep: &mut [Option<u8>],
    end: usize,
    fallback: SystemTime,
) {
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
        *kept = state.reflect(buf, source, &arrival, transmit);
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
    let transmit = SystemTime::now();
    let (mut start, mut run_tos) = (0, 0);
    for k in 0..end {
        if drops.is_marked(k) {
            echo_run(socket, state, batch, slot, start..k, run_tos);
            start = k + 1;
            continue;
        }
        let request = batch.datagram_mut(slot, k);
        match state.reflect(request, source, &arrival, transmit) {
            Some(tos) => {
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
