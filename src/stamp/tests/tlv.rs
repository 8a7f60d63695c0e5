//! The reflector's pass over a request's TLVs (RFC 8972 §4): flags for
//! unknown and malformed ones, Class of Service, the largest requests,
//! `--tlv-mode ignore`.

use super::*;

#[test]
fn tlvs_are_copied_and_flagged_unknown_or_malformed() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let mut req = request(Mode::Open, 1, 0, None);
    // Extra Padding (understood), an unknown type 200, then one overrunning the packet.
    req.extend_from_slice(&[0, 1, 0, 2, 0xaa, 0xbb]);
    req.extend_from_slice(&[0, 200, 0, 1, 0xcc]);
    req.extend_from_slice(&[0, 5, 0, 99, 1, 2]);
    let reply = reflect(&mut r, &req).unwrap();
    assert_eq!(reply.len(), req.len(), "symmetric size");
    let tlvs = &reply[OPEN_LEN..];
    assert_eq!(&tlvs[..6], &[0, 1, 0, 2, 0xaa, 0xbb]);
    assert_eq!(&tlvs[6..11], &[tlv_flags::U, 200, 0, 1, 0xcc]);
    assert_eq!(&tlvs[11..], &[tlv_flags::M, 5, 0, 99, 1, 2]);
    // Zero padding is not TLVs: left alone.
    let mut padded = request(Mode::Open, 1, 0, None);
    padded.resize(200, 0);
    let reply = reflect(&mut r, &padded).unwrap();
    assert!(reply[OPEN_LEN..].iter().all(|&b| b == 0));
}

#[test]
fn class_of_service_fields_round_trip_through_their_bits() {
    for (dscp1, dscp2, ecn, rp, ec1, rpe) in [
        (46, 8, 2, 0, 1, 3),
        (63, 63, 3, 1, 3, 2),
        (0, 0, 0, 0, 0, 0),
        (10, 34, 1, 1, 2, 1),
    ] {
        let cos = packet::ClassOfService {
            dscp1,
            dscp2,
            ecn,
            rp,
            ec1,
            rpe,
        };
        assert_eq!(packet::ClassOfService::from_value(cos.value()), cos);
    }
    // EF asked for, CS1 received, ECT(0), reply with DSCP1: the bytes RFC 8972 §4.4 lays out.
    let cos = packet::ClassOfService {
        dscp1: 46,
        dscp2: 8,
        ecn: 2,
        rp: 0,
        ec1: 0,
        rpe: 0,
    };
    // A sender's TLV carries U (RFC 8972 §4: 0x80 in the flags byte).
    assert_eq!(cos.tlv(), [0x80, 4, 0, 4, 0b1011_1000, 0b1000_1000, 0, 0]);
    // draft-ietf-ippm-stamp-cos-ecn: EC1 and RPE in the third value byte,
    // the layout stamp-suite's cross vector pins (DSCP1 46, DSCP2 20, EC2
    // 1, RPD 0, EC1 2, RPE 3).
    let draft = packet::ClassOfService {
        dscp1: 46,
        dscp2: 20,
        ecn: 1,
        rp: 0,
        ec1: 2,
        rpe: 3,
    };
    assert_eq!(draft.value(), [0xb9, 0x44, 0xb0, 0x00]);
}

#[test]
fn find_tlv_walks_to_the_type_and_stops_at_padding_or_overrun() {
    let cos = packet::ClassOfService {
        dscp1: 46,
        ..Default::default()
    }
    .tlv();
    let mut tail = vec![0u8, 1, 0, 2, 0xaa, 0xbb];
    tail.extend_from_slice(&cos);
    let (at, value) = packet::find_tlv(&tail, packet::TLV_CLASS_OF_SERVICE).unwrap();
    assert_eq!((at, value), (6, &cos[4..]));
    assert_eq!(
        packet::find_tlv(&tail[..10], packet::TLV_CLASS_OF_SERVICE),
        None
    );
    let mut padded = vec![0u8; 8];
    padded.extend_from_slice(&cos);
    assert_eq!(
        packet::find_tlv(&padded, packet::TLV_CLASS_OF_SERVICE),
        None
    );
}

/// An open request with `tail` after the base packet.
fn with_tlvs(tail: &[u8]) -> Vec<u8> {
    let mut req = request(Mode::Open, 3, 0, None);
    req.extend_from_slice(tail);
    req
}

fn cos(dscp1: u8) -> packet::ClassOfService {
    packet::ClassOfService {
        dscp1,
        // What a sender might leave there: the reflector overwrites it.
        dscp2: 63,
        ecn: 3,
        rp: 3,
        ec1: 0,
        rpe: 3,
    }
}

#[test]
fn a_class_of_service_tlv_gets_the_arrival_dscp_and_ecn_and_names_the_reply_dscp() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let mut tlv = cos(46).tlv();
    // Reserved bits (after EC1 and RPE), set by a careless sender.
    tlv[6..8].copy_from_slice(&[0x0f, 0xff]);
    // Arrived CS1 (DSCP 8) with ECT(1).
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(&tlv), Some(0x20 | 0b01)).unwrap();
    assert_eq!(meta.tos, Some(46 << 2), "sent with DSCP1, Not-ECT");
    let tlv = &reply[OPEN_LEN..];
    assert_eq!(
        &tlv[..4],
        &[0, packet::TLV_CLASS_OF_SERVICE, 0, 4],
        "no flag"
    );
    let got = packet::ClassOfService::from_value(tlv[4..8].try_into().unwrap());
    assert_eq!(
        got,
        packet::ClassOfService {
            dscp1: 46,
            dscp2: 8,
            ecn: 1,
            rp: 0,
            ec1: 0,
            rpe: packet::RPE_SET,
        }
    );
    assert_eq!(
        &tlv[6..8],
        &[packet::RPE_SET << 4, 0],
        "EC1 Not-ECT honoured (RPE 0b11), reserved bits zeroed"
    );
    // After Extra Padding, and asking DSCP 0: found, and 0 it is.
    let mut tail = vec![0, 1, 0, 2, 7, 7];
    tail.extend_from_slice(&cos(0).tlv());
    let (_, meta) = reflect_in_place(&mut r, &with_tlvs(&tail), Some(0xb8)).unwrap();
    assert_eq!(meta.tos, Some(0));
}

#[test]
fn without_the_arrival_tos_a_class_of_service_tlv_is_flagged_unrecognised() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let tlv = cos(46).tlv();
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(&tlv), None).unwrap();
    assert_eq!(meta.tos, None, "the request's DSCP, as any echo");
    assert_eq!(reply[OPEN_LEN], tlv_flags::U);
    assert_eq!(&reply[OPEN_LEN + 1..], &tlv[1..], "copied as it came");
}

#[test]
fn a_class_of_service_tlv_of_the_wrong_length_or_cut_short_is_malformed() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    // Length 2, then a good one: M on the first, and processing stops
    // there (RFC 8972 §4): the second comes back as it came, U still set.
    let mut tail = vec![0, packet::TLV_CLASS_OF_SERVICE, 0, 2, 0xb8, 0];
    tail.extend_from_slice(&cos(10).tlv());
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(&tail), Some(0)).unwrap();
    assert_eq!(
        &reply[OPEN_LEN..OPEN_LEN + 6],
        &[tlv_flags::M, 4, 0, 2, 0xb8, 0]
    );
    assert_eq!(&reply[OPEN_LEN + 6..], &cos(10).tlv());
    assert_eq!(meta.tos, None);
    // Length 8: malformed too, value untouched, reply DSCP not taken from it.
    let mut long = cos(46).tlv().to_vec();
    long[3] = 8;
    long.extend_from_slice(&[1, 2, 3, 4]);
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(&long), Some(0)).unwrap();
    assert_eq!(reply[OPEN_LEN], tlv_flags::M);
    assert_eq!(&reply[OPEN_LEN + 1..], &long[1..]);
    assert_eq!(meta.tos, None);
    // Cut short: its length runs past the packet.
    let cut = &cos(46).tlv()[..6];
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(cut), Some(0)).unwrap();
    assert_eq!(reply[OPEN_LEN], tlv_flags::M);
    assert_eq!(meta.tos, None);
}

#[test]
fn every_bit_flip_of_a_class_of_service_request_is_answered_or_refused() {
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        let mut r = Reflector::new(config(key.clone(), true, TimeFormat::Ntp));
        let mut req = request(mode, 1, 2, key.as_ref());
        req.extend_from_slice(&cos(46).tlv());
        for bit in 0..req.len() * 8 {
            let mut flipped = req.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            for tos in [None, Some(0), Some(0xff)] {
                if let Ok((reply, meta)) = reflect_in_place(&mut r, &flipped, tos) {
                    assert_eq!(reply.len(), flipped.len());
                    assert!(meta.tos.is_none_or(|t| t & 0x03 == 0), "Not-ECT");
                }
            }
        }
        for len in 0..req.len() {
            let _ = reflect_in_place(&mut r, &req[..len], Some(0x20));
        }
    }
}

#[test]
fn a_class_of_service_tlv_cannot_ask_for_network_control() {
    for (dscp1, arrived, reply_dscp, rp) in [(56, 46, 46, 1), (48, 0, 0, 1), (47, 8, 47, 0)] {
        let mut tail = packet::ClassOfService {
            dscp1,
            ..Default::default()
        }
        .tlv();
        let walk = packet::reflect_tlvs(&mut tail, &cx(Some(arrived << 2)));
        assert_eq!(walk.reply_tos, Some(reply_dscp << 2), "DSCP1 {dscp1}");
        let got = packet::ClassOfService::from_value(tail[4..8].try_into().unwrap());
        assert_eq!(
            (got.dscp1, got.dscp2, got.rp),
            (dscp1, arrived, rp),
            "DSCP1 {dscp1}"
        );
    }
}

/// The largest UDP payload, 65,507 bytes: one Extra Padding TLV filling it,
/// or 16,365 empty TLVs of an unknown type, is answered in place, each TLV
/// flagged as RFC 8972 §4 says.
#[test]
fn a_65507_byte_request_of_one_or_thousands_of_tlvs_is_answered_in_place() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let mut one = request(Mode::Open, 1, 0, None);
    one.resize(65_507, 0x77);
    packet::write_extra_padding(&mut one[OPEN_LEN..]).unwrap();
    let (reply, _) = reflect_in_place(&mut r, &one, Some(0)).unwrap();
    assert_eq!(reply.len(), 65_507);
    assert_eq!(&reply[OPEN_LEN..OPEN_LEN + 4], &[0, 1, 0xff, 0xb3]);
    let mut many = request(Mode::Open, 1, 0, None);
    while many.len() + 4 <= 65_507 {
        many.extend_from_slice(&[0x80, 200, 0, 0]);
    }
    let (reply, _) = reflect_in_place(&mut r, &many, Some(0)).unwrap();
    assert_eq!(reply.len(), many.len());
    assert!(
        reply[OPEN_LEN..]
            .chunks_exact(4)
            .all(|t| t == [tlv_flags::U, 200, 0, 0])
    );
}

/// `--tlv-mode ignore`: the TLVs come back byte for byte, the sender's U
/// flags included, and the start-up report says so.
#[test]
fn with_tlv_mode_ignore_the_tlvs_come_back_untouched() {
    let mut ignoring = config(None, false, TimeFormat::Ntp);
    ignoring.tlv_mode = super::TlvMode::Ignore;
    assert!(
        ignoring
            .describe()
            .ends_with("TLVs copied back unprocessed (--tlv-mode ignore)")
    );
    assert!(
        !config(None, false, TimeFormat::Ntp)
            .describe()
            .contains("TLVs")
    );
    let mut r = Reflector::new(ignoring);
    let mut tail = cos(46).tlv().to_vec();
    tail.extend_from_slice(&packet::TimestampInfo::request_tlv());
    tail.extend_from_slice(&[0x80, 200, 0, 99]); // overrunning: not even flagged M
    let (reply, meta) = reflect_in_place(&mut r, &with_tlvs(&tail), Some(0xb8)).unwrap();
    assert_eq!(&reply[OPEN_LEN..], &tail[..]);
    assert_eq!(meta.tos, None, "the request's DSCP, as any echo");
}

/// draft-ietf-ippm-stamp-cos-ecn: EC1 by the policy, RPE saying what was
/// done, the reply's ECN bits with it; RFC 8972's ECN field the arrival's.
#[test]
fn ec1_is_answered_by_the_ecn_policy() {
    for ec1 in 0..4u8 {
        for policy in [packet::EcnPolicy::NotEct, packet::EcnPolicy::Ec1] {
            let mut tail = packet::ClassOfService {
                dscp1: 46,
                ec1,
                ..Default::default()
            }
            .tlv();
            let context = packet::TlvContext {
                ecn_policy: policy,
                ..cx(Some((10 << 2) | 2))
            };
            let walk = packet::reflect_tlvs(&mut tail, &context);
            let got = packet::ClassOfService::from_value(tail[4..8].try_into().unwrap());
            let honoured = policy == packet::EcnPolicy::Ec1 || ec1 == 0;
            let (rpe, ecn) = if honoured {
                (packet::RPE_SET, ec1)
            } else {
                (packet::RPE_UNABLE, 0)
            };
            let case = format!("{policy:?} EC1 {ec1}");
            assert_eq!(
                (got.ec1, got.rpe, got.ecn, got.dscp2),
                (ec1, rpe, 2, 10),
                "{case}"
            );
            assert_eq!(walk.reply_tos, Some((46 << 2) | ecn), "{case}");
            assert_eq!(tail[7], 0, "{case}: reserved zero");
        }
    }
}
