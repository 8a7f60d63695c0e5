//! Both codecs against their own probes, replies and damaged replies.

use super::*;

fn stamp(mode: Mode, format: TimeFormat, cos: bool) -> StampCodec {
    StampCodec {
        mode,
        key: (mode == Mode::Authenticated)
            .then(|| Key::from_bytes(b"sixteen byte key and more").unwrap()),
        format,
        ssid: 0x4242,
        origin_unix_ns: 1_790_000_000_123_456_789,
        cos: cos.then_some(ClassOfService {
            dscp1: 46,
            ..ClassOfService::default()
        }),
        follow_up: false,
        tlvs: Default::default(),
        error_estimate: format.error_estimate(),
    }
}

/// What a stateless reflector sends back for `request`.
fn reflect(mode: Mode, key: Option<&Key>, request: &[u8]) -> Vec<u8> {
    let sender = SenderPacket::decode(mode, request).unwrap();
    let mut out = request.to_vec();
    ReflectedPacket {
        seq: sender.seq,
        timestamp: 7,
        error_estimate: 1,
        ssid: sender.ssid,
        receive_timestamp: 5,
        sender_seq: sender.seq,
        sender_timestamp: sender.timestamp,
        sender_error_estimate: sender.error_estimate,
        sender_ttl: 255,
    }
    .encode(mode, &mut out);
    if let Some(key) = key {
        key.sign(&mut out);
    }
    out
}

#[test]
fn time_stamps_read_back_to_the_nanosecond() {
    for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
        let c = stamp(Mode::Open, format, false);
        for ns in [
            0,
            1,
            2,
            999_999_999,
            1_000_000_000,
            123_456_789_012,
            3_600e9 as u64,
        ] {
            assert_eq!(c.stamp_of(c.timestamp(ns)), ns, "{format:?} {ns}");
        }
    }
}

#[test]
fn sequence_numbers_map_back_across_the_32_bit_wrap() {
    assert_eq!(unwrap_seq(0, 1), 0, "nothing sent yet");
    assert_eq!(unwrap_seq(0, 2), 1);
    assert_eq!(unwrap_seq(4, 10), 5);
    assert_eq!(unwrap_seq(9, 10), 0, "not sent yet");
    let next = (1u64 << 32) + 10; // probes 1 ..= 2^32 + 9 sent
    assert_eq!(unwrap_seq(8, next), (1 << 32) + 9);
    assert_eq!(unwrap_seq(u32::MAX, next), 1 << 32);
    assert_eq!(unwrap_seq(u32::MAX - 5, next), (1 << 32) - 6 + 1);
}

#[test]
fn a_reflected_packet_is_intact_and_names_its_probe_in_every_mode() {
    for (mode, cos) in [
        (Mode::Open, false),
        (Mode::Open, true),
        (Mode::Authenticated, true),
    ] {
        let s = stamp(mode, TimeFormat::Ntp, cos);
        let size = s.packet_len();
        let codec = Codec::Stamp(Box::new(s.clone()));
        let mut probe = vec![0u8; size];
        codec.fill(&mut probe, 7, 123_456);
        let reply = reflect(mode, s.key.as_ref(), &probe);
        let claimed = codec.header(&reply, 8).unwrap();
        assert_eq!(claimed, (7, 123_456), "{mode:?}");
        assert!(codec.body_matches(&reply, 7, size));
        assert_eq!(
            codec.verify(&reply, size, claimed),
            Check::Intact {
                seq: 7,
                sent_ns: 123_456
            }
        );
        // A flipped bit anywhere the codec or the HMAC checks is corrupt:
        // the SSID, the copied error estimate, DSCP1 of the TLV; in
        // authenticated mode any byte the HMAC covers.
        let base = mode.base_len();
        let mut checked = match mode {
            Mode::Open => vec![14, 36],
            Mode::Authenticated => vec![26, 72, 90],
        };
        if cos {
            checked.push(base + 4);
        }
        for at in checked {
            let mut bad = reply.clone();
            bad[at] ^= 0x10;
            assert_eq!(
                codec.verify(&bad, size, claimed),
                Check::Corrupt { seq: 7 },
                "{mode:?} byte {at}"
            );
        }
        // Cut into the TLV: truncated (cut into the base packet, a
        // reply does not decode at all and the books call it foreign).
        if size > base {
            let short = &reply[..size - 1];
            assert_eq!(
                codec.verify(short, size, claimed),
                Check::Truncated { seq: 7 }
            );
        }
    }
}

/// The books, fed STAMP replies, count them as they count echo replies.
#[test]
fn the_books_match_and_check_stamp_replies() {
    use super::super::books::Books;
    let s = stamp(Mode::Authenticated, TimeFormat::Ptp, true);
    let size = s.packet_len();
    let codec = Codec::Stamp(Box::new(s.clone()));
    let mut books = Books::with_codec(codec.clone(), size, Duration::from_millis(10), 8);
    let t0 = 5_000_000;
    books.sent(3, t0);
    let reply_to = |seq: u64| {
        let mut probe = vec![0u8; size];
        codec.fill(&mut probe, seq, t0 + seq - 1);
        reflect(Mode::Authenticated, s.key.as_ref(), &probe)
    };
    let first = books.reply(&reply_to(1), t0 + 1_000).unwrap();
    assert!(first.measured() && first.rtt_ns == 1_000, "{first:?}");
    let copy = books.reply(&reply_to(1), t0 + 2_000).unwrap();
    assert!(copy.duplicate);
    // The SSID is not ours: the HMAC no longer matches either.
    let mut bad = reply_to(2);
    bad[27] ^= 1;
    let corrupt = books.reply(&bad, t0 + 3_000).unwrap();
    assert_eq!(corrupt.check, Check::Corrupt { seq: 2 });
    // Packet 3's reply after its timeout: late, timed by its own stamp.
    books.expire(t0 + 20_000_000, &mut |_| {});
    let late = books.reply(&reply_to(3), t0 + 30_000_000).unwrap();
    assert!(late.late && late.rtt_ns == 30_000_000 - 2, "{late:?}");
    let c = books.counts();
    assert_eq!(
        (c.received, c.duplicates, c.corrupt, c.late, c.lost),
        (2, 1, 1, 1, 1)
    );
}

/// Every single-bit flip of the copied sender time stamp (bytes 28..36
/// of an open reply) makes the reply corrupt, NTP and PTP: the low NTP
/// fraction bits too, which read back to the same ns.
#[test]
fn every_bit_flip_of_the_copied_sender_time_stamp_is_corrupt() {
    use super::super::books::Books;
    for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
        let s = stamp(Mode::Open, format, false);
        let size = s.packet_len();
        let codec = Codec::Stamp(Box::new(s.clone()));
        let t0 = 5_000_123;
        let mut probe = vec![0u8; size];
        codec.fill(&mut probe, 1, t0);
        let reply = reflect(Mode::Open, None, &probe);
        for bit in 0..64 {
            let mut books = Books::with_codec(codec.clone(), size, Duration::from_secs(1), 8);
            books.sent(1, t0);
            let mut bad = reply.clone();
            bad[28 + bit / 8] ^= 1 << (bit % 8);
            let answer = books.reply(&bad, t0 + 1_000);
            assert_eq!(
                answer.map(|a| a.check),
                Some(Check::Corrupt { seq: 1 }),
                "{format:?} bit {bit}"
            );
        }
    }
}

/// A flipped bit of the copied sender sequence number makes the reply
/// claim another probe; its time stamp names its own: corrupt for that
/// one, not a duplicate of the other (settled or pending), none lost.
#[test]
fn a_flipped_sender_sequence_number_is_corrupt_for_the_probe_its_stamp_names() {
    use super::super::books::Books;
    let s = stamp(Mode::Open, TimeFormat::Ntp, false);
    let size = s.packet_len();
    let codec = Codec::Stamp(Box::new(s.clone()));
    let t0 = 7_000_000;
    let reply_to = |seq: u64, flip: u8| {
        let mut probe = vec![0u8; size];
        codec.fill(&mut probe, seq, t0 + seq - 1);
        let mut out = reflect(Mode::Open, None, &probe);
        out[27] ^= flip;
        out
    };
    let mut books = Books::with_codec(codec.clone(), size, Duration::from_millis(10), 8);
    books.sent(4, t0);
    assert!(books.reply(&reply_to(1, 0), t0 + 100).unwrap().measured());
    // Probe 2 (wire 1) claims probe 1 (wire 0), settled and answered.
    let a = books.reply(&reply_to(2, 1), t0 + 200).unwrap();
    assert_eq!((a.check, a.duplicate), (Check::Corrupt { seq: 2 }, false));
    // Probe 3 (wire 2) claims probe 4 (wire 3), pending.
    let a = books.reply(&reply_to(3, 1), t0 + 300).unwrap();
    assert_eq!((a.check, a.duplicate), (Check::Corrupt { seq: 3 }, false));
    assert!(books.reply(&reply_to(4, 0), t0 + 400).unwrap().measured());
    let c = books.counts();
    assert_eq!(
        (c.received, c.corrupt, c.duplicates, c.lost, c.foreign),
        (4, 2, 0, 0, 0)
    );
}

/// A test packet sent back byte for byte (an echo service) has zero
/// receive and copied time stamps: it names no probe, in any mode.
#[test]
fn an_echoed_test_packet_is_not_a_reply() {
    use super::super::books::Books;
    for (mode, cos) in [(Mode::Open, false), (Mode::Authenticated, true)] {
        let s = stamp(mode, TimeFormat::Ntp, cos);
        let size = s.packet_len();
        let codec = Codec::Stamp(Box::new(s));
        let mut books = Books::with_codec(codec.clone(), size, Duration::from_millis(10), 8);
        books.sent(1, 1_000);
        let mut probe = vec![0u8; size];
        codec.fill(&mut probe, 1, 1_000);
        assert_eq!(codec.header(&probe, 2), None, "{mode:?}");
        assert!(books.reply(&probe, 2_000).is_none());
        let c = books.counts();
        assert_eq!((c.received, c.corrupt, c.foreign), (0, 0, 1), "{mode:?}");
    }
}

#[test]
fn the_echo_codec_is_the_probe_format() {
    let codec = Codec::Echo;
    let mut buf = vec![0u8; 64];
    codec.fill(&mut buf, 3, 99);
    assert_eq!(codec.header(&buf, 4), Some((3, 99)));
    assert_eq!(
        codec.verify(&buf, 64, (3, 99)),
        Check::Intact {
            seq: 3,
            sent_ns: 99
        }
    );
    buf[40] ^= 1;
    assert_eq!(codec.verify(&buf, 64, (3, 99)), Check::Corrupt { seq: 3 });
}

/// Every reply through [`book_reply`] — the path of `Flow::receive` and
/// the fleet's engine — is decoded once and checked for being ours (its
/// HMAC, authenticated) at most once, whichever matching steps the books
/// take: in time, duplicate, a damaged sequence number naming a settled
/// or a pending probe, late, and an echoed test packet (no check at all).
/// Before, the books and the STAMP figures each decoded it again: 3 times
/// for an intact reply in time, with 2 HMACs for a late one.
#[test]
fn a_reply_is_decoded_once_and_checked_at_most_once() {
    use super::super::books::Books;
    use crate::client::stamp::StampBooks;
    for mode in [Mode::Open, Mode::Authenticated] {
        let s = stamp(mode, TimeFormat::Ntp, true);
        let size = s.packet_len();
        let codec = Codec::Stamp(Box::new(s.clone()));
        let mut books = Books::with_codec(codec.clone(), size, Duration::from_millis(10), 8);
        let mut figures = StampBooks::for_codec(&codec).unwrap();
        let t0 = 7_000_000;
        books.sent(6, t0);
        // The low bit of the copied sender sequence number flipped with
        // `flip`: the reply claims its neighbour.
        let reply_to = |seq: u64, flip: u8| {
            let mut probe = vec![0u8; size];
            codec.fill(&mut probe, seq, t0 + seq - 1);
            let mut out = reflect(mode, s.key.as_ref(), &probe);
            out[if mode == Mode::Open { 27 } else { 51 }] ^= flip;
            out
        };
        let mut feed = |books: &mut Books, bytes: &[u8], at: u64, checks: u64| {
            let before = reads();
            let answer = book_reply(books, Some(&mut figures), bytes, (at, false), None);
            let (decodes, intact) = reads();
            assert_eq!(
                (decodes - before.0, intact - before.1),
                (1, checks),
                "{mode:?}: {answer:?}"
            );
            answer
        };
        assert!(
            feed(&mut books, &reply_to(1, 0), t0 + 100, 1)
                .unwrap()
                .measured()
        );
        assert!(
            feed(&mut books, &reply_to(1, 0), t0 + 150, 1)
                .unwrap()
                .duplicate
        );
        let a = feed(&mut books, &reply_to(2, 1), t0 + 200, 1).unwrap();
        assert_eq!(a.check, Check::Corrupt { seq: 2 });
        let a = feed(&mut books, &reply_to(3, 1), t0 + 300, 1).unwrap();
        assert_eq!(a.check, Check::Corrupt { seq: 3 });
        assert!(
            feed(&mut books, &reply_to(4, 0), t0 + 400, 1)
                .unwrap()
                .measured()
        );
        books.expire(t0 + 20_000_000, &mut |_| {});
        assert!(
            feed(&mut books, &reply_to(5, 0), t0 + 30_000_000, 1)
                .unwrap()
                .late
        );
        let mut echoed = vec![0u8; size];
        codec.fill(&mut echoed, 6, t0 + 5);
        assert!(feed(&mut books, &echoed, t0 + 30_000_100, 0).is_none());
        let c = books.counts();
        assert_eq!((c.received, c.corrupt, c.late, c.foreign), (4, 2, 1, 1));
    }
}
