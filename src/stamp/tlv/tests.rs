//! The TLV codec and the reflector's pass over TLVs, each piece alone.

use super::*;

fn cx(tos: Option<u8>, key: Option<&Key>) -> TlvContext<'_> {
    TlvContext {
        ecn_policy: EcnPolicy::NotEct,
        arrived_tos: tos,
        timestamp_info: TimestampInfo::REFLECTOR,
        key,
        seq: [0, 0, 0, 7],
        session: None,
        location: None,
        follow_up: None,
        sent_to: None,
        return_path: None,
    }
}

fn key() -> Key {
    Key::from_bytes(b"sixteen byte key").unwrap()
}

#[test]
fn a_sender_sets_u_and_the_reflector_clears_it_on_what_it_understands() {
    // Extra Padding, Class of Service (EF), Timestamp Information, an
    // unknown type 200; the sender's U on each, a reserved flag bit on one.
    let mut tlvs = vec![0x80 | 0x01, 1, 0, 2, 0xaa, 0xbb];
    tlvs.extend_from_slice(
        &ClassOfService {
            dscp1: 46,
            ..Default::default()
        }
        .tlv(),
    );
    tlvs.extend_from_slice(&TimestampInfo::request_tlv());
    tlvs.extend_from_slice(&[0x80, 200, 0, 1, 0xcc]);
    let walk = reflect_tlvs(&mut tlvs, &cx(Some(0xb8 | 2), None));
    assert_eq!(walk.walked, 4);
    assert_eq!(walk.reply_tos, Some(46 << 2));
    assert_eq!(
        &tlvs[..6],
        &[0, 1, 0, 2, 0xaa, 0xbb],
        "padding: flags 0, value as sent"
    );
    // DSCP1 46, DSCP2 46, ECN ECT(0) = 2, RP 0 (RFC 8972 §4.4 layout);
    // EC1 Not-ECT honoured: RPE 0b11 (draft-ietf-ippm-stamp-cos-ecn).
    assert_eq!(
        &tlvs[6..14],
        &[0, 4, 0, 4, 0b1011_1010, 0b1110_1000, 0b0011_0000, 0]
    );
    // Sync source 5 (local), method 2 (software) both ways (RFC 8972 §4.3, §5.4, §5.5).
    assert_eq!(&tlvs[14..22], &[0, 3, 0, 4, 5, 2, 5, 2]);
    assert_eq!(&tlvs[22..], &[tlv_flags::U, 200, 0, 1, 0xcc]);
}

#[test]
fn timestamp_information_layout_and_malformed_lengths() {
    let info = TimestampInfo {
        sync_in: sync_source::PTP,
        method_in: timestamp_method::HW_ASSIST,
        sync_out: sync_source::NTP,
        method_out: timestamp_method::SW_LOCAL,
    };
    assert_eq!(info.value(), [2, 1, 1, 2]);
    assert_eq!(TimestampInfo::from_value(info.value()), info);
    assert_eq!(TimestampInfo::request_tlv(), [0x80, 3, 0, 4, 0, 0, 0, 0]);
    // With a sub-TLV after the four fields: filled in, the rest left.
    let mut long = vec![0x80, 3, 0, 8, 0, 0, 0, 0, 9, 9, 9, 9];
    reflect_tlvs(&mut long, &cx(None, None));
    assert_eq!(long, [0, 3, 0, 8, 5, 2, 5, 2, 9, 9, 9, 9]);
    // Length 2: malformed, processing stops, the rest as it came.
    let mut short = vec![0x80, 3, 0, 2, 0, 0, 0x80, 200, 0, 0];
    reflect_tlvs(&mut short, &cx(None, None));
    assert_eq!(short, [tlv_flags::M, 3, 0, 2, 0, 0, 0x80, 200, 0, 0]);
}

#[test]
fn extra_padding_fills_its_buffer_or_refuses() {
    let mut buf = [7u8; 10];
    write_extra_padding(&mut buf).unwrap();
    assert_eq!(buf, [0x80, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut header_only = [7u8; 4];
    write_extra_padding(&mut header_only).unwrap();
    assert_eq!(header_only, [0x80, 1, 0, 0]);
    assert!(write_extra_padding(&mut [0u8; 3]).is_none());
}

/// A sender's CoS TLV and HMAC TLV over sequence number 7 under `key`.
fn signed(key: &Key) -> Vec<u8> {
    let mut tlvs = ClassOfService {
        dscp1: 10,
        ..Default::default()
    }
    .tlv()
    .to_vec();
    tlvs.extend_from_slice(&sender_header(TLV_HMAC, 16));
    tlvs.extend_from_slice(&[0; 16]);
    sign_hmac_tlv(&mut tlvs, CLASS_OF_SERVICE_LEN, &[0, 0, 0, 7], key);
    tlvs
}

#[test]
fn the_hmac_tlv_covers_the_sequence_number_and_the_tlvs_before_it() {
    let key = key();
    let tlvs = signed(&key);
    // HMAC-SHA-256(key, seq ‖ CoS TLV) truncated to 16 bytes (RFC 8972 §4.8).
    assert_eq!(
        &tlvs[12..28],
        &key.tlv_digest(&[0, 0, 0, 7], &tlvs[..8])[..],
    );
    assert!(tlvs_authentic(&tlvs, &[0, 0, 0, 7], &key));
    assert!(
        !tlvs_authentic(&tlvs, &[0, 0, 0, 8], &key),
        "another sequence number"
    );
    // Every bit but the HMAC TLV's own flags byte (byte 8), which the
    // digest does not cover (RFC 8972 §4.8: the TLVs *before* it).
    for bit in (0..tlvs.len() * 8).filter(|b| b / 8 != 8) {
        let mut flipped = tlvs.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(!tlvs_authentic(&flipped, &[0, 0, 0, 7], &key), "bit {bit}");
    }
    // Extra Padding may follow it; nothing else may.
    let mut padded = tlvs.clone();
    padded.extend_from_slice(&[0x80, 1, 0, 2, 0, 0]);
    assert!(tlvs_authentic(&padded, &[0, 0, 0, 7], &key));
    let mut misplaced = tlvs.clone();
    misplaced.extend_from_slice(&TimestampInfo::request_tlv());
    assert!(!tlvs_authentic(&misplaced, &[0, 0, 0, 7], &key));
    // No HMAC TLV: only a lone Extra Padding TLV (or nothing) passes.
    assert!(tlvs_authentic(&[0x80, 1, 0, 1, 0], &[0; 4], &key));
    assert!(tlvs_authentic(&[], &[0; 4], &key));
    assert!(!tlvs_authentic(&tlvs[..8], &[0, 0, 0, 7], &key));
}

#[test]
fn the_reflector_processes_authentic_tlvs_and_flags_every_tlv_i_otherwise() {
    let key = key();
    let mut tlvs = signed(&key);
    let walk = reflect_tlvs(&mut tlvs, &cx(Some(0), Some(&key)));
    assert!(!walk.integrity_failed);
    assert_eq!(walk.sign_hmac_at, Some(8));
    assert_eq!((tlvs[0], tlvs[8]), (0, 0), "U cleared on both");
    assert_eq!(
        ClassOfService::from_value(tlvs[4..8].try_into().unwrap()).dscp2,
        0
    );
    sign_hmac_tlv(&mut tlvs, 8, &[0, 0, 0, 3], &key);
    assert!(
        tlvs_authentic(&tlvs, &[0, 0, 0, 3], &key),
        "the reply's own HMAC"
    );

    let mut bad = signed(&key);
    bad[5] ^= 0x10; // a middlebox rewrites the CoS TLV
    let before = bad.clone();
    let walk = reflect_tlvs(&mut bad, &cx(Some(0xb8), Some(&key)));
    assert!(walk.integrity_failed);
    assert_eq!((walk.reply_tos, walk.sign_hmac_at), (None, None));
    assert_eq!((bad[0], bad[8]), (tlv_flags::I, tlv_flags::I));
    assert_eq!(
        (&bad[1..8], &bad[9..]),
        (&before[1..8], &before[9..]),
        "nothing used"
    );

    // Unauthenticated mode: no key to check an HMAC TLV with.
    let mut open = signed(&key);
    let walk = reflect_tlvs(&mut open, &cx(Some(0), None));
    assert!(walk.integrity_failed);
    assert_eq!(open[0], tlv_flags::I);
}

#[test]
fn follow_up_and_rfc_9503_tlvs_survive_every_truncation_and_bit_flip() {
    use crate::stamp::followup::FollowUp;
    use crate::stamp::return_path::{ReturnAllow, destination_tlv, return_address_tlv};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let loopback = ReturnAllow::new(vec![(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8)]);
    let source = SocketAddr::from(([127, 0, 0, 1], 4000));
    let sent_to = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let previous = FollowUp {
        seq: 4,
        timestamp: 99,
        mode: 2,
    };
    let context = || TlvContext {
        follow_up: Some(previous),
        sent_to: Some(sent_to),
        return_path: Some((source, &loopback)),
        ..cx(Some(0), None)
    };
    let mut chain = FollowUp::request_tlv().to_vec();
    chain.extend_from_slice(&destination_tlv(sent_to));
    chain.extend_from_slice(&return_address_tlv(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    let mut whole = chain.clone();
    let walk = reflect_tlvs(&mut whole, &context());
    assert_eq!(walk.walked, 3);
    assert!(walk.follow_up);
    assert_eq!(
        walk.reply_to,
        Some(SocketAddr::from(([127, 0, 0, 2], 4000)))
    );
    assert_eq!(
        (whole[0], whole[20], whole[28]),
        (0, 0, 0),
        "all understood"
    );
    assert_eq!(FollowUp::from_value(&whole[4..20]), Some(previous));
    for len in 0..=chain.len() {
        let mut t = chain[..len].to_vec();
        let walk = reflect_tlvs(&mut t, &context());
        assert_eq!(t.len(), len);
        assert!(walk.walked <= 3);
        assert!(
            walk.reply_to.is_none() || len == chain.len(),
            "cut at {len}"
        );
    }
    for bit in 0..chain.len() * 8 {
        let mut t = chain.clone();
        t[bit / 8] ^= 1 << (bit % 8);
        let walk = reflect_tlvs(&mut t, &context());
        assert_eq!(t.len(), chain.len());
        if let Some(to) = walk.reply_to {
            assert!(loopback.contains(to.ip()), "bit {bit}: {to}");
            assert_eq!(to.port(), 4000);
        }
    }
    // Nothing allowed: the Return Path is flagged U and the reply stays.
    let mut t = chain.clone();
    let walk = reflect_tlvs(
        &mut t,
        &TlvContext {
            return_path: Some((source, &ReturnAllow::default())),
            ..context()
        },
    );
    assert_eq!((walk.reply_to, t[28]), (None, tlv_flags::U));
}
