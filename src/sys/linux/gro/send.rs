//! [`GroBatch`]'s echo side: writing a reply into a datagram, queueing runs of
//! datagrams as `UDP_SEGMENT` messages, and sending them with one `sendmmsg`
//! (separately when the kernel refuses GSO). The pitfalls it avoids are in
//! the parent module's doc, the pointers' safety on [`GroBatch`].

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::ptr;

use super::{GRO_BUFFER_LEN, GroBatch, MAX_GSO_SEGMENTS};
use crate::sys::EchoOutcome;
use crate::sys::linux::cmsg::SendControl;
use crate::sys::linux::{Source, append_source, source_refusal, to_socket_addr};

/// One queued echo message: `datagrams` datagrams of slot `slot`, starting at
/// byte `offset` of its buffer, `bytes` long in all, sent with TOS `tos`
/// (0: no TOS message) and from `source`; `bare_control` is the length of
/// its control messages without the source one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Message {
    slot: usize,
    offset: usize,
    bytes: usize,
    segment: usize,
    datagrams: usize,
    tos: u8,
    bare_control: usize,
    source: Source,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            slot: 0,
            offset: 0,
            bytes: 0,
            segment: 0,
            datagrams: 0,
            tos: 0,
            bare_control: 0,
            source: Source::Kernel,
        }
    }
}

impl GroBatch {
    /// Datagram `k` of buffer `slot`, writable: the STAMP reflector turns a
    /// request into its reply in place (same length), then queues it.
    pub fn datagram_mut(&mut self, slot: usize, k: usize) -> &mut [u8] {
        let buffer = self.buffer(slot);
        let (segment, len) = (buffer.segment_size, buffer.data.len());
        let start = (k * segment).min(len);
        let end = (start + segment).min(len);
        let base = slot * GRO_BUFFER_LEN;
        &mut self.storage[base + start..base + end]
    }

    /// Queues datagrams `datagrams` of buffer `slot` (contiguous, in order) to
    /// go back to its source with TOS / traffic class `tos` (0: none, and no
    /// control message for it): one `UDP_SEGMENT` message per up to
    /// [`MAX_GSO_SEGMENTS`] of them while GSO is on (a single datagram is a
    /// plain message), one message each otherwise. Returns how many it queued:
    /// fewer when the send list is full — [`flush`](Self::flush), then queue
    /// the rest. After a flush, the next call starts a new list.
    pub fn queue(&mut self, slot: usize, datagrams: Range<usize>, tos: u8) -> usize {
        if self.flushed {
            self.queued = 0;
            self.flushed = false;
        }
        let buffer = self.buffer(slot);
        let (len, segment, total) = (buffer.data.len(), buffer.segment_size, buffer.datagrams());
        let per_message = match u16::try_from(segment) {
            Ok(_) if self.gso => MAX_GSO_SEGMENTS,
            _ => 1,
        };
        let namelen = self.recv_hdrs[slot].msg_hdr.msg_namelen;
        // Only needed for a TOS or source message (their kinds follow the
        // destination).
        let to = if tos != 0 || self.reply_source {
            buffer.source
        } else {
            None
        };
        let name = self.addrs.as_mut_ptr().wrapping_add(slot).cast();
        let base = self
            .storage
            .as_mut_ptr()
            .wrapping_add(slot * GRO_BUFFER_LEN);
        let (mut next, end) = (datagrams.start, datagrams.end.min(total));
        while next < end && self.queued < self.send_hdrs.len() {
            let count = (end - next).min(per_message);
            let offset = (next * segment).min(len);
            let bytes = ((next + count) * segment).min(len) - offset;
            let j = self.queued;
            self.send_iovecs[j] = libc::iovec {
                iov_base: base.wrapping_add(offset).cast(),
                iov_len: bytes,
            };
            let hdr = &mut self.send_hdrs[j];
            hdr.msg_len = 0;
            hdr.msg_hdr.msg_name = name;
            hdr.msg_hdr.msg_namelen = namelen;
            hdr.msg_hdr.msg_flags = 0;
            let control = &mut self.send_controls[j];
            let mut bare = 0;
            if count > 1 {
                bare = control.segment(bare, segment as u16);
            }
            if tos != 0 {
                bare = control.tos(bare, to, tos);
            }
            let (controllen, source) = append_source(
                control,
                bare,
                self.reply_source,
                &self.recv_hdrs[slot].msg_hdr,
                to,
            );
            hdr.msg_hdr.msg_controllen = controllen as _;
            self.messages[j] = Message {
                slot,
                offset,
                bytes,
                segment,
                datagrams: count,
                tos,
                bare_control: bare,
                source,
            };
            self.queued += 1;
            next += count;
        }
        next.saturating_sub(datagrams.start)
    }

    /// Sends the queued messages in order, as few `sendmmsg` calls as it takes:
    /// a refused message is counted (all its datagrams) and skipped; a
    /// `UDP_SEGMENT` message refused with `EIO`/`EINVAL` switches GSO off and
    /// goes again as separate datagrams (see [`EchoOutcome::gso_refused`]).
    pub fn flush(&mut self, socket: &UdpSocket) -> EchoOutcome {
        let mut outcome = EchoOutcome::default();
        if self.flushed {
            return outcome;
        }
        self.flushed = true;
        let mut pos = 0;
        while pos < self.queued {
            let message = self.messages[pos];
            if !self.gso && message.datagrams > 1 {
                self.send_separately(socket, &message, &mut outcome);
                pos += 1;
                continue;
            }
            let end = if self.gso {
                self.queued
            } else {
                // Up to the next message queued with GSO before it was switched off.
                self.messages[pos..self.queued]
                    .iter()
                    .position(|m| m.datagrams > 1)
                    .map_or(self.queued, |k| pos + k)
            };
            let rest = &mut self.send_hdrs[pos..end];
            let vlen = libc::c_uint::try_from(rest.len()).unwrap_or(libc::c_uint::MAX);
            // SAFETY: each queued header points at a slot's source address of
            // the length the kernel reported, an iovec inside the received
            // bytes of that slot and a control buffer of the length it
            // declares (set in `queue`, before the call; see the invariants on
            // `GroBatch`).
            let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), rest.as_mut_ptr(), vlen, 0) };
            if n > 0 {
                for m in &self.messages[pos..pos + n as usize] {
                    outcome.sent += m.datagrams;
                    outcome.bytes += m.bytes;
                    m.source.count(&mut outcome, m.datagrams);
                }
                pos += n as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if message.source == Source::Destination && source_refusal(&err) {
                // First without the source: `EINVAL` may be the kernel's
                // refusal of it, not of GSO, and GSO, once off, stays off.
                // Should the bare message be refused too, GSO is turned off
                // and its datagrams go one by one, with the source again.
                self.messages[pos].source = Source::Refused;
                self.send_hdrs[pos].msg_hdr.msg_controllen = message.bare_control as _;
                continue;
            }
            let gso_refusal = matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL));
            if self.gso && message.datagrams > 1 && gso_refusal {
                self.gso = false;
                outcome
                    .gso_refused
                    .get_or_insert(err.raw_os_error().unwrap_or(0));
                continue; // the same message again, separately
            }
            // sendmmsg fails the call only when its first message fails: skip it.
            outcome.errors += message.datagrams;
            outcome.first_error.get_or_insert(err.kind());
            pos += 1;
        }
        outcome
    }

    /// Sends one queued message's datagrams one `sendmsg` each, with its TOS
    /// and, when it was to have one, its source (again, should it have been
    /// taken off before GSO was found refused); a datagram whose source the
    /// kernel refuses goes again without it.
    fn send_separately(&self, socket: &UdpSocket, message: &Message, outcome: &mut EchoOutcome) {
        let received = &self.recv_hdrs[message.slot].msg_hdr;
        let namelen = received.msg_namelen;
        let start = message.slot * GRO_BUFFER_LEN + message.offset;
        let data = &self.storage[start..start + message.bytes];
        let mut control = SendControl::ZERO;
        let wanted = message.source != Source::Kernel;
        let to = if message.tos != 0 || wanted {
            to_socket_addr(&self.addrs[message.slot], namelen)
        } else {
            None
        };
        let bare = if message.tos != 0 {
            control.tos(0, to, message.tos)
        } else {
            0
        };
        let (full, first_source) = append_source(&mut control, bare, wanted, received, to);
        for datagram in data.chunks(message.segment.max(1)) {
            let (mut controllen, mut source) = (full, first_source);
            let mut iov = libc::iovec {
                iov_base: datagram.as_ptr().cast_mut().cast(),
                iov_len: datagram.len(),
            };
            // SAFETY: msghdr is plain old data; all-zero is a valid (empty) header.
            let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
            hdr.msg_name = ptr::from_ref(&self.addrs[message.slot]).cast_mut().cast();
            hdr.msg_namelen = namelen;
            hdr.msg_iov = ptr::from_mut(&mut iov);
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.as_mut_ptr();
            loop {
                hdr.msg_controllen = controllen as _;
                // SAFETY: the header points at an iovec covering `datagram`
                // (live, only read by sendmsg despite the mut pointer), the
                // slot's source address with the length the kernel reported
                // for it (only read), and a control buffer holding at least
                // the length given (0: none read); all live for the call.
                let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &hdr, 0) };
                let result = if sent >= 0 {
                    Ok(sent as usize)
                } else {
                    Err(io::Error::last_os_error())
                };
                match &result {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if source == Source::Destination && source_refusal(e) => {
                        (controllen, source) = (bare, Source::Refused);
                        continue;
                    }
                    Ok(_) => source.count(outcome, 1),
                    Err(_) => {}
                }
                outcome.count(result);
                break;
            }
        }
    }

    /// The messages last queued (or flushed), in order, each as its buffer's
    /// slot and the range of that buffer's datagrams it carries: one
    /// kernel send each (one transmit-stamp key, `SOF_TIMESTAMPING_OPT_ID`)
    /// while GSO was on throughout the flush.
    pub fn queued_messages(&self) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
        self.messages[..self.queued].iter().map(|m| {
            let first = m.offset.checked_div(m.segment).unwrap_or(0);
            (m.slot, first..first + m.datagrams)
        })
    }

    /// The datagrams of the messages last queued (or flushed), in order, as
    /// (length, destination): for debug lines, walked only then.
    pub fn queued_datagrams(&self) -> impl Iterator<Item = (usize, SocketAddr)> + '_ {
        self.messages[..self.queued].iter().flat_map(move |m| {
            let to = to_socket_addr(
                &self.addrs[m.slot],
                self.recv_hdrs[m.slot].msg_hdr.msg_namelen,
            );
            (0..m.datagrams).filter_map(move |k| {
                let len = m.segment.min(m.bytes - (k * m.segment).min(m.bytes));
                to.map(|to| (len, to))
            })
        })
    }
}
