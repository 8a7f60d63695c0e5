//! The Location TLV's reflector side: the request layout, each answer
//! sub-TLV by family, wildcard binds and withheld fields, bad sub-TLVs, and
//! any value answered in place without panic.

use super::*;

fn seen(source: &str, local: &str) -> Seen {
    Seen {
        source: source.parse().unwrap(),
        local: local.parse().unwrap(),
        disclose: Disclosure::ALL,
    }
}

/// RFC 8972 §4.2, Figures 4 and 5: flags, type 2, length; destination
/// port, source port; then sub-TLVs with 4-byte headers — Source MAC
/// (1, length 8), Destination IP (4, length 16), Source IP (7, length 16).
#[test]
fn the_request_layout_is_the_rfcs() {
    let tlv = request_tlv();
    assert_eq!(tlv[..8], [0x80, 2, 0, 56, 0, 0, 0, 0]);
    assert_eq!(tlv[8..12], [0x80, 1, 0, 8]);
    assert_eq!(tlv[20..24], [0x80, 4, 0, 16]);
    assert_eq!(tlv[40..44], [0x80, 7, 0, 16]);
    assert!(
        tlv[12..20]
            .iter()
            .chain(&tlv[24..40])
            .chain(&tlv[44..])
            .all(|&b| b == 0)
    );
}

#[test]
fn ipv4_answers_are_eui64_zero_and_ipv4_addresses_with_12_zero_bytes() {
    let mut tlv = request_tlv();
    let flags = reflect(
        &mut tlv[4..],
        Some(&seen("198.51.100.7:40000", "192.0.2.1:862")),
    );
    assert_eq!(flags, 0);
    assert_eq!(tlv[4..8], [0x03, 0x5e, 0x9c, 0x40], "ports 862, 40000");
    assert_eq!(
        tlv[8..20],
        [0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
        "EUI-64, zero"
    );
    let mut dst = [0u8; 20];
    dst[..8].copy_from_slice(&[0, 5, 0, 16, 192, 0, 2, 1]);
    assert_eq!(tlv[20..40], dst, "Destination IPv4");
    let mut src = [0u8; 20];
    src[..8].copy_from_slice(&[0, 8, 0, 16, 198, 51, 100, 7]);
    assert_eq!(tlv[40..60], src, "Source IPv4");
    assert_eq!(tlv.len(), 60, "the same length");
}

#[test]
fn ipv6_and_ipv4_mapped_sources_are_reported_as_on_the_wire() {
    let mut tlv = request_tlv();
    reflect(
        &mut tlv[4..],
        Some(&seen("[2001:db8::7]:5000", "[2001:db8::1]:8620")),
    );
    assert_eq!(tlv[20..24], [0, 6, 0, 16]);
    assert_eq!(
        tlv[24..40],
        "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(tlv[40..44], [0, 9, 0, 16]);
    let mut tlv = request_tlv();
    reflect(
        &mut tlv[4..],
        Some(&seen(
            "[::ffff:198.51.100.7]:5000",
            "[::ffff:192.0.2.1]:862",
        )),
    );
    assert_eq!(
        tlv[40..48],
        [0, 8, 0, 16, 198, 51, 100, 7],
        "IPv4, not mapped"
    );
    assert_eq!(tlv[20..28], [0, 5, 0, 16, 192, 0, 2, 1]);
}

#[test]
fn a_wildcard_bind_leaves_the_destination_unanswered_and_withheld_fields_are_zero() {
    let mut tlv = request_tlv();
    reflect(
        &mut tlv[4..],
        Some(&seen("198.51.100.7:40000", "0.0.0.0:862")),
    );
    assert_eq!(tlv[20..24], [0x80, 4, 0, 16], "U, the generic type");
    assert!(tlv[24..40].iter().all(|&b| b == 0));
    let mut tlv = request_tlv();
    let mut s = seen("198.51.100.7:40000", "192.0.2.1:862");
    s.disclose = Disclosure::parse("dst-port").unwrap();
    reflect(&mut tlv[4..], Some(&s));
    assert_eq!(tlv[4..8], [0x03, 0x5e, 0, 0], "only the destination port");
    assert_eq!(
        tlv[20..24],
        [0, 4, 0, 16],
        "withheld: generic type, U clear"
    );
    assert_eq!(tlv[40..44], [0, 7, 0, 16]);
    assert!(tlv[24..40].iter().chain(&tlv[44..]).all(|&b| b == 0));
    assert_eq!(Disclosure::parse("ips,ports").unwrap(), Disclosure::ALL);
    assert_eq!(Disclosure::parse("none").unwrap(), Disclosure::NONE);
    assert!(Disclosure::parse("mac").unwrap_err().contains("'mac'"));
}

#[test]
fn bad_sub_tlvs_are_flagged_m_and_stop_the_walk_unknown_ones_u() {
    let s = seen("198.51.100.7:40000", "192.0.2.1:862");
    // Source IP with length 8: M, and the Destination IP after it untouched.
    let mut value = vec![0, 0, 0, 0, 0x80, 7, 0, 8];
    value.extend([0; 8]);
    value.extend([0x80, 4, 0, 16]);
    value.extend([0; 16]);
    let before = value.clone();
    reflect(&mut value, Some(&s));
    assert_eq!(value[4], tlv_flags::M);
    assert_eq!(value[16..], before[16..], "the rest as it came");
    // An unknown sub-type: U, and the walk goes on.
    let mut value = vec![0, 0, 0, 0, 0x80, 99, 0, 2, 1, 2, 0x80, 7, 0, 16];
    value.extend([0; 16]);
    reflect(&mut value, Some(&s));
    assert_eq!(value[4..10], [0x80, 99, 0, 2, 1, 2]);
    assert_eq!(value[10..14], [0, 8, 0, 16]);
    // A sub-TLV running past the end: M.
    let mut value = vec![0, 0, 0, 0, 0x80, 7, 0, 16, 1, 2];
    reflect(&mut value, Some(&s));
    assert_eq!(value[4], tlv_flags::M);
    // A tail shorter than a header is left alone; no `seen`: U.
    let mut value = vec![0, 0, 0, 0, 0x80, 7];
    assert_eq!(reflect(&mut value, Some(&s)), 0);
    assert_eq!(value[4..], [0x80, 7]);
    assert_eq!(reflect(&mut value, None), tlv_flags::U);
}

#[test]
fn the_reflector_answers_location_in_place_when_it_knows_its_address() {
    use crate::stamp::{Mode, Reflector, ReflectorConfig, SenderPacket};
    use std::time::SystemTime;
    let mut req = vec![0u8; Mode::Open.base_len()];
    SenderPacket {
        seq: 1,
        timestamp: 0,
        error_estimate: 0,
        ssid: 3,
    }
    .encode(Mode::Open, &mut req);
    req.extend_from_slice(&request_tlv());
    let source: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let answer = |r: &mut Reflector| {
        let mut out = vec![0u8; req.len()];
        let len = r
            .reflect(&req, source, SystemTime::now(), 0, 64, &mut out)
            .unwrap();
        assert_eq!(len, req.len());
        out
    };
    let mut bound =
        Reflector::new(ReflectorConfig::default()).with_local("192.0.2.1:862".parse().unwrap());
    let out = answer(&mut bound);
    assert_eq!(out[44..52], [0, 2, 0, 56, 0x03, 0x5e, 0x9c, 0x40]);
    assert_eq!(out[84..92], [0, 8, 0, 16, 198, 51, 100, 7]);
    let mut unbound = Reflector::new(ReflectorConfig::default());
    assert_eq!(
        answer(&mut unbound)[44],
        tlv_flags::U,
        "no address known: U"
    );
}

proptest::proptest! {
    /// Any bytes as a Location value, under any policy and address:
    /// no panic, and nothing but flags, types and values rewritten in
    /// place (the length never changes).
    #[test]
    fn any_location_value_is_answered_in_place_without_panic(
        mut value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        v6 in proptest::prelude::any::<bool>(),
        wildcard in proptest::prelude::any::<bool>(),
        policy in 0u8..16,
    ) {
        let local = match (v6, wildcard) {
            (false, false) => "192.0.2.1:862",
            (false, true) => "0.0.0.0:862",
            (true, false) => "[2001:db8::1]:862",
            (true, true) => "[::]:862",
        };
        let mut s = seen(if v6 { "[2001:db8::7]:9" } else { "198.51.100.7:9" }, local);
        s.disclose = Disclosure {
            source_ip: policy & 1 != 0,
            source_port: policy & 2 != 0,
            destination_ip: policy & 4 != 0,
            destination_port: policy & 8 != 0,
        };
        let len = value.len();
        let flags = reflect(&mut value, Some(&s));
        proptest::prop_assert_eq!(value.len(), len);
        proptest::prop_assert!(flags == 0 || flags == tlv_flags::M);
    }
}
