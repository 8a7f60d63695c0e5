//! [`Batch`]: a socket's receive slots and their echo with one `recvmmsg` and
//! one `sendmmsg` (see the parent module's doc), and the source message of a
//! reply, which [`GroBatch`](super::gro::GroBatch) shares.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use super::cmsg::{self, RecvControl, SendControl};
use super::{point_recv_headers, recv_batch, to_socket_addr};
use crate::sys::{EchoOutcome, RECV_BUFFER_LEN};

/// Receive and echo buffers for one socket and one thread.
///
/// # Safety of the self-referencing pointers
///
/// `recv_hdrs` (and their copies in `send_hdrs`) hold raw pointers into `addrs`,
/// `iovecs` and `controls` (a send header into `send_controls` instead), and
/// each iovec holds a raw pointer into `storage`. That is sound because:
///
/// - **The targets never move or shrink.** The `Vec`s pointed into
///   (`storage`, `addrs`, `iovecs`, `controls`, `send_controls`) are filled once in [`new`](Self::new) and
///   never pushed to, resized or dropped before the `Batch` itself, so their
///   heap storage keeps the addresses the pointers were taken from (moving the
///   `Batch` moves only the `Vec` handles).
/// - **Rust writes to `iovecs` only between syscalls.** [`recv`](Self::recv)
///   and [`echo`](Self::echo) set `iov_len` through `&mut self` *before* they
///   pass the headers to the kernel (and `echo` the send control messages;
///   [`slot_mut`](Self::slot_mut) lets the STAMP reflector write a reply
///   into a slot), and the kernel dereferences the stored pointers only
///   inside that one `recvmmsg`/`sendmmsg` call. No Rust reference into
///   `iovecs`, `addrs`, the controls or `storage` is alive across a call,
///   and `&mut self` rules out another thread touching them meanwhile. The
///   stored pointers are raw, so they assert no exclusivity of their own that
///   the write could break; they are only read by the kernel, after the write.
/// - **The write keeps the pointer's promise.** `iov_len` is only ever set to
///   `RECV_BUFFER_LEN` (before a receive) or to a slot's datagram length
///   (before an echo: as received), so every iovec still covers memory inside its own slot of
///   `storage`; `iov_base` is never written. A control length is
///   `RECV_CONTROL_LEN` (receive) or what `SendControl` wrote (send).
pub struct Batch {
    /// `capacity` slots of `RECV_BUFFER_LEN` bytes, back to back.
    storage: Vec<u8>,
    /// Source address of each slot, filled by the kernel (the tests in
    /// `linux/tests/` write one).
    pub(super) addrs: Vec<libc::sockaddr_storage>,
    /// Each slot's receive control messages (TOS, time stamp, TTL).
    controls: Vec<RecvControl>,
    /// Each slot's send control message (its TOS), written by `echo`.
    send_controls: Vec<SendControl>,
    /// One iovec per slot, pointing into `storage`.
    iovecs: Vec<libc::iovec>,
    /// Receive headers, one per slot.
    recv_hdrs: Vec<libc::mmsghdr>,
    /// Echo headers: copies of the receive headers of the slots being sent back.
    send_hdrs: Vec<libc::mmsghdr>,
    /// Payload length and source message of each echo header.
    send_meta: Vec<SendMeta>,
    /// How many slots the last receive filled.
    filled: usize,
    /// Whether each echo leaves from its request's destination address
    /// ([`reply_from_destination`](Self::reply_from_destination)).
    reply_source: bool,
}

/// What an echo header carries besides its bytes: its length, the control
/// length without the source message (sent again with only that when the
/// kernel refuses the source), and where its source stands.
#[derive(Debug, Clone, Copy)]
struct SendMeta {
    len: usize,
    bare_control: usize,
    source: Source,
}

/// The source message of one reply (see `cmsg`'s module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Not asked for (a socket bound to one address): the kernel's choice.
    Kernel,
    /// The request's destination, in a source message.
    Destination,
    /// Asked for, but the kernel gave no destination that can be a source.
    Unknown,
    /// The kernel refused the destination as a source (`EINVAL`,
    /// `ENETUNREACH`: [`source_refusal`]): sent again without it.
    Refused,
}

impl Source {
    /// Books a reply that went out with this source.
    pub(super) fn count(self, outcome: &mut EchoOutcome, datagrams: usize) {
        match self {
            Source::Kernel | Source::Destination => {}
            Source::Unknown => outcome.unsourced += datagrams,
            Source::Refused => {
                outcome.unsourced += datagrams;
                outcome.source_refused += datagrams;
            }
        }
    }
}

/// Whether a send that named a source may have failed for that source:
/// `EINVAL` (an IPv6 source no interface holds, a family mismatch) or
/// `ENETUNREACH` (an IPv4 source not of this host, e.g. an address removed
/// since the request came). Such a send goes again without its source; if
/// the cause was elsewhere, it fails again and counts as a send error.
pub(super) fn source_refusal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENETUNREACH))
}

/// Appends, when `wanted`, the source message of a reply to `to` whose
/// request's receive header is `received` to `control` at `at`: the new
/// length and `Destination`, or `at` and `Unknown` when the kernel gave no
/// usable destination; `at` and `Kernel` when not `wanted`.
pub(super) fn append_source(
    control: &mut SendControl,
    at: usize,
    wanted: bool,
    received: &libc::msghdr,
    to: Option<SocketAddr>,
) -> (usize, Source) {
    if !wanted {
        return (at, Source::Kernel);
    }
    match cmsg::reply_source(received).and_then(|from| control.source(at, to, from)) {
        Some(end) => (end, Source::Destination),
        None => (at, Source::Unknown),
    }
}

// SAFETY: the raw pointers in the headers and iovecs point only into heap
// buffers owned by the same struct (never shared, never reallocated; see the
// invariants on `Batch`), so moving a whole batch to another thread moves
// everything they point to with it.
unsafe impl Send for Batch {}

impl Batch {
    /// Buffers for up to `capacity` datagrams per syscall (at least 1).
    pub fn new(capacity: usize) -> Batch {
        let capacity = capacity.max(1);
        let mut batch = Batch {
            storage: vec![0u8; capacity * RECV_BUFFER_LEN],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { mem::zeroed() }; capacity],
            controls: vec![RecvControl::ZERO; capacity],
            send_controls: vec![SendControl::ZERO; capacity],
            iovecs: Vec::with_capacity(capacity),
            recv_hdrs: Vec::with_capacity(capacity),
            send_hdrs: Vec::with_capacity(capacity),
            send_meta: Vec::with_capacity(capacity),
            filled: 0,
            reply_source: false,
        };
        point_recv_headers(
            &mut batch.storage,
            RECV_BUFFER_LEN,
            &mut batch.addrs,
            &mut batch.controls,
            &mut batch.iovecs,
            &mut batch.recv_hdrs,
        );
        batch
    }

    /// How many datagrams one receive can take.
    pub fn capacity(&self) -> usize {
        self.recv_hdrs.len()
    }

    /// Receives up to `capacity` datagrams: blocks (up to the socket's read
    /// timeout) for the first, then takes only those already queued. Returns how
    /// many slots were filled; EINTR and timeouts come back as errors to classify.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_with(socket, libc::MSG_WAITFORONE)
    }

    /// Takes only the datagrams already queued, without blocking: `WouldBlock`
    /// when there are none (pair with [`wait_readable`](super::wait_readable)).
    pub fn recv_queued(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_with(socket, libc::MSG_DONTWAIT)
    }

    fn recv_with(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        self.filled = 0;
        // SAFETY: every header points at a live sockaddr_storage, an iovec
        // covering a live RECV_BUFFER_LEN slot and a live control buffer of
        // RECV_CONTROL_LEN bytes (the invariants on `Batch`).
        self.filled = unsafe {
            recv_batch(
                socket,
                &mut self.recv_hdrs,
                &mut self.iovecs,
                RECV_BUFFER_LEN,
                flags,
            )
        }?;
        Ok(self.filled)
    }

    /// The `i`-th datagram of the last receive and its source (`None` for an
    /// address family other than IPv4/IPv6, which a UDP/IP socket never reports).
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        assert!(i < self.filled, "slot {i} was not filled");
        let len = self.recv_hdrs[i].msg_len as usize;
        let start = i * RECV_BUFFER_LEN;
        let source = to_socket_addr(&self.addrs[i], self.recv_hdrs[i].msg_hdr.msg_namelen);
        (&self.storage[start..start + len], source)
    }

    /// The TOS / traffic class datagram `i` of the last receive arrived with,
    /// when the socket asked for it ([`enable_recv_tos`](crate::sys::enable_recv_tos)).
    pub fn tos(&self, i: usize) -> Option<u8> {
        assert!(i < self.filled, "slot {i} was not filled");
        cmsg::tos(&self.recv_hdrs[i].msg_hdr)
    }

    /// The kernel's receive time of datagram `i` of the last receive (ns
    /// since the Unix epoch, `CLOCK_REALTIME`), when the socket asked for it
    /// ([`enable_rx_timestamps`](crate::sys::enable_rx_timestamps)).
    pub fn rx_time_ns(&self, i: usize) -> Option<u64> {
        assert!(i < self.filled, "slot {i} was not filled");
        cmsg::rx_time_ns(&self.recv_hdrs[i].msg_hdr)
    }

    /// The TTL / hop limit datagram `i` arrived with, when the socket asked
    /// for it ([`enable_recv_ttl`](crate::sys::enable_recv_ttl)).
    pub fn ttl(&self, i: usize) -> Option<u8> {
        assert!(i < self.filled, "slot {i} was not filled");
        cmsg::ttl(&self.recv_hdrs[i].msg_hdr)
    }

    /// The address datagram `i` was sent to, when the socket asked for it
    /// ([`enable_recv_destination`](crate::sys::enable_recv_destination)).
    pub fn destination(&self, i: usize) -> Option<std::net::IpAddr> {
        assert!(i < self.filled, "slot {i} was not filled");
        cmsg::destination(&self.recv_hdrs[i].msg_hdr)
    }

    /// Sends slot `i`'s datagram to `to` instead of back to its source (a
    /// STAMP Return Path the operator allows); `datagram(i)` then names `to`.
    pub fn set_destination(&mut self, i: usize, to: SocketAddr) {
        assert!(i < self.filled, "slot {i} was not filled");
        let addr = socket2::SockAddr::from(to);
        let len = (addr.len() as usize).min(mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: `addr` holds `addr.len()` initialised bytes of a sockaddr
        // for `to` (at most a sockaddr_in6, smaller than the storage); they
        // are copied into slot i's own sockaddr_storage, which nothing else
        // borrows now (the kernel reads it only during `echo`).
        unsafe {
            ptr::copy_nonoverlapping(
                addr.as_ptr().cast::<u8>(),
                ptr::from_mut(&mut self.addrs[i]).cast::<u8>(),
                len,
            );
        }
        self.recv_hdrs[i].msg_hdr.msg_namelen = len as libc::socklen_t;
    }

    /// Slot `i`'s whole buffer (`RECV_BUFFER_LEN` bytes), writable: the
    /// STAMP reflector builds a reply over the request in place (as long as
    /// the request, so the echo sends exactly the reply).
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.filled, "slot {i} was not filled");
        let start = i * RECV_BUFFER_LEN;
        &mut self.storage[start..start + RECV_BUFFER_LEN]
    }

    /// From now on every echo leaves from the address its request was sent
    /// to (an `IP_PKTINFO` / `IPV6_PKTINFO` message of its own), for a
    /// socket bound to the wildcard address that asked for destinations
    /// ([`enable_reply_source`](crate::sys::enable_reply_source)). Where the
    /// kernel gives none, or refuses it, the echo goes from its own choice
    /// ([`EchoOutcome::unsourced`]).
    pub fn reply_from_destination(&mut self) {
        self.reply_source = true;
    }

    /// Sends the datagrams of the slots for which `reply(i)` is `Some(tos)`
    /// back to their sources, in order, each with that TOS / traffic class
    /// as a control message of its own (none for 0, so unmarked traffic
    /// costs nothing extra) and, with
    /// [`reply_from_destination`](Self::reply_from_destination), its
    /// request's destination as its source, retrying after partial sends,
    /// sending again without the source a message whose source the kernel
    /// may have refused (`source_refusal`), and skipping refused ones.
    pub fn echo(
        &mut self,
        socket: &UdpSocket,
        mut reply: impl FnMut(usize) -> Option<u8>,
    ) -> EchoOutcome {
        self.send_hdrs.clear();
        self.send_meta.clear();
        let mut outcome = EchoOutcome::default();
        for i in 0..self.filled {
            let Some(tos) = reply(i) else {
                continue;
            };
            let mut hdr = self.recv_hdrs[i];
            let len = hdr.msg_len as usize;
            self.iovecs[i].iov_len = len;
            hdr.msg_len = 0;
            hdr.msg_hdr.msg_flags = 0;
            let (bare, controllen, source) = if tos == 0 && !self.reply_source {
                (0, 0, Source::Kernel)
            } else {
                let to = to_socket_addr(&self.addrs[i], hdr.msg_hdr.msg_namelen);
                let control = &mut self.send_controls[i];
                let bare = if tos == 0 { 0 } else { control.tos(0, to, tos) };
                let (end, source) =
                    append_source(control, bare, self.reply_source, &hdr.msg_hdr, to);
                (bare, end, source)
            };
            set_control(&mut hdr.msg_hdr, &mut self.send_controls[i], controllen);
            self.send_hdrs.push(hdr);
            self.send_meta.push(SendMeta {
                len,
                bare_control: bare,
                source,
            });
        }
        let mut pos = 0;
        while pos < self.send_hdrs.len() {
            let rest = &mut self.send_hdrs[pos..];
            let vlen = libc::c_uint::try_from(rest.len()).unwrap_or(libc::c_uint::MAX);
            // SAFETY: the headers are copies of receive headers: each points at a
            // live source address of the length the kernel reported, at an iovec
            // whose length is the slot's datagram's, inside a live slot, and at
            // no control buffer or its slot's send control of the length
            // written (set above, before the call; see the invariants on `Batch`).
            let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), rest.as_mut_ptr(), vlen, 0) };
            if n > 0 {
                let n = n as usize;
                outcome.sent += n;
                for meta in &self.send_meta[pos..pos + n] {
                    outcome.bytes += meta.len;
                    meta.source.count(&mut outcome, 1);
                }
                pos += n;
                continue;
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let meta = &mut self.send_meta[pos];
            if meta.source == Source::Destination && source_refusal(&err) {
                // The source it named: the same message again without it.
                meta.source = Source::Refused;
                let hdr = &mut self.send_hdrs[pos].msg_hdr;
                let bare = meta.bare_control;
                hdr.msg_controllen = bare as _;
                if bare == 0 {
                    hdr.msg_control = ptr::null_mut();
                }
                continue;
            }
            // sendmmsg fails the call only when its first message fails: skip it.
            outcome.errors += 1;
            outcome.first_error.get_or_insert(err.kind());
            pos += 1;
        }
        outcome
    }
}

/// Points a send header at `control` when it holds `len` bytes of messages,
/// at none otherwise.
fn set_control(hdr: &mut libc::msghdr, control: &mut SendControl, len: usize) {
    hdr.msg_controllen = len as _;
    hdr.msg_control = if len == 0 {
        ptr::null_mut()
    } else {
        control.as_mut_ptr()
    };
}
