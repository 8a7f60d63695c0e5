//! The STAMP figures of one flow, fed by hand-made replies.

use super::*;
use crate::stamp::{Key, SenderPacket};
use std::time::{Duration, UNIX_EPOCH};

const ORIGIN: u64 = 1_790_000_000_000_000_000;

fn codec(tos: Option<u8>) -> (Codec, StampConfig) {
    let config = StampConfig {
        options: StampOptions::default(),
        ssid: 9,
        size: None,
        follow_up: false,
        tlvs: Default::default(),
    };
    (config.codec(tos, ORIGIN).unwrap(), config)
}

/// A reflector's reply to our probe `seq` (books' number) sent at
/// `sent_ns`, numbered `reflector_seq`, received and sent by the reflector
/// `forward_ns` after it left (clocks in step); `cos` is the TLV it returns.
fn reply(
    codec: &Codec,
    seq: u64,
    sent_ns: u64,
    reflector_seq: u32,
    forward_ns: u64,
    cos: Option<[u8; 8]>,
) -> Vec<u8> {
    let size = match codec {
        Codec::Stamp(s) => s.packet_len(),
        Codec::Echo => unreachable!(),
    };
    let mut probe = vec![0u8; size];
    codec.fill(&mut probe, seq, sent_ns);
    let sender = SenderPacket::decode(Mode::Open, &probe).unwrap();
    let at =
        TimeFormat::Ntp.encode(UNIX_EPOCH + Duration::from_nanos(ORIGIN + sent_ns + forward_ns));
    ReflectedPacket {
        seq: reflector_seq,
        timestamp: at,
        error_estimate: TimeFormat::Ntp.error_estimate(),
        ssid: sender.ssid,
        receive_timestamp: at,
        sender_seq: sender.seq,
        sender_timestamp: sender.timestamp,
        sender_error_estimate: sender.error_estimate,
        sender_ttl: 255,
    }
    .encode(Mode::Open, &mut probe);
    if let Some(tlv) = cos {
        probe[44..52].copy_from_slice(&tlv);
    }
    probe
}

fn intact(seq: u64, sent_ns: u64) -> Check {
    Check::Intact { seq, sent_ns }
}

fn summary_of(books: &StampBooks, lost: u64) -> StampSummary {
    use crate::client::stats::RttClock;
    let run = RunSummary {
        target: "127.0.0.1:862".into(),
        size: 44,
        client_drops: None,
        lost_in_client: None,
        rtt_clock: RttClock::User,
        ..RunSummary::for_tests()
    };
    summarize(run, &[(books, lost, 0)])
}

#[test]
fn one_way_delays_come_from_the_reflectors_time_stamps() {
    let (codec, _) = codec(None);
    let mut books = StampBooks::for_codec(&codec).unwrap();
    // 30 µs out, the reply back 20 µs after the reflector sent it.
    let bytes = reply(&codec, 1, 1_000_000, 0, 30_000, None);
    books.reply(&bytes, 1, intact(1, 1_000_000), 1_050_000, None);
    let s = summary_of(&books, 0);
    assert!((s.owd_forward_us.unwrap().min - 30.0).abs() < 0.01, "{s:?}");
    assert!((s.owd_reverse_us.unwrap().min - 20.0).abs() < 0.01, "{s:?}");
    assert_eq!(s.owd_invalid, 0);
    assert!(!s.reflector_stateful && !s.reflector_clock_synchronized);
    assert_eq!((s.lost_forward, s.lost_reverse), (Some(0), Some(0)));
    assert_eq!(s.dscp_forward_changed, None, "no --tos, no CoS figures");
}

#[test]
fn impossible_reflector_time_stamps_make_the_one_way_figures_invalid() {
    let (codec, _) = codec(None);
    let rewrite = |bytes: &mut Vec<u8>, rx: u64, tx: u64| {
        let mut r = ReflectedPacket::decode(Mode::Open, bytes).unwrap();
        r.receive_timestamp = rx;
        r.timestamp = tx;
        r.encode(Mode::Open, bytes);
    };
    // Received at the end of time, sent at its beginning.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut bytes = reply(&codec, 1, 1_000_000, 0, 30_000, None);
    rewrite(&mut bytes, u64::MAX, 0);
    books.reply(&bytes, 1, intact(1, 1_000_000), 1_050_000, None);
    // And one honest reply: one liar is enough to trust none.
    let honest = reply(&codec, 2, 2_000_000, 1, 30_000, None);
    books.reply(&honest, 2, intact(2, 2_000_000), 2_050_000, None);
    let s = summary_of(&books, 0);
    assert_eq!((s.owd_forward_us, s.owd_reverse_us), (None, None), "{s:?}");
    assert_eq!(s.owd_invalid, 1);
    let json = serde_json::to_value(&s).unwrap();
    assert!(
        json["owd_forward_us"].is_null() && json["owd_invalid"] == 1,
        "{json}"
    );
    let text = crate::client::report::stamp_summary(&s);
    assert!(
        text.contains("one-way delays: invalid, impossible reflector time stamps in 1 reply ("),
        "{text}"
    );
    assert!(!text.contains("one-way forward"), "{text}");

    // Held 10 ms by a reflector while the whole round trip took 50 µs.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut bytes = reply(&codec, 1, 1_000_000, 0, 30_000, None);
    let at = |ns: u64| TimeFormat::Ntp.encode(UNIX_EPOCH + Duration::from_nanos(ORIGIN + ns));
    rewrite(&mut bytes, at(1_030_000), at(11_030_000));
    books.reply(&bytes, 1, intact(1, 1_000_000), 1_050_000, None);
    assert_eq!(summary_of(&books, 0).owd_invalid, 1);

    // Clocks an hour apart are an error of the clocks, not impossible.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut bytes = reply(&codec, 1, 1_000_000, 0, 30_000, None);
    rewrite(&mut bytes, at(3_600_000_000_000), at(3_600_000_010_000));
    books.reply(&bytes, 1, intact(1, 1_000_000), 1_050_000, None);
    let s = summary_of(&books, 0);
    assert_eq!(s.owd_invalid, 0);
    assert!(s.owd_forward_us.unwrap().min > 3.5e9, "{s:?}");

    // A clock that was never set (both stamps 0, in 1900) is no clock.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut bytes = reply(&codec, 1, 1_000_000, 0, 30_000, None);
    rewrite(&mut bytes, 0, 0);
    books.reply(&bytes, 1, intact(1, 1_000_000), 1_050_000, None);
    assert_eq!(summary_of(&books, 0).owd_invalid, 1);
}

#[test]
fn a_stateful_reflector_splits_the_loss_by_direction() {
    // Packets 0..8 (books' 1..=8): the reflector never saw 2 and did not
    // get the reply to 4 back to us; it numbers what it saw 0, 1, 2, ...
    let (codec, _) = codec(None);
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut r = 0;
    for ours in 0..8u64 {
        if ours == 2 {
            continue;
        }
        let theirs = r;
        r += 1;
        if ours == 4 {
            continue;
        }
        let bytes = reply(&codec, ours + 1, ours * 10, theirs, 5, None);
        books.reply(
            &bytes,
            ours + 1,
            intact(ours + 1, ours * 10),
            ours * 10 + 10,
            None,
        );
    }
    let s = summary_of(&books, 2);
    assert!(s.reflector_stateful);
    assert_eq!(
        (s.lost_forward, s.lost_reverse, s.lost_unattributed),
        (Some(1), Some(1), Some(0))
    );
    // Stateless, with loss: unknown.
    let mut stateless = StampBooks::for_codec(&codec).unwrap();
    let bytes = reply(&codec, 1, 0, 0, 5, None);
    stateless.reply(&bytes, 1, intact(1, 0), 10, None);
    assert_eq!(summary_of(&stateless, 1).lost_forward, None);
}

#[test]
fn the_reflectors_sequence_numbers_unwrap_past_2_to_the_32() {
    let (codec, _) = codec(None);
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let ours = (1u64 << 32) + 5; // wire seq 5, books' seq 2^32 + 6
    let bytes = reply(&codec, ours + 1, 100, 3, 5, None);
    books.reply(&bytes, ours + 1, intact(ours + 1, 100), 110, None);
    assert_eq!(books.furthest, Some(((1 << 32) + 3, ours)));
}

fn cos_tlv(flags: u8, dscp1: u8, dscp2: u8, rp: u8) -> [u8; 8] {
    let mut tlv = ClassOfService {
        dscp1,
        dscp2,
        ecn: 0,
        rp,
        ..ClassOfService::default()
    }
    .tlv();
    tlv[0] = flags;
    tlv
}

#[test]
fn the_class_of_service_tlv_tells_a_forward_from_a_reverse_re_mark() {
    let ef = 46 << 2;
    let (codec, _) = codec(Some(ef));
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut feed = |seq: u64, tlv: [u8; 8], tos: Option<u8>| {
        let bytes = reply(&codec, seq, seq, (seq - 1) as u32, 5, Some(tlv));
        books.reply(&bytes, seq, intact(seq, seq), seq + 10, tos);
    };
    // Untouched both ways.
    feed(1, cos_tlv(0, 46, 46, 0), Some(ef));
    // Re-marked to CS1 on the way out; the reflector replied with DSCP1 as asked.
    feed(2, cos_tlv(0, 46, 8, 0), Some(ef));
    // Arrived as sent; re-marked to CS1 on the way back.
    feed(3, cos_tlv(0, 46, 46, 0), Some(8 << 2));
    // RP = 1: the reflector replied with the DSCP it received (0), and 0 came back.
    feed(4, cos_tlv(0, 46, 0, 1), Some(0));
    let s = summary_of(&books, 0);
    assert_eq!(s.dscp_forward_changed, Some(2));
    assert_eq!(s.dscp_reverse_changed, Some(1));
}

#[test]
fn a_reflector_that_flags_the_tlv_supports_no_class_of_service() {
    let ef = 46 << 2;
    let (codec, _) = codec(Some(ef));
    for flags in [tlv_flags::U, tlv_flags::M, tlv_flags::I] {
        let mut books = StampBooks::for_codec(&codec).unwrap();
        let bytes = reply(&codec, 1, 1, 0, 5, Some(cos_tlv(flags, 46, 0, 0)));
        books.reply(&bytes, 1, intact(1, 1), 20, Some(ef));
        let s = summary_of(&books, 0);
        assert_eq!(
            (s.dscp_forward_changed, s.dscp_reverse_changed),
            (None, None)
        );
    }
    // Without the TOS of the reply, the way back cannot be judged.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let bytes = reply(&codec, 1, 1, 0, 5, Some(cos_tlv(0, 46, 46, 0)));
    books.reply(&bytes, 1, intact(1, 1), 20, None);
    let s = summary_of(&books, 0);
    assert_eq!(
        (s.dscp_forward_changed, s.dscp_reverse_changed),
        (Some(0), None)
    );
}

/// A reflector that copies the TLV back unprocessed leaves DSCP2 at 0: that
/// is not a forward re-mark to CS0 but a TLV not filled in. Sent as CS0, the
/// same bytes are the true answer.
#[test]
fn a_class_of_service_tlv_copied_back_unchanged_is_not_filled_in() {
    let ef = 46 << 2;
    let (marked, _) = codec(Some(ef));
    let mut books = StampBooks::for_codec(&marked).unwrap();
    for seq in 1..=3 {
        let bytes = reply(
            &marked,
            seq,
            seq,
            (seq - 1) as u32,
            5,
            Some(cos_tlv(0, 46, 0, 0)),
        );
        books.reply(&bytes, seq, intact(seq, seq), seq + 10, Some(0));
    }
    let s = summary_of(&books, 0);
    assert_eq!(
        (s.dscp_forward_changed, s.dscp_reverse_changed),
        (None, None)
    );
    let (cs0, _) = codec(Some(0));
    let mut books = StampBooks::for_codec(&cs0).unwrap();
    let bytes = reply(&cs0, 1, 1, 0, 5, Some(cos_tlv(0, 0, 0, 0)));
    books.reply(&bytes, 1, intact(1, 1), 20, Some(0));
    let s = summary_of(&books, 0);
    assert_eq!(
        (s.dscp_forward_changed, s.dscp_reverse_changed),
        (Some(0), Some(0))
    );
}

#[test]
fn the_packet_length_holds_the_tlv_when_marked() {
    let mut config = StampConfig {
        options: StampOptions::default(),
        ssid: 1,
        size: None,
        follow_up: false,
        tlvs: Default::default(),
    };
    assert_eq!(
        (config.packet_len(None), config.packet_len(Some(0))),
        (44, 52)
    );
    config.options.key_file = Some("k".into());
    // Authenticated, the CoS TLV comes with the HMAC TLV that protects it.
    assert_eq!(config.packet_len(Some(0xb8)), 140);
    config.size = Some(200);
    assert_eq!(config.packet_len(Some(0xb8)), 200);
    let _ = Key::from_bytes(b"0123456789abcdef").unwrap();
}

#[test]
fn a_size_must_hold_the_packet_and_room_for_an_extra_padding_tlv() {
    assert_eq!(check_size(false, None, false, 44), Ok(()));
    assert_eq!(check_size(false, None, false, 48), Ok(()));
    assert_eq!(check_size(true, Some(0xb8), false, 140), Ok(()));
    let short = check_size(false, Some(0xb8), false, 50).unwrap_err();
    assert!(
        short.contains("shorter than this STAMP packet (52 bytes"),
        "{short}"
    );
    let gap = check_size(false, None, false, 46).unwrap_err();
    assert!(gap.contains("use 44 or 48 and up"), "{gap}");
    // Authenticated padding comes with an HMAC TLV: 112 + 20 + 4 at least.
    assert_eq!(check_size(true, None, false, 112), Ok(()));
    assert_eq!(check_size(true, None, false, 132), Ok(()));
    assert_eq!(check_size(true, None, false, 136), Ok(()));
    let auth_gap = check_size(true, None, false, 120).unwrap_err();
    assert!(
        auth_gap.contains("use 112, 132 or 136 and up"),
        "{auth_gap}"
    );
}

#[test]
fn a_padded_packet_carries_an_extra_padding_tlv_to_its_size() {
    let config = StampConfig {
        options: StampOptions::default(),
        ssid: 3,
        size: Some(100),
        follow_up: false,
        tlvs: Default::default(),
    };
    let codec = config.codec(Some(46 << 2), ORIGIN).unwrap();
    let mut buf = vec![0xffu8; config.packet_len(Some(46 << 2))];
    codec.fill(&mut buf, 1, 5);
    // CoS TLV (U set), then Extra Padding (U set) of 100 - 52 - 4 = 44 zero bytes.
    assert_eq!(&buf[44..48], &[0x80, 4, 0, 4]);
    assert_eq!(&buf[52..56], &[0x80, 1, 0, 44]);
    assert!(buf[56..].iter().all(|&b| b == 0));
}

/// Authenticated, a reply's TLVs count only when its HMAC TLV passes (RFC
/// 8972 §4.8): the reflector's answer with a good HMAC TLV is used; the same
/// answer with DSCP2 rewritten on the way (the base packet's HMAC does not
/// cover it) is not.
#[test]
fn authenticated_a_reply_whose_hmac_tlv_fails_is_not_used() {
    let path = std::env::temp_dir().join(format!("udp-echo-books-key-{}", std::process::id()));
    std::fs::write(&path, "00112233445566778899aabbccddeeff").unwrap();
    let config = StampConfig {
        options: StampOptions {
            key_file: Some(path.clone()),
            ..StampOptions::default()
        },
        ssid: 9,
        size: None,
        follow_up: false,
        tlvs: Default::default(),
    };
    let ef = 46 << 2;
    let codec = config.codec(Some(ef), ORIGIN).unwrap();
    let key = config.options.key().unwrap().unwrap();
    std::fs::remove_file(&path).unwrap();
    let answer = |tamper: bool| {
        let mut probe = vec![0u8; config.packet_len(Some(ef))];
        assert_eq!(probe.len(), 140, "base, CoS TLV, HMAC TLV");
        codec.fill(&mut probe, 1, 1);
        let sender = SenderPacket::decode(Mode::Authenticated, &probe).unwrap();
        let at = TimeFormat::Ntp.encode(UNIX_EPOCH + Duration::from_nanos(ORIGIN + 3));
        ReflectedPacket {
            seq: 0,
            timestamp: at,
            error_estimate: TimeFormat::Ntp.error_estimate(),
            ssid: sender.ssid,
            receive_timestamp: at,
            sender_seq: sender.seq,
            sender_timestamp: sender.timestamp,
            sender_error_estimate: sender.error_estimate,
            sender_ttl: 255,
        }
        .encode(Mode::Authenticated, &mut probe);
        probe[112..120].copy_from_slice(&cos_tlv(0, 46, 46, 0));
        probe[120] = 0;
        let (head, tlvs) = probe.split_at_mut(112);
        crate::stamp::packet::sign_hmac_tlv(tlvs, 8, &head[..4], &key);
        if tamper {
            probe[117] ^= 0x10; // DSCP2 46 -> 47 after the reflector signed
        }
        key.sign(&mut probe);
        probe
    };
    for (tamper, forward) in [(false, Some(0)), (true, None)] {
        let mut books = StampBooks::for_codec(&codec).unwrap();
        books.reply(&answer(tamper), 1, intact(1, 1), 20, Some(ef));
        let s = summary_of(&books, 0);
        assert_eq!(s.dscp_forward_changed, forward, "tampered {tamper}");
    }
}

#[test]
fn follow_up_rides_after_the_cos_tlv_and_under_the_hmac_tlv() {
    let mut config = StampConfig {
        options: StampOptions::default(),
        ssid: 3,
        size: None,
        follow_up: true,
        tlvs: Default::default(),
    };
    assert_eq!(config.packet_len(None), 64);
    assert_eq!(config.packet_len(Some(0)), 72);
    assert_eq!(
        config.tlv_names(Some(0)),
        ["Class of Service", "Follow-Up Telemetry"]
    );
    let codec = config.codec(Some(46 << 2), ORIGIN).unwrap();
    let mut buf = vec![0xffu8; 72];
    codec.fill(&mut buf, 1, 5);
    assert_eq!(&buf[52..56], &[0x80, 7, 0, 16], "U set, type 7, length 16");
    assert!(buf[56..72].iter().all(|&b| b == 0));
    // Authenticated: the HMAC TLV protects it (RFC 8972 §4.8).
    config.options.key_file = Some("k".into());
    assert_eq!(config.packet_len(None), 112 + 20 + 20);
    assert_eq!(check_size(true, None, true, 140), Err("--size 140 is shorter than this STAMP packet (152 bytes, authenticated and the Follow-Up Telemetry TLV)".into()));
}

/// draft-ietf-ippm-stamp-cos-ecn: the ECN the reflector saw (the TLV's ECN
/// field) against what we sent (Not-ECT), and what came back against what
/// its RPE says it sent.
#[test]
fn the_class_of_service_tlv_tells_ecn_each_way() {
    let ef = 46 << 2;
    let (marked, _) = codec(Some(ef));
    let codec = marked.clone();
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut feed = |seq: u64, ecn: u8, rpe: u8, tos: Option<u8>| {
        let mut tlv = ClassOfService {
            dscp1: 46,
            dscp2: 46,
            ecn,
            rpe,
            ..ClassOfService::default()
        }
        .tlv();
        tlv[0] = 0;
        let bytes = reply(&codec, seq, seq, (seq - 1) as u32, 5, Some(tlv));
        books.reply(&bytes, seq, intact(seq, seq), seq + 10, tos);
    };
    // Untouched both ways: Not-ECT out, Not-ECT (EC1) back.
    feed(1, 0, RPE_SET, Some(ef));
    // CE on the way out; back as sent.
    feed(2, 3, RPE_SET, Some(ef));
    // Out as sent; CE on the way back.
    feed(3, 0, RPE_SET, Some(ef | 3));
    // The reflector refused EC1 (RPE 0b10: Not-ECT), Not-ECT came back.
    feed(4, 0, RPE_UNABLE, Some(ef));
    let s = summary_of(&books, 0);
    assert_eq!(s.ecn_forward_changed, Some(1));
    assert_eq!(s.ecn_forward_seen, Some(BTreeMap::from([(0, 3), (3, 1)])));
    assert_eq!(s.ecn_reverse_changed, Some(1));
    assert_eq!(s.ecn_refused, Some(1));
    // A reflector without the draft (RPE 0): the way back unknown.
    let mut books = StampBooks::for_codec(&codec).unwrap();
    let mut tlv = cos_tlv(0, 46, 46, 0);
    tlv[0] = 0;
    let bytes = reply(&codec, 1, 1, 0, 5, Some(tlv));
    books.reply(&bytes, 1, intact(1, 1), 20, Some(ef));
    let s = summary_of(&books, 0);
    assert_eq!(
        (s.ecn_forward_changed, s.ecn_reverse_changed),
        (Some(0), None)
    );
    // Without --tos: nothing of it.
    let (plain, _) = self::codec(None);
    let mut books = StampBooks::for_codec(&plain).unwrap();
    let bytes = reply(&plain, 1, 1, 0, 5, None);
    books.reply(&bytes, 1, intact(1, 1), 20, Some(0));
    let s = summary_of(&books, 0);
    assert_eq!((s.ecn_forward_seen, s.ecn_refused), (None, None));
}

/// `--stamp-tlv`'s answers read from every truncation and bit flip of a
/// reply's TLVs without a panic, each TLV filled in or flagged.
#[test]
fn hostile_tlv_answers_are_counted_never_a_panic() {
    let config = StampConfig {
        options: StampOptions::default(),
        ssid: 3,
        size: None,
        follow_up: false,
        tlvs: SenderTlvs::parse("all").unwrap(),
    };
    let tos = Some(46 << 2);
    let codec = config.codec(tos, ORIGIN).unwrap();
    let len = config.packet_len(tos);
    assert_eq!(len, 44 + 8 + 16 + 60 + 8);
    let mut request = vec![0u8; len];
    codec.fill(&mut request, 1, 5);
    // Our reflector's answer to it, then damaged every way.
    let mut reflector = crate::stamp::Reflector::new(crate::stamp::ReflectorConfig {
        stateful: true,
        ..Default::default()
    })
    .with_local("127.0.0.1:862".parse().unwrap());
    let arrival = crate::stamp::Arrival {
        received: UNIX_EPOCH + Duration::from_nanos(ORIGIN + 6),
        tos,
        ttl: Some(64),
        destination: None,
    };
    let mut reply = request.clone();
    reflector
        .reflect_in_place(
            &mut reply,
            "127.0.0.1:40000".parse().unwrap(),
            &arrival,
            UNIX_EPOCH + Duration::from_nanos(ORIGIN + 7),
            0,
        )
        .unwrap();
    let mut books = StampBooks::for_codec(&codec).unwrap();
    books.reply(&reply, 1, intact(1, 5), 20, tos);
    let mut fed = 1;
    for cut in 44..reply.len() {
        books.reply(&reply[..cut], 1, intact(1, 5), 20, tos);
        fed += 1;
    }
    for bit in 44 * 8..reply.len() * 8 {
        let mut flipped = reply.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        books.reply(&flipped, 1, intact(1, 5), 20, tos);
        fed += 1;
    }
    let t = summary_of(&books, 0).stamp_tlvs.unwrap();
    let dm = t.direct_measurement.unwrap();
    let loc = t.location.unwrap();
    let access = t.access_report.unwrap();
    assert_eq!(dm.filled + dm.flagged, fed);
    assert_eq!(loc.filled + loc.flagged, fed);
    assert_eq!(access.acknowledged + access.flagged, fed);
    // The undamaged reply: all filled in.
    assert!(dm.filled >= 1 && loc.filled >= 1 && access.acknowledged >= 1);
}

/// `dna` and `return-path=ADDR` parse; bad addresses and names are one line.
#[test]
fn rfc9503_tlvs_parse() {
    let t = SenderTlvs::parse("all,dna,return-path=127.0.0.1").unwrap();
    assert!(t.direct && t.location && t.access && t.dna);
    assert_eq!(t.return_to, Some("127.0.0.1".parse().unwrap()));
    let t = SenderTlvs::parse("return-path=[::1]").unwrap();
    assert_eq!(t.return_to, Some("::1".parse().unwrap()));
    assert!(!t.dna && !t.direct);
    let e = SenderTlvs::parse("return-path=host").unwrap_err();
    assert!(e.contains("not an IPv4 or IPv6 address"), "{e}");
    let e = SenderTlvs::parse("dnax").unwrap_err();
    assert!(e.contains("dna or return-path=ADDR"), "{e}");
    // `all` is still the three RFC 8972 ones.
    assert!(!SenderTlvs::parse("all").unwrap().dna);
}

/// The Destination Node Address TLV is 8 bytes to an IPv4 target, 20 to
/// an IPv6 one (20 before the target is resolved); the Return Path TLV
/// wraps its Return Address
/// sub-TLV: 12 or 24. Both written U set, as a sender sends them.
#[test]
fn rfc9503_tlvs_are_sized_by_family() {
    let dna = SenderTlvs::parse("dna").unwrap();
    assert_eq!(dna.len(), 20);
    let v4 = dna.for_peer("192.0.2.7".parse().unwrap());
    let v6 = dna.for_peer("2001:db8::7".parse().unwrap());
    assert_eq!((v4.len(), v6.len()), (8, 20));
    let mut buf = [0xeeu8; 64];
    assert_eq!(v4.write(&mut buf, 1), 8);
    assert_eq!(buf[..8], [0x80, 9, 0, 4, 192, 0, 2, 7]);
    assert_eq!(buf[8], 0xee);
    assert_eq!(v6.write(&mut buf, 1), 20);
    assert_eq!(buf[..4], [0x80, 9, 0, 16]);
    assert_eq!(buf[4..6], [0x20, 0x01]);
    // The library's allocating writer says the same.
    assert_eq!(
        buf[..20],
        crate::stamp::return_path::destination_tlv("2001:db8::7".parse().unwrap())[..]
    );
    for (addr, len) in [("127.0.0.1", 12), ("::1", 24)] {
        let rp = SenderTlvs::parse(&format!("return-path={addr}")).unwrap();
        assert_eq!(rp.len(), len);
        assert_eq!(rp.write(&mut buf, 1), len);
        assert_eq!(
            buf[..len],
            crate::stamp::return_path::return_address_tlv(addr.parse().unwrap())[..]
        );
    }
    // In the packet length, and named, in order.
    let config = StampConfig {
        options: StampOptions::default(),
        ssid: 3,
        size: None,
        follow_up: false,
        tlvs: SenderTlvs::parse("access,dna,return-path=127.0.0.1")
            .unwrap()
            .for_peer("127.0.0.1".parse().unwrap()),
    };
    assert_eq!(config.packet_len(None), 44 + 8 + 8 + 12);
    assert_eq!(
        config.tlv_names(None),
        ["Access Report", "Destination Node Address", "Return Path"]
    );
}

/// The RFC 9503 answers of our reflector: the DNA recognised when it is the
/// address the request was sent to, U otherwise; the Return Path honoured
/// for an allowed address, U otherwise; and every truncation and bit flip
/// of the reply counted one way or another, never a panic.
#[test]
fn rfc9503_answers_are_counted_never_a_panic() {
    let local: std::net::SocketAddr = "127.0.0.1:862".parse().unwrap();
    let source: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let answers = |peer: &str, allow: bool| {
        let config = StampConfig {
            options: StampOptions::default(),
            ssid: 3,
            size: None,
            follow_up: false,
            tlvs: SenderTlvs::parse("dna,return-path=127.0.0.1")
                .unwrap()
                .for_peer(peer.parse().unwrap()),
        };
        let codec = config.codec(None, ORIGIN).unwrap();
        let mut request = vec![0u8; config.packet_len(None)];
        codec.fill(&mut request, 1, 5);
        let return_allow = if allow {
            crate::stamp::return_path::ReturnAllow::new(vec![("127.0.0.0".parse().unwrap(), 8)])
        } else {
            Default::default()
        };
        let mut reflector = crate::stamp::Reflector::new(crate::stamp::ReflectorConfig {
            return_allow,
            ..Default::default()
        })
        .with_local(local);
        let arrival = crate::stamp::Arrival {
            received: UNIX_EPOCH + Duration::from_nanos(ORIGIN + 6),
            tos: None,
            ttl: Some(64),
            destination: None,
        };
        let mut reply = request.clone();
        reflector
            .reflect_in_place(
                &mut reply,
                source,
                &arrival,
                UNIX_EPOCH + Duration::from_nanos(ORIGIN + 7),
                0,
            )
            .unwrap();
        let mut books = StampBooks::for_codec(&codec).unwrap();
        books.reply(&reply, 1, intact(1, 5), 20, None);
        let clean = summary_of(&books, 0).stamp_tlvs.unwrap();
        let mut fed = 1;
        // (Shorter than the base packet: not a reply, the books' concern.)
        for cut in 44..reply.len() {
            books.reply(&reply[..cut], 1, intact(1, 5), 20, None);
            fed += 1;
        }
        for bit in 44 * 8..reply.len() * 8 {
            let mut flipped = reply.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            books.reply(&flipped, 1, intact(1, 5), 20, None);
            fed += 1;
        }
        let t = summary_of(&books, 0).stamp_tlvs.unwrap();
        let total = |a: AddrAnswers| a.recognised + a.unrecognised + a.malformed + a.other;
        let dna = t.destination_node_address.unwrap();
        let rp = t.return_path.unwrap();
        assert_eq!(total(dna), fed);
        assert_eq!(total(rp.answers), fed);
        assert!(rp.answers.malformed > 0, "a flipped length is M: {rp:?}");
        (
            clean.destination_node_address.unwrap(),
            clean.return_path.unwrap().answers,
        )
    };
    let yes = AddrAnswers {
        recognised: 1,
        ..Default::default()
    };
    let u = AddrAnswers {
        unrecognised: 1,
        ..Default::default()
    };
    assert_eq!(answers("127.0.0.1", true), (yes, yes));
    assert_eq!(answers("127.0.0.1", false), (yes, u));
    assert_eq!(answers("127.0.0.2", false), (u, u));
}
