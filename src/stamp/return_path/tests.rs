//! RFC 9503's TLVs at the reflector, each piece alone: the destination
//! check, which Return Path is honoured (a lone allowed Return Address, a
//! lone Control Code), the addresses never honoured, and every truncation
//! and bit flip answered without panic.

use super::*;

fn source() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

fn loopback() -> ReturnAllow {
    ReturnAllow::new(vec![(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8)])
}

#[test]
fn the_destination_must_be_where_the_request_went() {
    let to = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(reflect_destination(&[192, 0, 2, 1], Some(to)), 0);
    assert_eq!(reflect_destination(&[192, 0, 2, 2], Some(to)), tlv_flags::U);
    assert_eq!(reflect_destination(&[192, 0, 2, 1], None), tlv_flags::U);
    let mapped = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets();
    assert_eq!(reflect_destination(&mapped, Some(to)), 0, "v4-mapped alike");
    assert!(destination_len_ok(4) && destination_len_ok(16) && !destination_len_ok(5));
    assert_eq!(
        destination_tlv(to),
        [0x80, 9, 0, 4, 192, 0, 2, 1],
        "U set, type 9, length 4"
    );
}

#[test]
fn only_an_allowed_return_address_alone_is_honoured() {
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let mut tlv = return_address_tlv(other);
    assert_eq!(&tlv[..8], &[0x80, 10, 0, 8, 0x80, 2, 0, 4]);
    let value = &mut tlv[4..];
    assert_eq!(
        reflect_return_path(value, source(), &loopback()),
        ReturnPath::To(SocketAddr::new(other, 4000))
    );
    assert_eq!(value[0], 0, "sub-TLV honoured: U clear");
    assert_eq!(
        loopback().describe(),
        ", Return Path TLVs may send replies to 127.0.0.0/8 (--stamp-return-path-allow)"
    );
    assert_eq!(ReturnAllow::default().describe(), "");
    // Not allowed: U on the sub-TLV, the reply to the source.
    let mut tlv = return_address_tlv(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
    let value = &mut tlv[4..];
    assert_eq!(
        reflect_return_path(value, source(), &loopback()),
        ReturnPath::NotHonoured
    );
    assert_eq!(value[0], tlv_flags::U);
    assert_eq!(
        reflect_return_path(
            &mut return_address_tlv(other)[4..],
            source(),
            &ReturnAllow::default()
        ),
        ReturnPath::NotHonoured,
        "none allowed by default"
    );
    // IPv6 from an IPv4 socket: cannot.
    let v6 = ReturnAllow::new(vec![(IpAddr::V6(Ipv6Addr::LOCALHOST), 128)]);
    let mut tlv = return_address_tlv(IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(
        reflect_return_path(&mut tlv[4..], source(), &v6),
        ReturnPath::NotHonoured
    );
    // With a Control Code beside it: not honoured in part.
    let mut value = vec![0x80, 1, 0, 4, 0, 0, 0, 1];
    value.extend_from_slice(&return_address_tlv(other)[4..]);
    assert_eq!(
        reflect_return_path(&mut value, source(), &loopback()),
        ReturnPath::NotHonoured
    );
    assert_eq!((value[0], value[8]), (tlv_flags::U, tlv_flags::U));
}

#[test]
fn a_control_code_alone_is_honoured_and_unknown_codes_are_not() {
    // 0: no reply requested, whatever the allowed networks.
    let mut tlv = control_code_tlv(control_code::NO_REPLY);
    assert_eq!(&tlv[..], &[0x80, 10, 0, 8, 0x80, 1, 0, 4, 0, 0, 0, 0]);
    assert_eq!(
        reflect_return_path(&mut tlv[4..], source(), &ReturnAllow::default()),
        ReturnPath::NoReply
    );
    assert_eq!(tlv[4], 0, "sub-TLV honoured: U clear");
    // 1: a reply on the same link, as usual.
    let mut tlv = control_code_tlv(control_code::SAME_LINK);
    assert_eq!(
        reflect_return_path(&mut tlv[4..], source(), &ReturnAllow::default()),
        ReturnPath::SameLink
    );
    assert_eq!(tlv[4], 0);
    // A reserved bit set, with or without the Reply Request flag: U.
    for code in [2, 3, 0x8000_0000, 0x8000_0001, u32::MAX] {
        let mut tlv = control_code_tlv(code);
        assert_eq!(
            reflect_return_path(&mut tlv[4..], source(), &loopback()),
            ReturnPath::NotHonoured,
            "{code:#x}"
        );
        assert_eq!(tlv[4], tlv_flags::U, "{code:#x}");
    }
    // A length other than 4: M.
    for value in [
        &[0x80, 1, 0, 0][..],
        &[0x80, 1, 0, 2, 0, 0],
        &[0x80, 1, 0, 5, 0, 0, 0, 0, 0],
    ] {
        assert_eq!(
            reflect_return_path(&mut value.to_vec(), source(), &loopback()),
            ReturnPath::Malformed,
            "{value:?}"
        );
    }
    // "No reply" beside anything else, a second Control Code included:
    // not honoured in part, the reply goes as usual.
    let no_reply = &control_code_tlv(control_code::NO_REPLY)[4..];
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let srv6 = [0x80, 4, 0, 16].into_iter().chain([0u8; 16]);
    for second in [
        return_address_tlv(other)[4..].to_vec(),
        no_reply.to_vec(),
        control_code_tlv(control_code::SAME_LINK)[4..].to_vec(),
        srv6.collect(),
    ] {
        for (first, then) in [(no_reply, &second[..]), (&second[..], no_reply)] {
            let mut value = [first, then].concat();
            assert_eq!(
                reflect_return_path(&mut value, source(), &loopback()),
                ReturnPath::NotHonoured,
                "{value:?}"
            );
            assert_eq!((value[0], value[first.len()]), (tlv_flags::U, tlv_flags::U));
        }
    }
    // Segment lists alone: U (no steering by SR-MPLS or SRv6 here).
    for kind in [sub_tlv::SR_MPLS_LABEL_STACK, sub_tlv::SRV6_SEGMENT_LIST] {
        let mut value = vec![0x80, kind, 0, 16];
        value.extend_from_slice(&[0; 16]);
        assert_eq!(
            reflect_return_path(&mut value, source(), &loopback()),
            ReturnPath::NotHonoured
        );
        assert_eq!(value[0], tlv_flags::U);
    }
}

#[test]
fn no_group_no_broadcast_no_host_itself_whatever_is_allowed() {
    let all = ReturnAllow::new(vec![
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    ]);
    let remote4 = SocketAddr::from(([192, 0, 2, 7], 4000));
    let remote6 = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 4000));
    let mapped = |ip: Ipv4Addr| IpAddr::V6(ip.to_ipv6_mapped());
    for (ip, source) in [
        (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)), remote4),
        (IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)), remote4),
        (IpAddr::V4(Ipv4Addr::BROADCAST), remote4),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), remote4),
        (IpAddr::V4(Ipv4Addr::LOCALHOST), remote4),
        (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), remote4),
        (IpAddr::V6("ff02::1".parse().unwrap()), remote6),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), remote6),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), remote6),
        (mapped(Ipv4Addr::new(224, 0, 0, 1)), remote6),
        (mapped(Ipv4Addr::LOCALHOST), remote6),
    ] {
        let mut tlv = return_address_tlv(ip);
        assert_eq!(
            reflect_return_path(&mut tlv[4..], source, &all),
            ReturnPath::NotHonoured,
            "{ip} for {source}"
        );
        assert_eq!(tlv[4], tlv_flags::U, "{ip}");
    }
    // One other host, or loopback for a loopback sender: honoured.
    let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(
        reflect_return_path(&mut return_address_tlv(other)[4..], remote4, &all),
        ReturnPath::To(SocketAddr::new(other, 4000))
    );
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    assert_eq!(
        reflect_return_path(&mut return_address_tlv(local)[4..], source(), &all),
        ReturnPath::To(SocketAddr::new(local, 4000))
    );
}

#[test]
fn every_truncation_and_bit_flip_is_answered_without_panic() {
    let mut chain = vec![0x80, 1, 0, 4, 0, 0, 0, 1];
    chain.extend_from_slice(&return_address_tlv(IpAddr::V6(Ipv6Addr::LOCALHOST))[4..]);
    for len in 0..=chain.len() {
        let mut v = chain[..len].to_vec();
        let _ = reflect_return_path(&mut v, source(), &loopback());
        let _ = reflect_destination(&chain[..len], None);
    }
    for bit in 0..chain.len() * 8 {
        let mut v = chain.clone();
        v[bit / 8] ^= 1 << (bit % 8);
        let before = v.len();
        let got = reflect_return_path(&mut v, source(), &loopback());
        assert_eq!(v.len(), before);
        if let ReturnPath::To(to) = got {
            assert!(loopback().contains(to.ip()), "{to}");
        }
    }
    // A sub-TLV overrunning the TLV, or a Return Address of 5 bytes: M.
    assert_eq!(
        reflect_return_path(&mut [0x80, 2, 0, 9, 1, 2], source(), &loopback()),
        ReturnPath::Malformed
    );
    assert_eq!(
        reflect_return_path(&mut [0x80, 2, 0, 5, 127, 0, 0, 1, 1], source(), &loopback()),
        ReturnPath::Malformed
    );
}
