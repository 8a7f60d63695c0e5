//! The books of one flow, without the I/O: which probes are out and when they
//! left, which were answered, and what every reply turned out to be.
//!
//! [`Books`] is pure bookkeeping. It is told "probes N.. were sent at t",
//! "these reply bytes came at t" and "it is now t" (so probes past their
//! timeout are lost), and it keeps the counts and the round-trip record. It
//! owns no socket and reads no clock, so every case is a unit test.
//!
//! A reply is first matched to its probe, then checked whole: the body against
//! the pattern of that probe (STAMP: what the reflector copies, and the HMAC),
//! the length against the probe's, and the echoed send time against the one
//! recorded. The wire format is the [`Codec`]'s; the books see only claimed
//! sequence numbers, echoed stamps and whether the bytes are right. Every probe carries a distinct send
//! time (a batch's probes get `t, t+1 ns, …`), so the time also names the
//! probe when the sequence field is the damaged part. Any mismatch makes the
//! reply corrupt — counted every time, never as a duplicate or as foreign.
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

use super::codec::{Codec, Decoded};
use crate::client::probe::Check;
use crate::client::probes::{ProbeOutcome, ProbeRecord};
use crate::client::stats::{Counts, Latency};
pub(crate) use state::Answer;
use state::{BitRing, Pending};

mod matching;
mod records;
mod state;
mod tx;

/// One flow's probes and what became of them. Times are ns of any monotonic
/// clock, the same one for every call.
pub(crate) struct Books {
    /// The wire format: echo probes or STAMP test packets.
    codec: Codec,
    size: usize,
    timeout_ns: u64,
    /// Sequence number of the next probe (the first is 1).
    next_seq: u64,
    /// The lowest send time the next probe may carry: stamps strictly increase.
    next_stamp: u64,
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
    /// Since when probes have been waiting with no reply at all: the send
    /// time of the first probe after the last reply (or the last reply, when
    /// probes were still out then); `None` while nothing waits. Losses do not
    /// end a silence: only a reply does.
    quiet_since: Option<u64>,
    /// The longest silence that has ended, ns.
    longest_silence_ns: u64,
    /// Per-probe records (`--probes`), when kept: one per settled probe and
    /// one per extra reply, taken by [`take_records`](Self::take_records).
    records: Option<Vec<ProbeRecord>>,
    /// The flow these books belong to, for the records.
    flow: u32,
    /// Round trips timed with a time shared by other probes: a send of
    /// several probes, or a receive buffer (or user-space receive time) of
    /// several replies.
    batch_timed: u64,
    /// Kernel transmit stamps were asked for ([`ask_tx_stamps`](Self::ask_tx_stamps)).
    tx_asked: bool,
    /// Round trips timed from a kernel transmit stamp, and (asked for) from
    /// the user-space send time because none came in time.
    tx_stamped: u64,
    tx_missing: u64,
    /// The host's send delays (user-space send → kernel transmit stamp) of
    /// the round trips timed from a stamp.
    send_delay: Latency,
}

impl Books {
    /// Books for probes of `size` bytes, lost after `timeout`, with room for
    /// `in_flight_max` probes in flight (more still works: the FIFO grows).
    #[cfg(test)]
    pub(crate) fn new(size: usize, timeout: Duration, in_flight_max: usize) -> Books {
        Books::with_codec(Codec::Echo, size, timeout, in_flight_max)
    }

    /// [`Books::new`] for probes in `codec`'s format.
    pub(crate) fn with_codec(
        codec: Codec,
        size: usize,
        timeout: Duration,
        in_flight_max: usize,
    ) -> Books {
        // The reservations are capped so an absurd --rate × --timeout cannot
        // ask for gigabytes up front (the FIFO still grows if it must).
        Books::build(
            codec,
            (size, timeout),
            in_flight_max.min(1 << 22) + 64,
            in_flight_max.saturating_mul(4).clamp(1 << 16, 1 << 26),
            Latency::new,
        )
    }

    /// Books with room for `pending` probes in flight, a ring of `ring_bits`
    /// and round-trip records made by `latency`.
    fn build(
        codec: Codec,
        (size, timeout): (usize, Duration),
        pending: usize,
        ring_bits: usize,
        latency: fn() -> Latency,
    ) -> Books {
        Books {
            codec,
            size,
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            next_seq: 1,
            next_stamp: 0,
            base: 1,
            pending: VecDeque::with_capacity(pending),
            settled_seen: BitRing::new(ring_bits),
            highest: 0,
            outstanding: 0,
            counts: Counts::default(),
            latency: latency(),
            quiet_since: None,
            longest_silence_ns: 0,
            records: None,
            flow: 0,
            batch_timed: 0,
            tx_asked: false,
            tx_stamped: 0,
            tx_missing: 0,
            send_delay: latency(),
        }
    }

    /// Books for one target of the fleet prober: the same checks, sized for
    /// a probe every interval rather than a flood. The FIFO holds
    /// `in_flight_max` probes before it grows, the ring remembers 4 × that
    /// (at least 256) settled probes for late and duplicate replies, and the
    /// round trips keep their sums only (no HDR histogram: ≈ 200 KiB each,
    /// while a fleet of 10,000 targets must fit in 64 MiB).
    pub(crate) fn compact(
        codec: Codec,
        size: usize,
        timeout: Duration,
        in_flight_max: usize,
    ) -> Books {
        let in_flight_max = in_flight_max.clamp(1, 1 << 16);
        Books::build(
            codec,
            (size, timeout),
            in_flight_max + 1,
            in_flight_max.saturating_mul(4).clamp(256, 1 << 18),
            Latency::sums_only,
        )
    }

    /// Round trips timed with a time other probes share (a send of several,
    /// or one receive time for several replies): not per-probe times.
    pub(crate) fn batch_timed(&self) -> u64 {
        self.batch_timed
    }

    /// How probes are written and replies read.
    pub(crate) fn codec(&self) -> &Codec {
        &self.codec
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

    /// The longest time, up to `now_ns`, during which probes were out and no
    /// reply came: a server that died mid-run shows here even when the few
    /// probes in flight at that moment make a tiny loss percentage.
    pub(crate) fn longest_silence(&self, now_ns: u64) -> Duration {
        let open = self.quiet_since.map_or(0, |t| now_ns.saturating_sub(t));
        Duration::from_nanos(self.longest_silence_ns.max(open))
    }

    /// The send time the first probe of a batch sent at `now_ns` carries;
    /// probe `i` of the batch carries this plus `i` ns. Later than any stamp
    /// already booked, so no two probes share one (a batch leaves within a
    /// few µs anyway: the nanoseconds added are below the clock's meaning).
    pub(crate) fn stamp(&self, now_ns: u64) -> u64 {
        now_ns.max(self.next_stamp)
    }

    /// Books `n` probes, numbered from [`next_seq`](Self::next_seq), sent at
    /// `at_ns`: probe `i` carries the stamp `stamp(at_ns) + i`. `at_ns` is
    /// the one time of the whole send: with `n > 1` the probes' send times
    /// are the batch's. A kernel transmit stamp, when one comes
    /// ([`tx_stamp`](Self::tx_stamp)), then moves their round trips' start.
    pub(crate) fn sent(&mut self, n: usize, at_ns: u64) {
        let first = self.stamp(at_ns);
        for i in 0..n as u64 {
            self.pending.push_back(Pending {
                sent_ns: first + i,
                seen: false,
                answered: false,
                refused: false,
                batch_index: u32::try_from(i).unwrap_or(u32::MAX),
                batch: n > 1,
                tx_ns: 0,
            });
        }
        if n > 0 {
            self.next_stamp = first + n as u64;
            self.quiet_since.get_or_insert(first);
        }
        self.next_seq += n as u64;
        self.outstanding += n as u64;
        self.counts.sent += n as u64;
    }

    /// Counts a send the kernel refused (the probe was not sent).
    pub(crate) fn send_error(&mut self) {
        self.counts.send_errors += 1;
    }

    /// Counts an ICMP port-unreachable report and settles the probe it
    /// answers as lost at once (returned; `None` when no probe waits). The
    /// report does not name its probe: it is taken to answer the newest one
    /// not yet answered or refused, which in ping mode is the probe just sent
    /// (the report comes back within a round trip, before the next probe).
    pub(crate) fn refused(&mut self) -> Option<u64> {
        self.counts.refused += 1;
        let i = self
            .pending
            .iter()
            .rposition(|p| !p.seen && !p.answered && !p.refused)?;
        let entry = &mut self.pending[i];
        entry.refused = true;
        let (sent_ns, batch, delay) = (entry.batch_ns(), entry.batch, entry.send_delay_ns());
        let seq = self.base + i as u64;
        self.outstanding -= 1;
        self.counts.lost += 1;
        self.counts.lost_refused += 1;
        self.record(seq, Some(sent_ns), 0, ProbeOutcome::Lost, (batch, delay));
        Some(seq)
    }

    /// Books the reply `bytes` that came at `at_ns`, a time of its own;
    /// `None` when it answers no probe of these books (counted foreign).
    #[cfg(test)]
    pub(crate) fn reply(&mut self, bytes: &[u8], at_ns: u64) -> Option<Answer> {
        self.reply_at(bytes, at_ns, false)
    }

    /// [`reply`](Self::reply) for a reply whose receive time `at_ns` is
    /// shared with other replies when `shared` (one GRO buffer, or one
    /// user-space time for a whole receive call).
    #[cfg(test)]
    pub(crate) fn reply_at(&mut self, bytes: &[u8], at_ns: u64, shared: bool) -> Option<Answer> {
        let reply = self.codec.decode(bytes);
        self.reply_decoded(&reply, at_ns, shared)
    }

    /// [`reply_at`](Self::reply_at) for a reply already decoded by the
    /// books' codec (see [`book_reply`](super::codec::book_reply)).
    pub(crate) fn reply_decoded(
        &mut self,
        reply: &Decoded,
        at_ns: u64,
        shared: bool,
    ) -> Option<Answer> {
        let Some((seq, check)) = self.matched(reply) else {
            // Not a probe of this run, or older than the books remember.
            self.counts.foreign += 1;
            return None;
        };
        // Any reply the books recognise, even a corrupt or late one, shows
        // that the path and the server are alive: it ends a silence.
        if let Some(since) = self.quiet_since {
            let silence = at_ns.saturating_sub(since);
            self.longest_silence_ns = self.longest_silence_ns.max(silence);
        }
        let batch = shared || self.pending_of(seq).is_some_and(|p| p.batch);
        let answer = self.book(seq, check, reply.bytes.len(), at_ns);
        if answer.measured() && batch {
            self.batch_timed += 1;
        }
        self.quiet_since = (self.outstanding > 0).then_some(at_ns);
        if self.records.is_some() {
            // Corrupt first, then late, then duplicate: one record per reply.
            let outcome = match check {
                Check::Corrupt { .. } => ProbeOutcome::Corrupt,
                _ if answer.late => ProbeOutcome::Late,
                _ if answer.duplicate => ProbeOutcome::Duplicate,
                Check::Truncated { .. } => ProbeOutcome::Truncated,
                _ => ProbeOutcome::Answered,
            };
            let sent_ns = match (self.pending_of(seq), check) {
                (Some(p), _) => Some(p.batch_ns()),
                (None, Check::Intact { sent_ns, .. }) => Some(sent_ns),
                (None, _) => None,
            };
            let delay = self.pending_of(seq).and_then(|p| p.send_delay_ns());
            self.record(seq, sent_ns, answer.rtt_ns, outcome, (batch, delay));
        }
        Some(answer)
    }

    /// Books a matched reply of `len` bytes.
    fn book(&mut self, seq: u64, check: Check, len: usize, at_ns: u64) -> Answer {
        let corrupt = matches!(check, Check::Corrupt { .. });
        if corrupt {
            self.counts.corrupt += 1;
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
                answer.duplicate = !corrupt;
                self.counts.duplicates += u64::from(!corrupt);
            } else {
                self.settled_seen.set(seq, true);
                self.counts.late += 1;
                answer.late = true;
                answer.rtt_ns = echoed_rtt(check, at_ns);
            }
            return answer;
        };
        if entry.seen {
            // A corrupt copy is corrupt (counted above), not a duplicate.
            answer.duplicate = !corrupt;
            self.counts.duplicates += u64::from(!corrupt);
            return answer;
        }
        entry.seen = true;
        // From the kernel's transmit stamp where it came, else the send's own
        // time: the ns added to name the probe are not real.
        let rtt_ns = at_ns.saturating_sub(entry.start_ns());
        let send_delay = entry.send_delay_ns();
        if entry.refused || rtt_ns > self.timeout_ns {
            // Refused: settled as lost already. Past its timeout: expiry
            // has not looked at the clock yet; it will count it lost.
            self.counts.late += 1;
            answer.late = true;
            answer.rtt_ns = echoed_rtt(check, at_ns);
            return answer;
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
        match check {
            Check::Intact { .. } => {
                // Only intact bytes are throughput: a reflector that sends
                // back 64 KiB of garbage per probe moves nothing we asked for.
                self.counts.bytes_received += len as u64;
                self.latency.record(rtt_ns);
                match send_delay {
                    Some(delay) => {
                        self.tx_stamped += 1;
                        self.send_delay.record(delay);
                    }
                    None if self.tx_asked => self.tx_missing += 1,
                    None => {}
                }
            }
            Check::Truncated { .. } => self.counts.truncated += 1,
            Check::Corrupt { .. } | Check::Foreign => {}
        }
        answer
    }

    /// Time passes: at `now_ns`, counts the probes whose timeout has passed
    /// as lost (`on_lost` sees each one's sequence) and frees their slots.
    pub(crate) fn expire(&mut self, now_ns: u64, on_lost: &mut dyn FnMut(u64)) {
        while let Some(&entry) = self.pending.front() {
            let seq = self.base;
            if !entry.answered && !entry.refused {
                if now_ns.saturating_sub(entry.sent_ns) <= self.timeout_ns {
                    break;
                }
                self.outstanding -= 1;
                self.counts.lost += 1;
                self.record(
                    seq,
                    Some(entry.batch_ns()),
                    0,
                    ProbeOutcome::Lost,
                    (entry.batch, entry.send_delay_ns()),
                );
                on_lost(seq);
            }
            self.pending.pop_front();
            self.settled_seen.set(seq, entry.seen);
            self.base += 1;
        }
        debug_assert!(self.outstanding <= self.pending.len() as u64);
    }

    /// Probe `seq`, while it is not settled.
    fn pending_of(&self, seq: u64) -> Option<&Pending> {
        let i = seq.checked_sub(self.base)?;
        self.pending.get(i as usize)
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
mod tests;
