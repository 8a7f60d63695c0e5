//! Linux UDP GRO on receive and UDP GSO on send (Linux ≥ 5.0), behind a safe API.
//!
//! With `UDP_GRO` set on a socket ([`enable_gro`]) the kernel may hand over a
//! burst of same-size datagrams from one source as one buffer, with a `UDP_GRO`
//! control message giving the segment size; every datagram of the buffer has
//! that size except the last, which may be shorter. [`GroBatch`] receives up to
//! `capacity` such buffers with one `recvmmsg` (64 KiB each, plus a control
//! buffer) and echoes any contiguous run of a buffer's datagrams back to its
//! source as one message with a `UDP_SEGMENT` control message, so the kernel
//! splits it back into the same datagrams; several messages go in one
//! `sendmmsg`.
//!
//! Pitfalls others hit (quinn-udp and its issues, msquic, quiche, envoy), and
//! what this module does about each:
//!
//! - `UDP_SEGMENT` is only ever a per-message control message, never a socket
//!   option: a socket-level segment size would cut up a later, larger echo.
//! - The control message is added only when a message really spans more than
//!   one segment: with it, the kernel applies its GSO checks (and may refuse)
//!   even to a single datagram.
//! - At most [`MAX_GSO_SEGMENTS`] segments per message (the limit of kernels
//!   before 6.11, which newer ones raised to 128); longer runs are split.
//! - A GSO send can fail with `EIO` (no checksum offload, IPsec) or `EINVAL`
//!   (e.g. IPv6 GSO on some kernels, checksums off): the refused message is
//!   sent again as separate datagrams and GSO stays off for this batch, which
//!   [`EchoOutcome::gso_refused`](crate::sys::EchoOutcome::gso_refused) reports once.
//! - `MSG_TRUNC`/`MSG_CTRUNC` are reported ([`GroBuffer::truncated`]), never
//!   silently echoed short.
//! - A buffer never mixes sources, but a `recvmmsg` batch does: every message
//!   goes back to its own slot's source.
//!
//! The headers point into the buffers as in [`Batch`](super::Batch), with the
//! same reasoning (see [`GroBatch`]): the `Vec`s pointed into are never
//! reallocated, and Rust writes the lengths and the segment size only between
//! syscalls, through `&mut self`.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::ptr;

use super::{point_recv_headers, setsockopt_int, to_socket_addr};
use crate::sys::GroBuffer;

/// Bytes per receive buffer: the largest payload one UDP buffer can carry,
/// coalesced or not (the UDP length field is 16 bits).
pub const GRO_BUFFER_LEN: usize = 65536;

/// Segments per `UDP_SEGMENT` send at most: `UDP_MAX_SEGMENTS` of kernels
/// before 6.11 (later ones accept 128).
pub const MAX_GSO_SEGMENTS: usize = 64;

use super::cmsg::{RecvControl, SendControl};
use send::Message;

mod send;

/// GRO receive buffers and GSO echo messages for one socket and one thread.
///
/// # Safety of the self-referencing pointers
///
/// Each receive header points at its slot's source address (`addrs`), its
/// iovec (`iovecs`, pointing into `storage`) and its control buffer
/// (`controls`); each send header at its own iovec (`send_iovecs`, pointing
/// into `storage` too), its own `send_controls` entry and a slot's address.
/// As for [`Batch`](super::Batch):
///
/// - **The targets never move or shrink**: every `Vec` pointed into is filled
///   in [`new`](Self::new) and never resized before the batch is dropped.
/// - **Rust writes what the kernel reads only between syscalls**, through
///   `&mut self` ([`recv`](Self::recv) resets the lengths, [`queue`](Self::queue)
///   fills a send header, its iovec and segment size); the kernel reads them
///   only inside the one `recvmmsg`/`sendmmsg`/`sendto` call.
/// - **Every length stays inside its target**: receive iovecs cover exactly
///   their `GRO_BUFFER_LEN` slot, a send iovec a part of the received bytes of
///   its slot, an address length is what the kernel reported for that slot,
///   and a control length is its buffer's size or the space of the messages
///   `SendControl` wrote into it (at most its size).
pub struct GroBatch {
    /// `capacity` buffers of `GRO_BUFFER_LEN` bytes, back to back.
    storage: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<RecvControl>,
    recv_hdrs: Vec<libc::mmsghdr>,
    /// How many slots the last receive filled.
    filled: usize,
    /// Per filled slot, read once after the receive: its source and the
    /// kernel's segment size. [`buffer`](Self::buffer) is called for every
    /// datagram of a STAMP reflection, and walking the control messages
    /// and converting the address each time was 5% of the reflector.
    sources: Vec<Option<SocketAddr>>,
    segments: Vec<Option<usize>>,
    send_iovecs: Vec<libc::iovec>,
    send_controls: Vec<SendControl>,
    send_hdrs: Vec<libc::mmsghdr>,
    messages: Vec<Message>,
    /// Messages queued (a prefix of the send vectors).
    queued: usize,
    /// The queued messages were flushed: the next `queue` starts a new list.
    flushed: bool,
    /// Whether runs of datagrams go out as one `UDP_SEGMENT` message each.
    gso: bool,
    /// Whether echoes leave from their buffer's destination address
    /// ([`reply_from_destination`](Self::reply_from_destination)).
    reply_source: bool,
}

// SAFETY: the raw pointers in the headers and iovecs point only into heap
// buffers owned by the same struct (never shared, never reallocated; see
// above), so moving the whole batch to another thread moves what they point to.
unsafe impl Send for GroBatch {}

/// Turns UDP GRO on for `socket` (`UDP_GRO`, Linux ≥ 5.0): from then on a
/// receive may return several datagrams in one buffer, so only a loop that
/// splits them ([`GroBatch`]) may read this socket. An error means the kernel
/// lacks it; nothing changed then.
pub fn enable_gro(socket: &UdpSocket) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_UDP, libc::UDP_GRO, 1)
}

impl GroBatch {
    /// Buffers for up to `capacity` receives per syscall (at least 1), and room
    /// for `capacity + MAX_GSO_SEGMENTS` echo messages per `sendmmsg`. Memory:
    /// `capacity × 64 KiB` of buffers, touched only as large buffers arrive.
    pub fn new(capacity: usize) -> GroBatch {
        let capacity = capacity.max(1);
        let send_capacity = capacity + MAX_GSO_SEGMENTS;
        let mut batch = GroBatch {
            storage: vec![0u8; capacity * GRO_BUFFER_LEN],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { mem::zeroed() }; capacity],
            iovecs: Vec::with_capacity(capacity),
            controls: vec![RecvControl::ZERO; capacity],
            recv_hdrs: Vec::with_capacity(capacity),
            filled: 0,
            sources: vec![None; capacity],
            segments: vec![None; capacity],
            send_iovecs: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                };
                send_capacity
            ],
            send_controls: vec![SendControl::ZERO; send_capacity],
            send_hdrs: Vec::with_capacity(send_capacity),
            messages: vec![Message::default(); send_capacity],
            queued: 0,
            flushed: false,
            gso: true,
            reply_source: false,
        };
        point_recv_headers(
            &mut batch.storage,
            GRO_BUFFER_LEN,
            &mut batch.addrs,
            &mut batch.controls,
            &mut batch.iovecs,
            &mut batch.recv_hdrs,
        );
        for j in 0..send_capacity {
            // SAFETY: as above.
            let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
            hdr.msg_hdr.msg_iov = ptr::from_mut(&mut batch.send_iovecs[j]);
            hdr.msg_hdr.msg_iovlen = 1;
            // The control buffer is always pointed at; its length (0, or
            // what `queue` wrote) decides whether the kernel reads it.
            hdr.msg_hdr.msg_control = batch.send_controls[j].as_mut_ptr();
            batch.send_hdrs.push(hdr);
        }
        batch
    }

    /// How many buffers one receive can take.
    pub fn capacity(&self) -> usize {
        self.recv_hdrs.len()
    }

    /// Whether echoes still go out as `UDP_SEGMENT` messages (until the kernel
    /// refuses one, or [`disable_gso`](Self::disable_gso)).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends every datagram as a message of its own from now on (the fallback
    /// after a refusal; also a test hook).
    pub fn disable_gso(&mut self) {
        self.gso = false;
    }

    /// From now on every echo leaves from the address its buffer was sent to
    /// (one for all its datagrams: the kernel coalesces only one flow's), an
    /// `IP_PKTINFO` / `IPV6_PKTINFO` message beside `UDP_SEGMENT` and the
    /// TOS, for a socket bound to the wildcard address that asked for
    /// destinations ([`enable_reply_source`](crate::sys::enable_reply_source)).
    /// Where the kernel gives none, or refuses it, the echo goes from its own
    /// choice ([`EchoOutcome::unsourced`](crate::sys::EchoOutcome::unsourced)).
    pub fn reply_from_destination(&mut self) {
        self.reply_source = true;
    }

    /// Receives up to `capacity` buffers: blocks (up to the socket's read
    /// timeout) for the first, then takes only those already queued
    /// (`MSG_WAITFORONE`). Returns how many slots were filled; EINTR and
    /// timeouts come back as errors to classify.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_with(socket, libc::MSG_WAITFORONE)
    }

    /// Takes only the buffers already queued, without blocking: `WouldBlock`
    /// when there are none.
    pub fn recv_queued(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_with(socket, libc::MSG_DONTWAIT)
    }

    fn recv_with(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        self.filled = 0;
        self.queued = 0;
        self.flushed = false;
        // SAFETY: every header points at a live sockaddr_storage, an iovec
        // covering a live GRO_BUFFER_LEN slot and a live control buffer of
        // RECV_CONTROL_LEN bytes (the invariants on `GroBatch`).
        self.filled = unsafe {
            super::recv_batch(
                socket,
                &mut self.recv_hdrs,
                &mut self.iovecs,
                GRO_BUFFER_LEN,
                flags,
            )
        }?;
        for (i, hdr) in self.recv_hdrs[..self.filled].iter().enumerate() {
            self.sources[i] = to_socket_addr(&self.addrs[i], hdr.msg_hdr.msg_namelen);
            self.segments[i] = super::cmsg::gro_segment_size(&hdr.msg_hdr);
        }
        Ok(self.filled)
    }

    /// Buffer `i` of the last receive: its bytes, source, segment size and
    /// whether it was cut short.
    pub fn buffer(&self, i: usize) -> GroBuffer<'_> {
        assert!(i < self.filled, "slot {i} was not filled");
        let hdr = &self.recv_hdrs[i];
        let len = (hdr.msg_len as usize).min(GRO_BUFFER_LEN);
        let start = i * GRO_BUFFER_LEN;
        GroBuffer::new(
            &self.storage[start..start + len],
            self.sources[i],
            self.segments[i],
            hdr.msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
        )
    }

    /// The kernel's receive time of buffer `i` of the last receive (ns since
    /// the Unix epoch, `CLOCK_REALTIME`), when the socket asked for it
    /// (`enable_rx_timestamps`).
    pub fn rx_time_ns(&self, i: usize) -> Option<u64> {
        assert!(i < self.filled, "slot {i} was not filled");
        super::cmsg::rx_time_ns(&self.recv_hdrs[i].msg_hdr)
    }

    /// The TOS / traffic class buffer `i` of the last receive arrived with
    /// (one for all its datagrams), when the socket asked for it
    /// ([`enable_recv_tos`](crate::sys::enable_recv_tos)).
    pub fn tos(&self, i: usize) -> Option<u8> {
        assert!(i < self.filled, "slot {i} was not filled");
        super::cmsg::tos(&self.recv_hdrs[i].msg_hdr)
    }

    /// The TTL / hop limit buffer `i` of the last receive arrived with, when
    /// the socket asked for it ([`enable_recv_ttl`](crate::sys::enable_recv_ttl)).
    pub fn ttl(&self, i: usize) -> Option<u8> {
        assert!(i < self.filled, "slot {i} was not filled");
        super::cmsg::ttl(&self.recv_hdrs[i].msg_hdr)
    }

    /// The address buffer `i` of the last receive was sent to (one for all
    /// its datagrams: the kernel coalesces only one flow's), when the socket
    /// asked for it ([`enable_recv_destination`](crate::sys::enable_recv_destination)).
    pub fn destination(&self, i: usize) -> Option<std::net::IpAddr> {
        assert!(i < self.filled, "slot {i} was not filled");
        super::cmsg::destination(&self.recv_hdrs[i].msg_hdr)
    }

    /// The address buffer `i`'s replies go from, when the batch replies from
    /// destinations ([`reply_from_destination`](Self::reply_from_destination))
    /// and the kernel said one usable as a source; `None`: the kernel's choice.
    pub fn reply_source(&self, i: usize) -> Option<std::net::IpAddr> {
        assert!(i < self.filled, "slot {i} was not filled");
        if !self.reply_source {
            return None;
        }
        super::cmsg::reply_source(&self.recv_hdrs[i].msg_hdr)
    }
}

#[cfg(test)]
mod tests;
