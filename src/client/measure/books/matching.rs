//! Which probe a reply answers: its claimed sequence number, checked
//! against the send time the books recorded, or, where the header is the
//! damaged part, the probe its send time (or, echo, its pattern) names.

use super::Books;
use crate::client::measure::codec::Decoded;
use crate::client::probe::Check;

impl Books {
    /// Which probe `reply` answers and what it is, or `None` when it
    /// answers no probe these books remember.
    pub(super) fn matched(&self, reply: &Decoded) -> Option<(u64, Check)> {
        let codec = &self.codec;
        let (claimed, echoed_ns) = codec.claims(reply, self.next_seq)?;
        let remembered = claimed != 0
            && claimed < self.next_seq
            && claimed + self.settled_seen.span() >= self.base;
        // `None` when settled: its send time is no longer known.
        let claimed_ns = claimed
            .checked_sub(self.base)
            .and_then(|i| self.pending.get(i as usize))
            .map(|p| p.sent_ns);
        let time_ok = claimed_ns.is_none_or(|t| t == echoed_ns);
        let by_time = || {
            self.pending
                .binary_search_by_key(&echoed_ns, |p| p.sent_ns)
                .ok()
                .map(|i| self.base + i as u64)
        };
        // STAMP has no pattern: its body vouches for the sequence number it
        // carries, the damaged field itself. There the copied time stamp
        // names the probe, so a pending probe it names wins over a claim
        // that disagrees (settled or not): the reply is corrupt for it.
        let stamp_names = if codec.time_names_probe() && !(claimed_ns.is_some() && time_ok) {
            by_time().filter(|&t| t != claimed)
        } else {
            None
        };
        // A settled probe's time is gone: then its pattern must vouch for it.
        let trusted = remembered
            && time_ok
            && stamp_names.is_none()
            && (claimed_ns.is_some() || codec.vouches_for(reply, claimed, self.size));
        let seq = if trusted {
            claimed
        } else {
            // The header may be damaged; the send time may still name the probe.
            match (by_time(), remembered) {
                // Both name a probe: the one whose pattern the body has.
                (Some(t), true)
                    if stamp_names.is_none()
                        && (!codec.vouches_for(reply, t, self.size)
                            || codec.vouches_for(reply, claimed, self.size)) =>
                {
                    claimed
                }
                (Some(t), _) => t,
                (None, true) => claimed,
                (None, false) => return None,
            }
        };
        let header_ok = seq == claimed && time_ok;
        let check = match codec.check(reply, self.size, (seq, echoed_ns)) {
            Check::Intact { .. } | Check::Truncated { .. } if !header_ok => Check::Corrupt { seq },
            other => other,
        };
        Some((seq, check))
    }
}
