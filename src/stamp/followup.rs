//! The Follow-Up Telemetry TLV (RFC 8972 §4.7, type 7): the reflector's
//! transmit time of its *previous* reply in the session, taken where a
//! reply's own Timestamp field cannot be — after the reply has left. A
//! reply's Timestamp is written before the send (here: the clock read in
//! user space just before the batch goes out); the kernel's software
//! transmit stamp (`SO_TIMESTAMPING`, `SOF_TIMESTAMPING_TX_SOFTWARE`) is
//! known only once the datagram has left, so it can only travel in the
//! next reply.
//!
//! ```text
//! |                       Sequence Number                         |
//! |                  Follow-up Timestamp (64 bits)                |
//! |  Timestamp M  |                  Reserved                     |
//! ```
//!
//! - **Sequence Number**: the reflector's sequence number of the last reply
//!   it sent in the session (a stateful reflector's own numbering, RFC 8762
//!   §4.3): the reply this TLV's time belongs to.
//! - **Follow-up Timestamp**: when that reply was transmitted, in the format
//!   of this packet's Z bit (NTP or PTP, the reflector's).
//! - **Timestamp M(ode)**: how that time was taken, from the registry of
//!   RFC 8972 §5.5: 1 hardware assisted, 2 software local (the kernel's
//!   software stamp, this reflector's), 3 control plane; 0 here says there
//!   is none.
//! - **Reserved**: zero.
//!
//! What this reflector writes:
//!
//! - Stateless (no sessions, RFC 8972 §4.7 ties the TLV to the stateful
//!   mode): Sequence Number, Follow-up Timestamp, mode and reserved all
//!   zero, U clear (the TLV was understood; there is no session to report).
//! - Stateful, first reply of a session: all zero as well (there is no
//!   previous reply).
//! - Stateful, later replies: the previous reply's sequence number, and its
//!   kernel transmit time with mode 2 when the kernel gave one and it was
//!   read before this request was answered; otherwise timestamp and mode
//!   zero (no stamp yet, a kernel without transmit stamps, a socket shared
//!   by several loops): never the user-space reading, which is the previous
//!   reply's own Timestamp field already.
//!
//! A sender tells "no time" by a zero timestamp (and mode 0), as stamp-suite
//! does.

use std::net::SocketAddr;

use super::tlv::{TLV_HEADER_LEN, sender_header, timestamp_method};

/// The Follow-Up Telemetry TLV's type (RFC 8972 §4.7).
pub const TLV_FOLLOW_UP: u8 = 7;

/// Its value's length: sequence number, timestamp, mode and 3 reserved bytes.
pub const FOLLOW_UP_VALUE_LEN: usize = 16;

/// Its whole length: a 4-byte header and the 16-byte value.
pub const FOLLOW_UP_LEN: usize = TLV_HEADER_LEN + FOLLOW_UP_VALUE_LEN;

/// The fields of a Follow-Up Telemetry TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowUp {
    /// The reflector's sequence number of the reply the time belongs to.
    pub seq: u32,
    /// That reply's transmit time, on the wire format of the packet's Z bit;
    /// 0: none.
    pub timestamp: u64,
    /// How it was taken ([`timestamp_method`]); 0: none.
    pub mode: u8,
}

impl FollowUp {
    /// Whether it carries a time at all.
    pub fn has_time(&self) -> bool {
        self.timestamp != 0 && self.mode != 0
    }

    /// The 16 value bytes.
    pub fn value(&self) -> [u8; FOLLOW_UP_VALUE_LEN] {
        let mut v = [0u8; FOLLOW_UP_VALUE_LEN];
        v[..4].copy_from_slice(&self.seq.to_be_bytes());
        v[4..12].copy_from_slice(&self.timestamp.to_be_bytes());
        v[12] = self.mode;
        v
    }

    /// Reads a value: `None` unless it is exactly 16 bytes (the reserved
    /// bytes are ignored, as the RFC asks).
    pub fn from_value(v: &[u8]) -> Option<FollowUp> {
        if v.len() != FOLLOW_UP_VALUE_LEN {
            return None;
        }
        Some(FollowUp {
            seq: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            timestamp: u64::from_be_bytes([v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]]),
            mode: v[12],
        })
    }

    /// The TLV as a sender sends it: U set, type 7, length 16, value zero.
    pub fn request_tlv() -> [u8; FOLLOW_UP_LEN] {
        let mut tlv = [0u8; FOLLOW_UP_LEN];
        tlv[..TLV_HEADER_LEN].copy_from_slice(&sender_header(TLV_FOLLOW_UP, FOLLOW_UP_VALUE_LEN));
        tlv
    }

    /// What a stateful reflector reports before reply `seq` of a session:
    /// reply `seq - 1`'s kernel transmit time `tx_wire` (already in the
    /// packet's format), when it has one; all zero for a session's first
    /// reply.
    pub fn previous(seq: u32, tx_wire: Option<u64>) -> FollowUp {
        if seq == 0 {
            return FollowUp::default();
        }
        FollowUp {
            seq: seq.wrapping_sub(1),
            timestamp: tx_wire.unwrap_or(0),
            mode: if tx_wire.is_some() {
                timestamp_method::SW_LOCAL
            } else {
                0
            },
        }
    }
}

/// The reflector's answer to a well-formed (16-byte) Follow-Up Telemetry
/// TLV, whose `value` is rewritten in place; returns the TLV's flags (0:
/// understood). `previous` is what the session knows (see
/// [`FollowUp::previous`]); `None` (stateless): all zero.
pub fn reflect(value: &mut [u8], previous: Option<FollowUp>) -> u8 {
    if value.len() == FOLLOW_UP_VALUE_LEN {
        value.copy_from_slice(&previous.unwrap_or_default().value());
    }
    0
}

/// Which reply a kernel transmit stamp belongs to: its session (sender
/// address and SSID) and reflector sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxTag {
    /// The session's sender.
    pub source: SocketAddr,
    /// The session's SSID.
    pub ssid: u16,
    /// The reply's reflector sequence number.
    pub seq: u32,
}

/// Sends remembered for matching transmit stamps: far more than are ever
/// waiting for their stamp (the kernel stamps a send as it leaves, and the
/// loops read the stamps after every send).
pub const TX_RING: usize = 1024;

/// The replies each send of a socket carried, by the kernel's transmit-stamp
/// counter (`SOF_TIMESTAMPING_OPT_ID`: the socket's sends numbered from 0,
/// one per datagram sent plainly, one per `UDP_SEGMENT` message). Only
/// sends that carried a reply whose session asked for follow-up are
/// remembered; the others only advance the counter. A ring of the last
/// [`TX_RING`] sends, made once: nothing is allocated per reply.
#[derive(Debug)]
pub struct TxRing {
    next: u32,
    ring: Vec<(u32, Option<TxTag>)>,
}

impl Default for TxRing {
    fn default() -> Self {
        TxRing::new()
    }
}

impl TxRing {
    /// An empty ring, its memory taken now.
    pub fn new() -> TxRing {
        TxRing {
            next: 0,
            ring: vec![(u32::MAX, None); TX_RING],
        }
    }

    /// Books the socket's next send, which carried `tag`'s reply (or none
    /// that asked for follow-up).
    pub fn sent(&mut self, tag: Option<TxTag>) {
        let key = self.next;
        self.ring[key as usize % TX_RING] = (key, tag);
        self.next = key.wrapping_add(1);
    }

    /// The reply of the send the kernel numbered `key`, once: `None` when it
    /// carried none, was forgotten, or was taken already.
    pub fn take(&mut self, key: u32) -> Option<TxTag> {
        let (k, tag) = &mut self.ring[key as usize % TX_RING];
        if *k != key {
            return None;
        }
        tag.take()
    }

    /// Forgets every send and counts from 0 again (the kernel's counter was
    /// reset: stamping turned off and on).
    pub fn reset(&mut self) {
        self.next = 0;
        self.ring.fill((u32::MAX, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(seq: u32) -> TxTag {
        TxTag {
            source: SocketAddr::from(([192, 0, 2, 1], 9)),
            ssid: 3,
            seq,
        }
    }

    #[test]
    fn the_value_layout_is_rfc_8972s() {
        let f = FollowUp {
            seq: 0x0102_0304,
            timestamp: 0x1112_1314_1516_1718,
            mode: 2,
        };
        let v = f.value();
        assert_eq!(
            v,
            [
                1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 2, 0, 0, 0
            ]
        );
        assert_eq!(FollowUp::from_value(&v), Some(f));
        let mut reserved = v;
        reserved[13..].fill(0xff);
        assert_eq!(FollowUp::from_value(&reserved), Some(f), "reserved ignored");
        assert_eq!(
            FollowUp::request_tlv()[..4],
            [0x80, 7, 0, 16],
            "U set, type 7, length 16"
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_decodes_or_is_refused_without_panic() {
        let v = FollowUp {
            seq: 9,
            timestamp: u64::MAX,
            mode: 2,
        }
        .value();
        for len in 0..=v.len() + 1 {
            let mut buf = v.to_vec();
            buf.resize(len, 0);
            assert_eq!(FollowUp::from_value(&buf).is_some(), len == 16);
            let mut out = buf.clone();
            assert_eq!(reflect(&mut out, Some(FollowUp::previous(5, Some(1)))), 0);
            if len != 16 {
                assert_eq!(out, buf, "a wrong length is left alone");
            }
        }
        for bit in 0..v.len() * 8 {
            let mut flipped = v;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let f = FollowUp::from_value(&flipped).unwrap();
            assert_eq!(f.value()[..13], flipped[..13]);
        }
    }

    #[test]
    fn the_previous_reply_is_reported_and_nothing_is_invented() {
        assert_eq!(FollowUp::previous(0, Some(77)), FollowUp::default());
        let f = FollowUp::previous(5, Some(77));
        assert_eq!((f.seq, f.timestamp, f.mode), (4, 77, 2));
        assert!(f.has_time());
        let none = FollowUp::previous(5, None);
        assert_eq!((none.seq, none.timestamp, none.mode), (4, 0, 0));
        assert!(!none.has_time());
        let mut value = [0xaa; 16];
        reflect(&mut value, None);
        assert_eq!(value, [0; 16], "stateless: all zero");
    }

    #[test]
    fn transmit_stamps_find_their_reply_by_the_kernels_counter_once() {
        let mut ring = TxRing::new();
        ring.sent(None); // key 0: a reply without follow-up
        ring.sent(Some(tag(1))); // key 1
        assert_eq!(ring.take(0), None);
        assert_eq!(ring.take(1), Some(tag(1)));
        assert_eq!(ring.take(1), None, "taken once");
        assert_eq!(ring.take(2), None, "not sent yet");
        ring.sent(Some(tag(2)));
        for _ in 0..TX_RING {
            ring.sent(None);
        }
        assert_eq!(ring.take(2), None, "forgotten: the ring went round");
        ring.reset();
        ring.sent(Some(tag(7)));
        assert_eq!(ring.take(0), Some(tag(7)), "counted from 0 again");
    }
}
