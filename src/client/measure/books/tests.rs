//! Unit and property tests of [`Books`](super::Books): each case feeds sends,
//! reply bytes and the passing of time, and reads the counts.

use super::*;
use crate::client::probe;

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
    // A batch's probes carry distinct stamps, a nanosecond apart; their
    // round trips are timed from the send's one time, not from the stamps.
    let stamp = |seq: u64| 10 * MS + seq - 1;
    for seq in 1..=3 {
        let a = b
            .reply(&reply(seq, stamp(seq)), 10 * MS + seq * MS)
            .unwrap();
        assert_eq!(a.seq, seq);
        assert_eq!(a.rtt_ns, seq * MS);
        assert!(a.measured());
    }
    assert_eq!(b.batch_timed(), 3, "three probes in one send");
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
        b.reply(&reply(seq, seq - 1), MS).unwrap();
    }
    let c = b.counts();
    assert_eq!((c.received, c.reordered, c.duplicates), (3, 1, 0));
}

#[test]
fn a_probe_without_a_reply_is_lost_once_its_timeout_passes() {
    let mut b = books();
    b.sent(2, 0);
    b.sent(1, 500 * MS);
    b.reply(&reply(2, 1), MS).unwrap();
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
    let a = b.reply(&reply(2, 1)[..30], MS).unwrap();
    assert_eq!(a.check, Check::Truncated { seq: 2 });
    let c = b.counts();
    assert_eq!((c.received, c.corrupt, c.truncated), (2, 1, 1));
    // Neither is throughput (only intact replies count).
    assert_eq!(c.bytes_received, 0);
    assert_eq!(b.latency().count(), 0);
    assert_eq!(b.outstanding(), 0);
}

#[test]
fn datagrams_that_answer_no_probe_are_foreign() {
    let mut b = books();
    b.sent(2, 0);
    assert_eq!(b.reply(b"hello", MS), None, "too short for a header");
    // Neither the sequence number nor the send time names a probe.
    assert_eq!(b.reply(&reply(0, 7), MS), None, "sequence 0 is never sent");
    assert_eq!(b.reply(&reply(3, 7), MS), None, "not sent yet");
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
        b.reply(&reply(seq, MS + seq - 2), 2 * MS).unwrap();
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
        b.reply(&reply(seq, MS + seq - 2), MS).unwrap();
    }
    b.expire(MS, &mut |_| {});
    // Settled `span` probes ago: still remembered.
    assert!(b.reply(&reply(1, 0), 2 * MS).unwrap().duplicate);
    b.sent(1, MS);
    b.reply(&reply(span + 1, MS + span - 1), MS).unwrap();
    b.expire(MS, &mut |_| {});
    assert_eq!(b.reply(&reply(1, 0), 2 * MS), None);
    assert_eq!(b.counts().foreign, 1);
}

#[test]
fn a_changed_send_time_is_corruption() {
    let mut b = books();
    b.sent(1, 5 * MS);
    let mut bad = reply(1, 5 * MS);
    bad[15] ^= 0x01;
    let a = b.reply(&bad, 6 * MS).unwrap();
    assert_eq!(a.check, Check::Corrupt { seq: 1 });
    assert!(!a.measured());
    let c = b.counts();
    assert_eq!((c.received, c.corrupt, c.duplicates), (1, 1, 0));
    assert_eq!(b.latency().count(), 0);
}

#[test]
fn a_reply_claiming_another_probes_sequence_is_corrupt_never_a_duplicate() {
    // A peer that writes the first probe's sequence into every reply.
    let mut b = books();
    for seq in 1..=5 {
        b.sent(1, seq * 100 * MS);
        let mut bad = reply(seq, seq * 100 * MS);
        bad[..8].copy_from_slice(&1u64.to_be_bytes());
        let a = b.reply(&bad, seq * 100 * MS + MS).unwrap();
        assert_eq!(a.seq, seq, "matched to its probe by the send time");
        assert_eq!(matches!(a.check, Check::Corrupt { .. }), seq > 1, "{seq}");
        assert!(!a.duplicate);
    }
    assert!(lost(&mut b, 10_000 * MS).is_empty());
    let c = b.counts();
    assert_eq!((c.received, c.corrupt, c.duplicates, c.lost), (5, 4, 0, 0));
    // The same when the named probe is settled and its send time forgotten.
    let mut b = books();
    for seq in 1..=3 {
        b.sent(1, seq * 100 * MS);
        let mut bad = reply(seq, seq * 100 * MS);
        bad[..8].copy_from_slice(&1u64.to_be_bytes());
        assert_eq!(b.reply(&bad, seq * 100 * MS + MS).unwrap().seq, seq);
        b.expire(seq * 100 * MS + 2 * MS, &mut |seq| panic!("{seq} lost"));
    }
    let c = b.counts();
    assert_eq!((c.received, c.corrupt, c.duplicates), (3, 2, 0));
    // A corrupt copy of a probe already answered is corrupt too.
    let mut b = books();
    b.sent(1, 0);
    b.reply(&reply(1, 0), MS).unwrap();
    let mut bad = reply(1, 0);
    bad[20] ^= 0x80;
    assert!(!b.reply(&bad, MS).unwrap().duplicate);
    assert_eq!((b.counts().corrupt, b.counts().duplicates), (1, 0));
}

#[test]
fn a_reply_longer_than_its_probe_is_corrupt_not_foreign() {
    let mut b = books();
    b.sent(1, 0);
    let mut long = reply(1, 0);
    long.push(0);
    assert_eq!(b.reply(&long, MS).unwrap().check, Check::Corrupt { seq: 1 });
    assert!(lost(&mut b, 5_000 * MS).is_empty());
    let c = b.counts();
    assert_eq!((c.received, c.corrupt, c.foreign, c.lost), (1, 1, 0, 0));
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// Probe sizes: the small ones (little or no body) as often as the rest.
    fn sizes() -> impl Strategy<Value = usize> {
        prop_oneof![probe::MIN_SIZE..=64, probe::MIN_SIZE..=probe::MAX_SIZE]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_single_bit_flip_anywhere_is_corrupt(
            size in sizes(),
            n in 1u64..=8,
            k in any::<Index>(),
            in_header in any::<bool>(),
            bit in any::<Index>(),
            at in 0u64..1 << 62,
        ) {
            let mut b = Books::new(size, Duration::from_secs(1), 8);
            b.sent(n as usize, at);
            let seq = 1 + k.index(n as usize) as u64;
            let mut buf = vec![0; size];
            probe::fill(&mut buf, seq, at + seq - 1);
            let bit = bit.index(if in_header { 8 * probe::HEADER_LEN } else { 8 * size });
            buf[bit / 8] ^= 1 << (bit % 8);
            let a = b.reply(&buf, at + MS);
            let a = a.expect("a damaged reply is still matched to a probe");
            prop_assert!(matches!(a.check, Check::Corrupt { .. }), "{a:?}");
            prop_assert!(!a.duplicate && !a.measured());
            if size >= probe::HEADER_LEN + 8 {
                // Eight bytes of body settle which probe it was.
                prop_assert_eq!(a.seq, seq);
            }
            let c = b.counts();
            prop_assert_eq!((c.corrupt, c.duplicates, c.foreign), (1, 0, 0));
            prop_assert_eq!(b.latency().count(), 0);
        }

        #[test]
        fn intact_replies_in_any_order_and_number_are_never_corrupt(
            size in probe::MIN_SIZE..=1500,
            batches in proptest::collection::vec(1usize..=16, 1..=8),
            order in proptest::collection::vec(any::<Index>(), 0..=200),
        ) {
            let mut b = Books::new(size, Duration::from_secs(1), 128);
            let mut stamps = Vec::new();
            for (i, &n) in batches.iter().enumerate() {
                let at = i as u64 * 1_000 + 7;
                let first = b.stamp(at);
                stamps.extend((0..n as u64).map(|j| first + j));
                b.sent(n, at);
            }
            let mut seen = vec![false; stamps.len()];
            let mut buf = vec![0; size];
            for (i, pick) in order.iter().enumerate() {
                let p = pick.index(stamps.len());
                probe::fill(&mut buf, p as u64 + 1, stamps[p]);
                let a = b.reply(&buf, 10 * MS + i as u64).expect("ours");
                prop_assert_eq!(a.check, Check::Intact { seq: p as u64 + 1, sent_ns: stamps[p] });
                prop_assert_eq!(a.duplicate, seen[p]);
                seen[p] = true;
            }
            let distinct = seen.iter().filter(|&&s| s).count() as u64;
            let c = b.counts();
            prop_assert_eq!((c.corrupt, c.truncated, c.foreign, c.late), (0, 0, 0, 0));
            prop_assert_eq!(c.received, distinct);
            prop_assert_eq!(c.duplicates, order.len() as u64 - distinct);
        }
    }
}

#[test]
fn only_probes_sent_and_answered_alone_have_per_probe_times() {
    let mut b = books();
    b.sent(1, 0);
    b.sent(1, MS);
    // Its own send, its own receive: per probe.
    assert!(b.reply(&reply(1, 0), 2 * MS).unwrap().measured());
    assert_eq!(b.batch_timed(), 0);
    // Its own send, but a receive time shared with other replies.
    assert!(b.reply_at(&reply(2, MS), 3 * MS, true).unwrap().measured());
    assert_eq!(b.batch_timed(), 1);
    // Two probes of one send, answered at once: one round trip each, equal.
    b.sent(2, 10 * MS);
    let stamp = 10 * MS;
    let first = b.reply(&reply(3, stamp), 11 * MS).unwrap();
    let second = b.reply(&reply(4, stamp + 1), 11 * MS).unwrap();
    assert_eq!((first.rtt_ns, second.rtt_ns), (MS, MS));
    assert_eq!(b.batch_timed(), 3);
}

#[test]
fn send_errors_and_refusals_are_counted() {
    let mut b = books();
    b.send_error();
    assert_eq!(b.refused(), None, "no probe waits");
    assert_eq!(b.refused(), None);
    let c = b.counts();
    assert_eq!((c.sent, c.send_errors, c.refused, c.lost), (0, 1, 2, 0));
}

#[test]
fn a_refusal_settles_the_newest_waiting_probe_as_lost_once() {
    let mut b = books();
    b.sent(1, 0);
    b.sent(1, 200 * MS);
    assert_eq!(b.refused(), Some(2));
    assert_eq!(b.refused(), Some(1));
    assert_eq!(b.refused(), None);
    assert_eq!(b.outstanding(), 0);
    let c = *b.counts();
    assert_eq!((c.lost, c.lost_refused, c.refused), (2, 2, 3));
    // No timeout on top of the refusal.
    assert!(lost(&mut b, 5_000 * MS).is_empty());
    assert_eq!(b.counts().lost, 2);
    // A reply after all (a server that came up) is late, not received.
    let mut b = books();
    b.sent(1, 0);
    assert_eq!(b.refused(), Some(1));
    let a = b.reply(&reply(1, 0), MS).unwrap();
    assert!(a.late && !a.measured());
    let c = b.counts();
    assert_eq!((c.received, c.late, c.lost, b.outstanding()), (0, 1, 1, 0));
}

#[test]
fn kept_records_settle_each_probe_once_and_each_extra_reply_once() {
    let mut b = books();
    b.keep_records(3, 8);
    b.sent(4, 0);
    let stamp = |seq: u64| seq - 1;
    b.reply(&reply(1, stamp(1)), MS).unwrap();
    b.reply(&reply(1, stamp(1)), 2 * MS).unwrap();
    let mut short = reply(2, stamp(2));
    short.truncate(20);
    b.reply(&short, 3 * MS).unwrap();
    assert_eq!(lost(&mut b, 1_100 * MS), vec![3, 4]);
    b.reply(&reply(4, stamp(4)), 1_200 * MS).unwrap();
    let mut records = Vec::new();
    b.take_records(&mut records);
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.seq, r.flow, r.sent_ns, r.rtt_ns, r.outcome))
        .collect();
    // Sent in one send: the records give the send's time, not the stamps'
    // made-up nanoseconds (a late reply's probe is settled: its stamp it is).
    assert_eq!(
        got,
        vec![
            (1, 3, Some(0), Some(MS), ProbeOutcome::Answered),
            (1, 3, Some(0), None, ProbeOutcome::Duplicate),
            (2, 3, Some(0), Some(3 * MS), ProbeOutcome::Truncated),
            (3, 3, Some(0), None, ProbeOutcome::Lost),
            (4, 3, Some(0), None, ProbeOutcome::Lost),
            (4, 3, Some(3), Some(1_200 * MS - 3), ProbeOutcome::Late),
        ]
    );
    assert!(records[..5].iter().all(|r| r.batch_timed), "{records:?}");
    assert_eq!(b.records_waiting(), 0);
}

#[test]
fn a_kernel_transmit_stamp_starts_the_round_trip_and_gives_the_send_delay() {
    let mut b = books();
    b.ask_tx_stamps();
    b.keep_records(0, 8);
    b.sent(1, 10 * MS); // probe 1, user-space send at 10 ms
    b.sent(1, 20 * MS); // probe 2
    b.sent(1, 30 * MS); // probe 3
    // Probe 1's stamp: left 15 µs after the user-space time.
    assert_eq!(b.tx_stamp(1, 1, 10 * MS + 15_000), 1);
    // Probe 2's stamp names it but is 1 ms before its send: not its stamp
    // (a counter that slipped); probe 3's never comes.
    assert_eq!(b.tx_stamp(2, 1, 19 * MS), 0);
    let a = b.reply(&reply(1, 10 * MS), 10 * MS + 100_000).unwrap();
    assert_eq!(a.rtt_ns, 85_000, "from the kernel stamp, not the user time");
    let a = b.reply(&reply(2, 20 * MS), 20 * MS + 100_000).unwrap();
    assert_eq!(a.rtt_ns, 100_000, "no stamp: from the user-space time");
    // A stamp that comes after the reply changes nothing.
    let a = b.reply(&reply(3, 30 * MS), 30 * MS + 90_000).unwrap();
    assert_eq!(b.tx_stamp(3, 1, 30 * MS + 10_000), 0);
    assert_eq!(a.rtt_ns, 90_000);
    assert_eq!(b.tx_stamps(), (1, 2));
    assert_eq!(b.send_delay().count(), 1);
    let mut records = Vec::new();
    b.take_records(&mut records);
    let delays: Vec<_> = records.iter().map(|r| r.send_delay_ns).collect();
    assert_eq!(delays, [Some(15_000), None, None]);
}

#[test]
fn a_gso_sends_stamp_times_all_its_probes_and_a_small_clock_error_is_no_delay() {
    let mut b = books();
    b.ask_tx_stamps();
    b.sent(4, 10 * MS);
    // The two clocks' reading error may put the stamp just before the send.
    assert_eq!(b.tx_stamp(1, 4, 10 * MS - 1_000), 4);
    for seq in 1..=4 {
        let a = b
            .reply(&reply(seq, 10 * MS + seq - 1), 10 * MS + 50_000)
            .unwrap();
        assert_eq!(a.rtt_ns, 50_000);
    }
    assert_eq!(b.tx_stamps(), (4, 0));
    assert!(b.send_delay().summary().max < 0.01, "no delay");
}

#[test]
fn without_asking_for_stamps_nothing_counts_as_missing() {
    let mut b = books();
    b.sent(1, 0);
    b.reply(&reply(1, 0), MS).unwrap();
    assert_eq!(b.tx_stamps(), (0, 0));
}
