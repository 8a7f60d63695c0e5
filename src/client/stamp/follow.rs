//! What the sender makes of the Follow-Up Telemetry TLV (RFC 8972 §4.7,
//! `--stamp-follow-up`): each reply N carries the reflector's transmit time
//! of its previous reply M (its Sequence Number field names M), taken after
//! M left — with this reflector, the kernel's software stamp. From it:
//!
//! - **residence time** of M in the reflector: follow-up time − M's receive
//!   time stamp, both on the reflector's clock alone (no synchronisation
//!   needed); it must lie within M's round trip, else the reply counts as
//!   `invalid` and is not recorded;
//! - **reverse one-way delay without it**: our receive time of M − the
//!   follow-up time (needs synchronised clocks, as every one-way delay).
//!
//! M's times are kept in a small ring by the reflector's sequence number, so
//! the follow-up can name any of the last [`RING`] replies received; one
//! naming a reply we never got (lost on the way back, or long ago) is
//! `unmatched`, one without a time (the first of a session, a stateless
//! reflector, or no kernel stamp) `unavailable`, a TLV the reflector did not
//! fill in (flagged U, M or I, or missing) `unsupported`.

use serde::Serialize;

use super::owd::{Owd, OwdSummary};
use crate::stamp::TimeFormat;
use crate::stamp::followup::FollowUp;

/// Replies remembered per flow for their follow-up.
const RING: usize = 256;

/// A flow's follow-up figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FollowUpSummary {
    /// Replies whose follow-up named the reply before them (the reflector's
    /// sequence number minus one), one we received, with a time: the
    /// samples below.
    pub matched: u64,
    /// Follow-ups that named a reply we did not get, or not the previous one.
    pub unmatched: u64,
    /// Follow-ups without a time (first reply, stateless reflector, no
    /// kernel stamp at the reflector).
    pub unavailable: u64,
    /// Replies whose TLV came back flagged (U, M, I) or without it.
    pub unsupported: u64,
    /// Matched follow-ups whose residence time was negative or longer than
    /// the round trip: not recorded.
    pub invalid: u64,
    /// The reflector's residence time (kernel transmit of the reply −
    /// receive time of the request), µs.
    pub residence_us: OwdSummary,
    /// Reflector → sender delay from the follow-up transmit time, µs.
    pub owd_reverse_us: OwdSummary,
}

/// One reply's times, Unix ns: (reflector seq, its receive time stamp, our
/// send time of its probe, our receive time of it).
type Kept = (u32, i128, i128, i128);

/// A flow's follow-up bookkeeping.
pub(crate) struct FollowBooks {
    ring: Vec<Option<Kept>>,
    residence: Owd,
    reverse: Owd,
    counts: FollowUpSummary,
}

impl FollowBooks {
    pub(crate) fn new() -> FollowBooks {
        FollowBooks {
            ring: vec![None; RING],
            residence: Owd::new(),
            reverse: Owd::new(),
            counts: FollowUpSummary::default(),
        }
    }

    /// Reads reply `seq` (the reflector's number), whose request the
    /// reflector received at `their_rx` and we sent at `sent` and got back
    /// at `received` (Unix ns), carrying `follow_up` (`None`: not filled
    /// in) in the reflector's time `format`.
    pub(crate) fn reply(
        &mut self,
        seq: u32,
        times: (i128, i128, i128),
        follow_up: Option<FollowUp>,
        format: TimeFormat,
        unix_ns: impl Fn(TimeFormat, u64) -> i128,
    ) {
        let (their_rx, sent, received) = times;
        self.ring[seq as usize % RING] = Some((seq, their_rx, sent, received));
        let Some(f) = follow_up else {
            self.counts.unsupported += 1;
            return;
        };
        if !f.has_time() {
            self.counts.unavailable += 1;
            return;
        }
        let kept = self.ring[f.seq as usize % RING].filter(|k| k.0 == f.seq);
        let Some((_, m_rx, m_sent, m_received)) =
            kept.filter(|_| f.seq == seq.wrapping_sub(1) && f.seq != seq)
        else {
            self.counts.unmatched += 1;
            return;
        };
        let tx = unix_ns(format, f.timestamp);
        let residence = tx - m_rx;
        if residence < 0 || residence > m_received - m_sent {
            self.counts.invalid += 1;
            return;
        }
        self.counts.matched += 1;
        self.residence.record(residence as i64);
        self.reverse
            .record((m_received - tx).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64);
    }

    /// Adds another flow's figures.
    pub(crate) fn merge(&mut self, o: &FollowBooks) {
        self.residence.merge(&o.residence);
        self.reverse.merge(&o.reverse);
        let (a, b) = (&mut self.counts, &o.counts);
        a.matched += b.matched;
        a.unmatched += b.unmatched;
        a.unavailable += b.unavailable;
        a.unsupported += b.unsupported;
        a.invalid += b.invalid;
    }

    pub(crate) fn summary(&self) -> FollowUpSummary {
        FollowUpSummary {
            residence_us: self.residence.summary(),
            owd_reverse_us: self.reverse.summary(),
            ..self.counts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(_: TimeFormat, t: u64) -> i128 {
        i128::from(t)
    }

    fn follow(seq: u32, t: u64) -> Option<FollowUp> {
        Some(FollowUp {
            seq,
            timestamp: t,
            mode: 2,
        })
    }

    #[test]
    fn residence_and_reverse_delay_come_from_the_previous_reply() {
        let mut b = FollowBooks::new();
        // Reply 0: received by the reflector at 1_000, sent by us at 900,
        // back at 1_400; its follow-up has no time (the session's first).
        b.reply(0, (1_000, 900, 1_400), follow(0, 0), TimeFormat::Ntp, ns);
        // Reply 1 says reply 0 left at 1_100: 100 ns residence, 300 back.
        b.reply(
            1,
            (2_000, 1_900, 2_400),
            follow(0, 1_100),
            TimeFormat::Ntp,
            ns,
        );
        let s = b.summary();
        assert_eq!((s.matched, s.unavailable), (1, 1));
        assert_eq!((s.residence_us.min, s.owd_reverse_us.max), (0.1, 0.3));
        // A follow-up naming a reply we never got, or not the previous one.
        b.reply(
            5,
            (5_000, 4_900, 5_400),
            follow(4, 4_999),
            TimeFormat::Ntp,
            ns,
        );
        b.reply(
            6,
            (6_000, 5_900, 6_400),
            follow(1, 2_100),
            TimeFormat::Ntp,
            ns,
        );
        // Longer than reply 6's round trip, or before its receive time: invalid.
        b.reply(
            7,
            (7_000, 6_900, 7_400),
            follow(6, 6_501),
            TimeFormat::Ntp,
            ns,
        );
        b.reply(
            8,
            (8_000, 7_900, 8_400),
            follow(7, 6_999),
            TimeFormat::Ntp,
            ns,
        );
        b.reply(9, (9_000, 8_900, 9_400), None, TimeFormat::Ntp, ns);
        let s = b.summary();
        assert_eq!(
            (s.matched, s.unmatched, s.invalid, s.unsupported),
            (1, 2, 2, 1)
        );
        let mut all = FollowBooks::new();
        all.merge(&b);
        assert_eq!(all.summary(), s);
    }
}
