//! The books of one flow, without the I/O: which probes are out and when they
//! left, which were answered, and what every reply turned out to be.
//!
//! [`Books`] is pure bookkeeping. It is told "probes N.. were sent at t",
//! "these reply bytes came at t" and "it is now t" (so probes past their
//! timeout are lost), and it keeps the counts and the round-trip record. It
//! owns no socket and reads no clock, so every case is a unit test.
//!
//! The state is a FIFO with one entry per probe not yet settled (its send
//! time, whether a reply was seen, whether one came in time) and a bit ring
//! that remembers, for the probes already settled, whether a reply was seen,
//! so duplicates, late replies and reordering are told apart without
//! allocating per probe. The FIFO's entries are exact however far it reaches
//! (a lost probe holds its front for a whole timeout, while a fast flood sends
//! hundreds of thousands behind it); the ring only bounds how far back a late
//! reply or a duplicate is still recognised rather than called foreign.

use std::collections::VecDeque;
use std::time::Duration;

use crate::probe::{self, Check};
use crate::stats::{Counts, Latency};

/// A ring of bits over the most recent sequence numbers: bit `seq` holds
/// the last value set for any sequence number congruent to it.
struct BitRing {
    words: Vec<u64>,
    mask: u64,
}

impl BitRing {
    fn new(bits: usize) -> BitRing {
        let bits = bits.next_power_of_two().max(64);
        BitRing {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
        }
    }

    fn span(&self) -> u64 {
        self.mask + 1
    }

    fn get(&self, seq: u64) -> bool {
        let i = seq & self.mask;
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let i = seq & self.mask;
        let word = &mut self.words[(i / 64) as usize];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
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

/// A probe not yet settled.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When it was sent, ns.
    sent_ns: u64,
    /// A reply to it came (in time or late).
    seen: bool,
    /// A reply to it came in time: it is settled as received.
    answered: bool,
}

/// One flow's probes and what became of them. Times are ns of any monotonic
/// clock, the same one for every call.
pub(crate) struct Books {
    size: usize,
    timeout_ns: u64,
    /// Sequence number of the next probe (the first is 1).
    next_seq: u64,
    /// Sequence number of `pending`'s front.
    base: u64,
    /// Every probe from `base` up to `next_seq`.
    pending: VecDeque<Pending>,
    /// Whether a reply was seen, for the probes before `base` (as far back
    /// as the ring spans).
    settled_seen: BitRing,
    highest: u64,
    outstanding: u64,
    counts: Counts,
    latency: Latency,
}

impl Books {
    /// Books for probes of `size` bytes, lost after `timeout`, with room for
    /// `in_flight_max` probes in flight (more still works: the FIFO grows).
    pub(crate) fn new(size: usize, timeout: Duration, in_flight_max: usize) -> Books {
        // The reservations are capped so an absurd --rate × --timeout cannot
        // ask for gigabytes up front (the FIFO still grows if it must).
        Books {
            size,
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            next_seq: 1,
            base: 1,
            pending: VecDeque::with_capacity(in_flight_max.min(1 << 22) + 64),
            settled_seen: BitRing::new(in_flight_max.saturating_mul(4).clamp(1 << 16, 1 << 26)),
            highest: 0,
            outstanding: 0,
            counts: Counts::default(),
            latency: Latency::new(),
        }
    }

    /// The sequence number the next probe must carry.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Probes sent and neither answered in time nor lost yet.
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The counts so far.
    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Round trips of the intact replies in time.
    pub(crate) fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Books `n` probes, numbered from [`next_seq`](Self::next_seq), as sent at `at_ns`.
    pub(crate) fn sent(&mut self, n: usize, at_ns: u64) {
        for _ in 0..n {
            self.pending.push_back(Pending {
                sent_ns: at_ns,
                seen: false,
                answered: false,
            });
        }
        self.next_seq += n as u64;
        self.outstanding += n as u64;
        self.counts.sent += n as u64;
    }

    /// Counts a send the kernel refused (the probe was not sent).
    pub(crate) fn send_error(&mut self) {
        self.counts.send_errors += 1;
    }

    /// Counts an ICMP port-unreachable report.
    pub(crate) fn refused(&mut self) {
        self.counts.refused += 1;
    }

    /// Books the reply `bytes` that came at `at_ns`; `None` when it answers
    /// no probe of these books (counted foreign).
    pub(crate) fn reply(&mut self, bytes: &[u8], at_ns: u64) -> Option<Answer> {
        let check = probe::verify(bytes, self.size);
        let seq = match check {
            Check::Intact { seq, .. } | Check::Corrupt { seq } | Check::Truncated { seq } => seq,
            Check::Foreign => 0,
        };
        if seq == 0 || seq >= self.next_seq || seq + self.settled_seen.span() < self.base {
            // Not a probe of this run, or older than the books remember.
            self.counts.foreign += 1;
            return None;
        }
        let mut answer = Answer {
            seq,
            check,
            rtt_ns: 0,
            duplicate: false,
            late: false,
        };
        let Some(entry) = seq
            .checked_sub(self.base)
            .and_then(|i| self.pending.get_mut(i as usize))
        else {
            // Settled already: lost, so a first reply now is late.
            if self.settled_seen.get(seq) {
                self.counts.duplicates += 1;
                answer.duplicate = true;
            } else {
                self.settled_seen.set(seq, true);
                self.counts.late += 1;
                answer.late = true;
                answer.rtt_ns = echoed_rtt(check, at_ns);
            }
            return Some(answer);
        };
        if entry.seen {
            self.counts.duplicates += 1;
            answer.duplicate = true;
            return Some(answer);
        }
        entry.seen = true;
        let rtt_ns = at_ns.saturating_sub(entry.sent_ns);
        if rtt_ns > self.timeout_ns {
            // Expiry has not looked at the clock yet; it will count it lost.
            self.counts.late += 1;
            answer.late = true;
            answer.rtt_ns = echoed_rtt(check, at_ns);
            return Some(answer);
        }
        entry.answered = true;
        answer.rtt_ns = rtt_ns;
        self.outstanding -= 1;
        if seq < self.highest {
            self.counts.reordered += 1;
        } else {
            self.highest = seq;
        }
        self.counts.received += 1;
        self.counts.bytes_received += bytes.len() as u64;
        match check {
            Check::Intact { .. } => self.latency.record(rtt_ns),
            Check::Corrupt { .. } => self.counts.corrupt += 1,
            Check::Truncated { .. } => self.counts.truncated += 1,
            Check::Foreign => {}
        }
        Some(answer)
    }

    /// Time passes: at `now_ns`, counts the probes whose timeout has passed
    /// as lost (`on_lost` sees each one's sequence) and frees their slots.
    pub(crate) fn expire(&mut self, now_ns: u64, on_lost: &mut dyn FnMut(u64)) {
        while let Some(&entry) = self.pending.front() {
            let seq = self.base;
            if !entry.answered {
                if now_ns.saturating_sub(entry.sent_ns) <= self.timeout_ns {
                    break;
                }
                self.outstanding -= 1;
                self.counts.lost += 1;
                on_lost(seq);
            }
            self.pending.pop_front();
            self.settled_seen.set(seq, entry.seen);
            self.base += 1;
        }
        debug_assert!(self.outstanding <= self.pending.len() as u64);
    }

    /// When the oldest unsettled probe times out, in ns (`None`: nothing is
    /// outstanding once [`expire`](Self::expire) has run).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.pending
            .front()
            .map(|p| p.sent_ns.saturating_add(self.timeout_ns))
    }
}

/// The round trip a late reply shows: timed by the send time it carries
/// (0 when the reply is not intact).
fn echoed_rtt(check: Check, at_ns: u64) -> u64 {
    match check {
        Check::Intact { sent_ns, .. } => at_ns.saturating_sub(sent_ns),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 64;
    const MS: u64 = 1_000_000;

    /// Books with a 1 s timeout.
    fn books() -> Books {
        Books::new(SIZE, Duration::from_secs(1), 32)
    }

    /// The reply to probe `seq` sent at `sent_ns`, as an honest echo returns it.
    fn reply(seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut buf = vec![0; SIZE];
        probe::fill(&mut buf, seq, sent_ns);
        buf
    }

    fn lost(books: &mut Books, now_ns: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        books.expire(now_ns, &mut |seq| seqs.push(seq));
        seqs
    }

    #[test]
    fn replies_in_order_are_received_and_timed() {
        let mut b = books();
        assert_eq!(b.next_seq(), 1);
        b.sent(3, 10 * MS);
        assert_eq!((b.next_seq(), b.outstanding()), (4, 3));
        for seq in 1..=3 {
            let a = b.reply(&reply(seq, 10 * MS), 10 * MS + seq * MS).unwrap();
            assert_eq!(a.seq, seq);
            assert_eq!(a.rtt_ns, seq * MS);
            assert!(a.measured());
        }
        let c = b.counts();
        assert_eq!((c.sent, c.received, c.lost), (3, 3, 0));
        assert_eq!(c.bytes_received, 3 * SIZE as u64);
        assert_eq!(b.outstanding(), 0);
        assert_eq!(b.latency().count(), 3);
        assert_eq!(b.latency().summary().max, 3000.0);
        assert!(lost(&mut b, 5_000 * MS).is_empty());
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn a_second_copy_is_a_duplicate_and_not_received_again() {
        let mut b = books();
        b.sent(1, 0);
        assert!(!b.reply(&reply(1, 0), MS).unwrap().duplicate);
        let again = b.reply(&reply(1, 0), 2 * MS).unwrap();
        assert!(again.duplicate && !again.measured());
        assert_eq!(again.rtt_ns, 0);
        let c = b.counts();
        assert_eq!((c.received, c.duplicates, c.reordered), (1, 1, 0));
        assert_eq!(b.latency().count(), 1);
    }

    #[test]
    fn a_reply_below_the_highest_seen_is_reordered() {
        let mut b = books();
        b.sent(3, 0);
        for seq in [2, 1, 3] {
            b.reply(&reply(seq, 0), MS).unwrap();
        }
        let c = b.counts();
        assert_eq!((c.received, c.reordered, c.duplicates), (3, 1, 0));
    }

    #[test]
    fn a_probe_without_a_reply_is_lost_once_its_timeout_passes() {
        let mut b = books();
        b.sent(2, 0);
        b.sent(1, 500 * MS);
        b.reply(&reply(2, 0), MS).unwrap();
        assert_eq!(b.next_deadline(), Some(1_000 * MS));
        assert!(
            lost(&mut b, 1_000 * MS).is_empty(),
            "not before the timeout"
        );
        assert_eq!(lost(&mut b, 1_000 * MS + 1), vec![1]);
        // Probe 2 was answered; probe 3 still has time.
        assert_eq!(b.next_deadline(), Some(1_500 * MS));
        assert_eq!(b.outstanding(), 1);
        assert_eq!(lost(&mut b, 2_000 * MS), vec![3]);
        let c = b.counts();
        assert_eq!((c.sent, c.received, c.lost), (3, 1, 2));
        assert_eq!((b.outstanding(), b.next_deadline()), (0, None));
    }

    #[test]
    fn a_reply_after_the_timeout_is_late_and_its_probe_lost() {
        let mut b = books();
        b.sent(2, 0);
        // Probe 1: the books expired it before the reply came.
        assert_eq!(lost(&mut b, 1_100 * MS), vec![1, 2]);
        let a = b.reply(&reply(1, 0), 1_200 * MS).unwrap();
        assert!(a.late && !a.duplicate && !a.measured());
        assert_eq!(a.rtt_ns, 1_200 * MS, "timed by the echoed send time");
        // Probe 2: the reply came late but before the books looked at the time.
        let mut c = books();
        c.sent(1, 0);
        assert!(c.reply(&reply(1, 0), 1_500 * MS).unwrap().late);
        assert_eq!(c.outstanding(), 1);
        assert_eq!(lost(&mut c, 1_500 * MS), vec![1]);
        for books in [&b, &c] {
            let n = books.counts();
            assert_eq!((n.received, n.late), (0, 1));
            assert_eq!(books.latency().count(), 0);
        }
        // A second copy of a late reply is a duplicate.
        assert!(b.reply(&reply(1, 0), 1_300 * MS).unwrap().duplicate);
    }

    #[test]
    fn corrupt_and_truncated_replies_are_received_but_not_timed() {
        let mut b = books();
        b.sent(2, 0);
        let mut bad = reply(1, 0);
        bad[40] ^= 0x10;
        let a = b.reply(&bad, MS).unwrap();
        assert_eq!(a.check, Check::Corrupt { seq: 1 });
        assert!(!a.measured());
        let a = b.reply(&reply(2, 0)[..30], MS).unwrap();
        assert_eq!(a.check, Check::Truncated { seq: 2 });
        let c = b.counts();
        assert_eq!((c.received, c.corrupt, c.truncated), (2, 1, 1));
        assert_eq!(c.bytes_received, SIZE as u64 + 30);
        assert_eq!(b.latency().count(), 0);
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn datagrams_that_answer_no_probe_are_foreign() {
        let mut b = books();
        b.sent(2, 0);
        assert_eq!(b.reply(b"hello", MS), None, "too short for a header");
        assert_eq!(b.reply(&reply(0, 0), MS), None, "sequence 0 is never sent");
        assert_eq!(b.reply(&reply(3, 0), MS), None, "not sent yet");
        assert_eq!(b.counts().foreign, 3);
        assert_eq!(b.counts().received, 0);
        assert_eq!(b.outstanding(), 2);
    }

    /// More probes behind a lost one than the ring spans, all answered within
    /// the lost one's timeout, as a fast flood does.
    fn lost_probe_behind_a_long_flood() -> Books {
        let mut b = books();
        let behind = 3 * b.settled_seen.span() + 7;
        b.sent(1, 0);
        for seq in 2..=behind + 1 {
            b.sent(1, MS);
            b.reply(&reply(seq, MS), 2 * MS).unwrap();
            b.expire(2 * MS, &mut |seq| panic!("probe {seq} is not lost yet"));
        }
        assert_eq!(b.outstanding(), 1);
        assert_eq!(b.counts().received, behind);
        b
    }

    #[test]
    fn a_lost_probe_is_lost_however_many_went_out_after_it() {
        // The bug of issue 11 §3: the probe's state was a ring bit that a later
        // probe reused, so it was never counted lost and its slot never freed.
        let mut b = lost_probe_behind_a_long_flood();
        assert_eq!(b.next_deadline(), Some(1_000 * MS));
        assert_eq!(lost(&mut b, 1_100 * MS), vec![1]);
        assert_eq!((b.outstanding(), b.next_deadline()), (0, None));
        let c = *b.counts();
        assert_eq!(c.sent, c.received + c.lost);
        assert_eq!((c.lost, c.foreign, c.duplicates), (1, 0, 0));
    }

    #[test]
    fn a_reply_to_the_oldest_probe_counts_however_many_went_out_after_it() {
        let mut b = lost_probe_behind_a_long_flood();
        let a = b.reply(&reply(1, 0), 900 * MS).unwrap();
        assert!(a.measured(), "{a:?}");
        assert_eq!((b.outstanding(), b.counts().foreign), (0, 0));
        assert!(lost(&mut b, 5_000 * MS).is_empty());
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn replies_older_than_the_ring_remembers_are_foreign() {
        let mut b = books();
        let span = b.settled_seen.span();
        b.sent(1, 0);
        b.reply(&reply(1, 0), MS).unwrap();
        for seq in 2..=span {
            b.sent(1, MS);
            b.reply(&reply(seq, MS), MS).unwrap();
        }
        b.expire(MS, &mut |_| {});
        // Settled `span` probes ago: still remembered.
        assert!(b.reply(&reply(1, 0), 2 * MS).unwrap().duplicate);
        b.sent(1, MS);
        b.reply(&reply(span + 1, MS), MS).unwrap();
        b.expire(MS, &mut |_| {});
        assert_eq!(b.reply(&reply(1, 0), 2 * MS), None);
        assert_eq!(b.counts().foreign, 1);
    }

    #[test]
    fn send_errors_and_refusals_are_counted() {
        let mut b = books();
        b.send_error();
        b.refused();
        b.refused();
        let c = b.counts();
        assert_eq!((c.sent, c.send_errors, c.refused), (0, 1, 2));
    }
}
