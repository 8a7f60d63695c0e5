//! The books' records: the FIFO entry of a probe not yet settled, the bit
//! ring that remembers the settled ones (see the books' module docs), and
//! the [`Answer`] a matched reply gets.

use crate::client::probe::Check;

/// A ring of bits over the most recent sequence numbers: bit `seq` holds
/// the last value set for any sequence number congruent to it.
pub(super) struct BitRing {
    pub(super) words: Vec<u64>,
    pub(super) mask: u64,
}

impl BitRing {
    pub(super) fn new(bits: usize) -> BitRing {
        let bits = bits.next_power_of_two().max(64);
        BitRing {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
        }
    }

    pub(super) fn span(&self) -> u64 {
        self.mask + 1
    }

    pub(super) fn get(&self, seq: u64) -> bool {
        let i = seq & self.mask;
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub(super) fn set(&mut self, seq: u64, on: bool) {
        let i = seq & self.mask;
        let word = &mut self.words[(i / 64) as usize];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }
}

/// A probe not yet settled.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// When it was sent, ns.
    pub(super) sent_ns: u64,
    /// A reply to it came (in time or late).
    pub(super) seen: bool,
    /// A reply to it came in time: it is settled as received.
    pub(super) answered: bool,
    /// An ICMP port unreachable answered it: it is settled as lost.
    pub(super) refused: bool,
    /// Its place in the send it left in: its stamp is the send's time plus
    /// this many ns (distinct stamps name the probes; the ns are not real).
    pub(super) batch_index: u32,
    /// It left in one send with other probes: its send time is theirs.
    pub(super) batch: bool,
    /// The kernel's transmit time stamp of its send, in the books' clock;
    /// 0 while none came (the round trip then starts at `batch_ns`).
    pub(super) tx_ns: u64,
}

impl Pending {
    /// The time of the send it left in: its true send time as far as known.
    pub(super) fn batch_ns(&self) -> u64 {
        self.sent_ns - u64::from(self.batch_index)
    }

    /// When its round trip starts: the kernel's transmit time where it
    /// came, else the send's user-space time.
    pub(super) fn start_ns(&self) -> u64 {
        if self.tx_ns != 0 {
            self.tx_ns
        } else {
            self.batch_ns()
        }
    }

    /// The host's own send delay: user-space send time to kernel transmit
    /// stamp, where the stamp came.
    pub(super) fn send_delay_ns(&self) -> Option<u64> {
        (self.tx_ns != 0).then(|| self.tx_ns - self.batch_ns())
    }
}

/// A reply the books matched to one of their probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The probe it answers.
    pub(crate) seq: u64,
    /// What the bytes turned out to be.
    pub(crate) check: Check,
    /// Round trip in ns: from the recorded send time for an answer in time,
    /// from the echoed send time for a late one, 0 for a duplicate.
    pub(crate) rtt_ns: u64,
    /// Another copy of a reply already booked.
    pub(crate) duplicate: bool,
    /// The first reply, but after the probe's timeout (the probe is lost).
    pub(crate) late: bool,
}

impl Answer {
    /// True for an intact reply in time: its round trip is a measurement.
    pub(crate) fn measured(&self) -> bool {
        !self.duplicate && !self.late && matches!(self.check, Check::Intact { .. })
    }
}
