//! `--stamp-tlv`'s TLVs: parsed, sized, and their answers counted from
//! hostile replies without a panic.

use super::*;

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
