//! Packet lengths, `--size` checks and the TLVs laid out in a test packet.

use super::*;

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
