//! What a probe looks like on the wire: the seam between the books, which
//! match and check replies, and the two formats a measured run can send — the
//! echo probe (`probe.rs`: sequence, send time, pattern) and the STAMP test
//! packet (RFC 8762/8972, `stamp/packet.rs`).
//!
//! The books give every probe a sequence number (u64, from 1) and a distinct
//! send stamp (ns of the run's monotonic clock). A codec writes both into a
//! probe and reads them back from a reply, so one matching and integrity path
//! serves both formats: the echoed stamp must be the one recorded, and a bit
//! flip anywhere the codec checks makes the reply corrupt.
//!
//! A STAMP packet carries the stamp as its sender time stamp: the run's
//! wall-clock origin plus the monotonic ns, in NTP or PTP format. Both formats
//! resolve better than a nanosecond, so the stamp reads back exactly (NTP's
//! fraction rounded up, see [`unix_ns_exact`]) and the copied time stamp
//! names its probe as the echo probe's send time does. Its 32-bit sequence
//! number is the books' minus one (STAMP counts from 0), mapped back to the
//! most recent probe with those low 32 bits, so a long run wraps correctly.

use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use super::books::{Answer, Books};
use crate::client::probe::{self, Check};
use crate::client::stamp::StampBooks;
use crate::stamp::followup::{FOLLOW_UP_LEN, FollowUp};
use crate::stamp::packet::{CLASS_OF_SERVICE_LEN, ClassOfService, TLV_CLASS_OF_SERVICE};
use crate::stamp::packet::{
    HMAC_TLV_LEN, TLV_HEADER_LEN, TLV_HMAC, sender_header, sign_hmac_tlv, write_extra_padding,
};
use crate::stamp::{Key, Mode, ReflectedPacket, SenderPacket, TimeFormat};

/// How probes are written and replies read.
#[derive(Clone)]
pub(crate) enum Codec {
    /// The echo probe: an RFC 862 server sends it back byte for byte.
    Echo,
    /// A STAMP session-sender's test packet; a session-reflector answers it.
    Stamp(Box<StampCodec>),
}

/// A STAMP session's fixed fields.
#[derive(Clone)]
pub(crate) struct StampCodec {
    pub(crate) mode: Mode,
    pub(crate) key: Option<Key>,
    pub(crate) format: TimeFormat,
    pub(crate) ssid: u16,
    /// Unix time in ns of the books' clock at 0.
    pub(crate) origin_unix_ns: u64,
    /// The Class of Service TLV every packet carries (`--tos`), DSCP1 set.
    pub(crate) cos: Option<ClassOfService>,
    /// Every packet carries a Follow-Up Telemetry TLV (after the CoS TLV).
    pub(crate) follow_up: bool,
    /// The TLVs of `--stamp-tlv`, after those.
    pub(crate) tlvs: crate::client::stamp::SenderTlvs,
    /// The error estimate every packet carries (S bit and error from the
    /// kernel, read once when the session starts).
    pub(crate) error_estimate: u16,
}

impl StampCodec {
    /// The length of the base packet and the TLVs that say something: the
    /// CoS TLV and, authenticated, the HMAC TLV that protects it (RFC 8972
    /// §4.8). A longer packet (`--size`) is made up with Extra Padding.
    #[cfg(test)]
    pub(crate) fn packet_len(&self) -> usize {
        self.mode.base_len()
            + self.cos.map_or(0, |_| CLASS_OF_SERVICE_LEN)
            + if self.follow_up { FOLLOW_UP_LEN } else { 0 }
            + self.tlvs.len()
            + self.hmac_tlv_len()
    }

    /// The HMAC TLV's length without padding: 20 authenticated with a CoS
    /// TLV, 0 otherwise.
    #[cfg(test)]
    fn hmac_tlv_len(&self) -> usize {
        if self.key.is_some() && (self.cos.is_some() || self.follow_up || !self.tlvs.is_empty()) {
            HMAC_TLV_LEN
        } else {
            0
        }
    }

    /// The sender time stamp of a probe stamped `sent_ns`.
    fn timestamp(&self, sent_ns: u64) -> u64 {
        let unix = self.origin_unix_ns.saturating_add(sent_ns);
        self.format.encode(UNIX_EPOCH + Duration::from_nanos(unix))
    }

    /// Unix time in ns of a copied sender time stamp, when it is one that
    /// [`timestamp`](Self::timestamp) writes: read back and re-encoded, it
    /// must give the same bits. An NTP fraction holds about 4.3 values per
    /// ns and reading back rounds them to one, so without this a flip of a
    /// low fraction bit would name the same ns and go unnoticed.
    fn exact_unix_ns(&self, timestamp: u64) -> Option<u64> {
        let ns = unix_ns_exact(self.format, timestamp);
        (self.format.encode(UNIX_EPOCH + Duration::from_nanos(ns)) == timestamp).then_some(ns)
    }

    /// The books' stamp a copied sender time stamp stands for (`u64::MAX`,
    /// which no probe carries, when it is before the run or not one we write).
    fn stamp_of(&self, timestamp: u64) -> u64 {
        self.exact_unix_ns(timestamp)
            .and_then(|ns| ns.checked_sub(self.origin_unix_ns))
            .unwrap_or(u64::MAX)
    }

    /// Whether what the reflector copies and signs is ours: the HMAC
    /// (authenticated), the SSID, our error estimate, a sender time stamp
    /// we could have written, and the CoS TLV's type, length and DSCP1 where
    /// the reply is long enough to hold it.
    fn intact(&self, reply: &ReflectedPacket, bytes: &[u8]) -> bool {
        if self.key.as_ref().is_some_and(|k| !k.verify(bytes)) {
            return false;
        }
        if reply.ssid != self.ssid
            || reply.sender_error_estimate != self.error_estimate
            || self.exact_unix_ns(reply.sender_timestamp).is_none()
        {
            return false;
        }
        let base = self.mode.base_len();
        match (self.cos, bytes.get(base..base + CLASS_OF_SERVICE_LEN)) {
            (Some(cos), Some(tlv)) => {
                tlv[1] == TLV_CLASS_OF_SERVICE
                    && tlv[2..4] == [0, 4]
                    && ClassOfService::from_value([tlv[4], tlv[5], tlv[6], tlv[7]]).dscp1
                        == cos.dscp1
            }
            _ => true,
        }
    }
}

/// The books' sequence number of the STAMP sequence number `wire`: the most
/// recent probe before `next_seq` whose number minus one has those low 32
/// bits (0, which names no probe, when there is none).
pub(crate) fn unwrap_seq(wire: u32, next_seq: u64) -> u64 {
    let Some(last) = next_seq.checked_sub(2) else {
        return 0;
    };
    let back = u64::from((last as u32).wrapping_sub(wire));
    last.checked_sub(back).map_or(0, |s| s + 1)
}

/// Unix time in ns of a 64-bit time stamp written by [`TimeFormat::encode`],
/// exactly: an NTP fraction is the ns × 2^32 / 10^9 rounded down, so
/// rounding its ns back up recovers them. NTP era 0 (until 2036).
pub(crate) fn unix_ns_exact(format: TimeFormat, t: u64) -> u64 {
    let (secs, low) = (t >> 32, t & 0xffff_ffff);
    match format {
        TimeFormat::Ntp => {
            let nanos = (low * 1_000_000_000).div_ceil(1 << 32);
            secs.saturating_sub(2_208_988_800) * 1_000_000_000 + nanos
        }
        TimeFormat::Ptp => secs * 1_000_000_000 + low,
    }
}

impl Codec {
    /// Writes probe `seq`, stamped `sent_ns`, into `buf` (its whole length).
    #[inline]
    pub(crate) fn fill(&self, buf: &mut [u8], seq: u64, sent_ns: u64) {
        match self {
            Codec::Echo => probe::fill(buf, seq, sent_ns),
            Codec::Stamp(s) => {
                SenderPacket {
                    seq: seq.wrapping_sub(1) as u32,
                    timestamp: s.timestamp(sent_ns),
                    error_estimate: s.error_estimate,
                    ssid: s.ssid,
                }
                .encode(s.mode, buf);
                let base = s.mode.base_len();
                let mut at = base;
                if let Some(cos) = s.cos {
                    buf[at..at + CLASS_OF_SERVICE_LEN].copy_from_slice(&cos.tlv());
                    at += CLASS_OF_SERVICE_LEN;
                }
                if s.follow_up {
                    buf[at..at + FOLLOW_UP_LEN].copy_from_slice(&FollowUp::request_tlv());
                    at += FOLLOW_UP_LEN;
                }
                // S_TxC: this session's packets so far, this one included.
                at += s.tlvs.write(&mut buf[at..], seq as u32);
                // Authenticated, any TLV comes with the HMAC TLV (even a
                // lone Extra Padding TLV: see `client::stamp::size::fixed_len`).
                let hmac_at =
                    (s.key.is_some() && (s.cos.is_some() || buf.len() > base)).then_some(at);
                if hmac_at.is_some() {
                    buf[at..at + TLV_HEADER_LEN].copy_from_slice(&sender_header(TLV_HMAC, 16));
                    at += HMAC_TLV_LEN;
                }
                // Past the TLVs: an Extra Padding TLV (`--size`, checked to
                // leave room for one), zeros otherwise.
                if write_extra_padding(&mut buf[at..]).is_none() {
                    buf[at..].fill(0);
                }
                if let Some(key) = &s.key {
                    if let Some(h) = hmac_at {
                        let (head, tlvs) = buf.split_at_mut(base);
                        sign_hmac_tlv(tlvs, h - base, &head[..4], key);
                    }
                    key.sign(buf);
                }
            }
        }
    }

    /// Reads `bytes` once for every check and figure that follows: STAMP
    /// decodes the reflected packet here and nowhere else.
    #[inline]
    pub(crate) fn decode<'a>(&self, bytes: &'a [u8]) -> Decoded<'a> {
        match self {
            Codec::Echo => Decoded {
                bytes,
                packet: None,
                intact: Cell::new(None),
            },
            Codec::Stamp(s) => Decoded::stamp(s.mode, bytes),
        }
    }

    /// The sequence number and send stamp a reply claims, in the books'
    /// terms (`None`: too short to be a reply of this format).
    #[inline]
    pub(crate) fn claims(&self, reply: &Decoded, next_seq: u64) -> Option<(u64, u64)> {
        match self {
            Codec::Echo => probe::header(reply.bytes),
            Codec::Stamp(s) => {
                let packet = reply.packet?;
                // Our own packet sent back by an echo service: where a
                // reflector writes its receive time and copies ours, zeros.
                // Not a reflection, so not a reply to any probe (foreign).
                if packet.receive_timestamp == 0 && packet.sender_timestamp == 0 {
                    return None;
                }
                Some((
                    unwrap_seq(packet.sender_seq, next_seq),
                    s.stamp_of(packet.sender_timestamp),
                ))
            }
        }
    }

    /// Whether the copied send stamp, rather than the body, decides which
    /// probe a reply answers when the two disagree (STAMP: the body has no
    /// pattern, [`vouches_for`](Self::vouches_for) only repeats the
    /// sequence number the header claims).
    #[inline]
    pub(crate) fn time_names_probe(&self) -> bool {
        matches!(self, Codec::Stamp(_))
    }

    /// Whether the reply's own content vouches for probe `seq` (the echo
    /// pattern of `seq`; STAMP: what the reflector copies is ours and its
    /// copied sequence number is `seq`'s — false for the probe the time
    /// stamp names when that number is the damaged field, hence
    /// [`time_names_probe`](Self::time_names_probe)).
    #[inline]
    pub(crate) fn vouches_for(&self, reply: &Decoded, seq: u64, size: usize) -> bool {
        match self {
            Codec::Echo => probe::body_matches(reply.bytes, seq, size),
            Codec::Stamp(s) => reply.packet.is_some_and(|packet| {
                packet.sender_seq == seq.wrapping_sub(1) as u32 && reply.intact(s)
            }),
        }
    }

    /// Checks a reply on its own (the header is the books' to check):
    /// intact, truncated (shorter than `size`) or corrupt, with the claimed
    /// sequence number and stamp.
    #[inline]
    pub(crate) fn check(&self, reply: &Decoded, size: usize, claimed: (u64, u64)) -> Check {
        let (seq, sent_ns) = claimed;
        match self {
            Codec::Echo => match probe::verify(reply.bytes, size) {
                Check::Intact { .. } => Check::Intact { seq, sent_ns },
                Check::Truncated { .. } => Check::Truncated { seq },
                _ => Check::Corrupt { seq },
            },
            Codec::Stamp(s) => match (reply.intact(s), reply.bytes.len().cmp(&size)) {
                (true, std::cmp::Ordering::Equal) => Check::Intact { seq, sent_ns },
                (true, std::cmp::Ordering::Less) => Check::Truncated { seq },
                _ => Check::Corrupt { seq },
            },
        }
    }

    /// [`claims`](Self::claims) of `bytes`, decoded for the asking.
    #[cfg(test)]
    pub(crate) fn header(&self, bytes: &[u8], next_seq: u64) -> Option<(u64, u64)> {
        self.claims(&self.decode(bytes), next_seq)
    }

    /// [`vouches_for`](Self::vouches_for) of `bytes`, decoded for the asking.
    #[cfg(test)]
    pub(crate) fn body_matches(&self, bytes: &[u8], seq: u64, size: usize) -> bool {
        self.vouches_for(&self.decode(bytes), seq, size)
    }

    /// [`check`](Self::check) of `bytes`, decoded for the asking.
    #[cfg(test)]
    pub(crate) fn verify(&self, bytes: &[u8], size: usize, claimed: (u64, u64)) -> Check {
        self.check(&self.decode(bytes), size, claimed)
    }
}

/// A reply as [`Codec::decode`] read it: the books' checks (sequence, send
/// time, whole body, HMAC) and the STAMP figures (one-way delays, TLV
/// answers, CoS) all work from this one reading. A STAMP reply is decoded
/// once, and its copied fields and HMAC checked at most once, however many
/// of the books' matching steps look at it. Lives on the stack: nothing is
/// allocated per reply.
pub(crate) struct Decoded<'a> {
    /// The datagram as received.
    pub(crate) bytes: &'a [u8],
    /// STAMP: the reflected packet (`None`: an echo reply, or shorter than
    /// the base packet).
    pub(crate) packet: Option<ReflectedPacket>,
    /// STAMP: whether what the reflector copies and signs is ours
    /// ([`StampCodec::intact`]), worked out when a check first asks, so a
    /// reply no check reaches (foreign) costs no HMAC.
    intact: Cell<Option<bool>>,
}

impl<'a> Decoded<'a> {
    /// Decodes `bytes` as a reflected packet of `mode`: the client's one
    /// call of [`ReflectedPacket::decode`].
    pub(crate) fn stamp(mode: Mode, bytes: &'a [u8]) -> Decoded<'a> {
        #[cfg(test)]
        READS.with(|r| r.set((r.get().0 + 1, r.get().1)));
        Decoded {
            bytes,
            packet: ReflectedPacket::decode(mode, bytes),
            intact: Cell::new(None),
        }
    }

    /// [`StampCodec::intact`] of this reply, worked out once.
    fn intact(&self, s: &StampCodec) -> bool {
        if let Some(known) = self.intact.get() {
            return known;
        }
        #[cfg(test)]
        READS.with(|r| r.set((r.get().0, r.get().1 + 1)));
        let intact = self.packet.is_some_and(|p| s.intact(&p, self.bytes));
        self.intact.set(Some(intact));
        intact
    }
}

#[cfg(test)]
thread_local! {
    /// This thread's STAMP decodes and intact checks (HMAC included), for
    /// the tests that count them: [`reads`].
    static READS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// How many STAMP replies this thread has decoded, and how many intact
/// checks (the HMAC, authenticated) it has run, so far.
#[cfg(test)]
pub(crate) fn reads() -> (u64, u64) {
    READS.with(Cell::get)
}

/// Books one reply that came at `at_ns` (`shared`: a time shared with other
/// replies) with TOS `tos`: decoded once, matched and checked by `books`
/// from that decoding and, an intact reply in time, read by `stamp` from
/// the same. The way every reply enters the books (`Flow::receive`, the
/// fleet's engine); `None` when it answers no probe of theirs.
#[inline]
pub(crate) fn book_reply(
    books: &mut Books,
    stamp: Option<&mut StampBooks>,
    bytes: &[u8],
    (at_ns, shared): (u64, bool),
    tos: Option<u8>,
) -> Option<Answer> {
    let reply = books.codec().decode(bytes);
    let answer = books.reply_decoded(&reply, at_ns, shared)?;
    if let (Some(stamp), true) = (stamp, answer.measured()) {
        stamp.reply_decoded(&reply, answer.seq, answer.check, at_ns, tos);
    }
    Some(answer)
}

#[cfg(test)]
mod tests;
