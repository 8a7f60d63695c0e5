//! Kernel transmit stamps in the books: a probe's round trip starts at the
//! kernel's transmit time of its send when one comes, and the host's own send
//! delay (user-space send to kernel transmit) is kept beside the round trips.

use super::Books;
use crate::client::stats::Latency;

impl Books {
    /// From now on every round trip is expected to start at its probe's
    /// kernel transmit stamp ([`tx_stamp`](Self::tx_stamp)); one without
    /// counts as missing.
    pub(crate) fn ask_tx_stamps(&mut self) {
        self.tx_asked = true;
    }

    /// Round trips timed from a kernel transmit stamp, and those that were
    /// asked for one but timed from the user-space send time.
    pub(crate) fn tx_stamps(&self) -> (u64, u64) {
        (self.tx_stamped, self.tx_missing)
    }

    /// The host's send delays of the round trips timed from a kernel stamp.
    pub(crate) fn send_delay(&self) -> &Latency {
        &self.send_delay
    }

    /// The kernel's transmit stamp `at_ns` (the books' clock) of the send
    /// that carried probes `first ..first + count`: their round trips start
    /// there. Ignored for probes already answered or settled (a stamp after
    /// the reply) and when it cannot be theirs: more than 50 µs before the
    /// send's user-space time (the stamp's counter did not match the send;
    /// less is the two clocks' reading error, taken as no delay) or after
    /// the probe's timeout. Returns how many probes took it.
    pub(crate) fn tx_stamp(&mut self, first: u64, count: u32, at_ns: u64) -> u32 {
        const CLOCK_SLACK_NS: u64 = 50_000;
        let mut took = 0;
        for seq in first..first + u64::from(count) {
            let Some(i) = seq.checked_sub(self.base) else {
                continue;
            };
            let Some(p) = self.pending.get_mut(i as usize) else {
                break;
            };
            let sent = p.batch_ns();
            if p.seen
                || p.refused
                || at_ns + CLOCK_SLACK_NS < sent
                || at_ns > sent.saturating_add(self.timeout_ns)
            {
                continue;
            }
            p.tx_ns = at_ns.max(sent).max(1);
            took += 1;
        }
        took
    }
}
