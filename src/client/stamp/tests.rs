//! The STAMP figures of one flow, fed by hand-made replies; the packet's
//! length and `--size` (`size.rs`), `--stamp-tlv`'s TLVs (`tlvs.rs`).

use super::*;
use crate::client::probe::Check;
use crate::stamp::packet::{RPE_SET, RPE_UNABLE, tlv_flags};
use crate::stamp::{Key, ReflectedPacket, SenderPacket, TimeFormat};
use std::time::{Duration, UNIX_EPOCH};

mod size;
mod tlvs;

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
