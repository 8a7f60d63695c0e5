//! The Location TLV (RFC 8972 §4.2) against stamp-suite's sender
//! (`--location`), through a relay that records each exchange: our
//! reflector answers it in place, U clear, with the ports and addresses it
//! saw — the relay's, not the sender's, which is what the TLV is for (a
//! NAT or proxy on the way shows). `--stamp-location none` reveals nothing.

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;
use crate::stamp::{recording_proxy, stamp_suite, suite_summary, suite_tlv_flags};

use common::*;
use udp_echo::stamp::location::{TLV_LOCATION, sub_type};
use udp_echo::stamp::packet::find_tlv;

/// The sub-TLVs of a Location value (after its two ports): (flags, type, value).
fn sub_tlvs(value: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= value.len() {
        let len = usize::from(u16::from_be_bytes([value[at + 2], value[at + 3]]));
        out.push((
            value[at],
            value[at + 1],
            value[at + 4..at + 4 + len].to_vec(),
        ));
        at += 4 + len;
    }
    out
}

#[test]
fn stamp_suites_sender_gets_the_ports_and_addresses_our_reflector_saw() {
    let Some(suite) = stamp_suite("stamp-suite sender with Location → our reflector") else {
        return;
    };
    for disclose in ["all", "none"] {
        let server = start_server(&[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "--stamp-location",
            disclose,
        ]);
        let (proxy, relay) = recording_proxy(server.addr.port(), |_| {});
        let port = proxy.to_string();
        let run = crate::stamp::suite_sender(
            &suite,
            &port,
            ("3", "20"),
            &["--location", "--output-format", "json"],
        );
        let seen = relay.join().unwrap();
        let summary = suite_summary(&run);
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        assert_eq!(summary["packets_received"], 3, "{summary}");
        assert_eq!(
            suite_tlv_flags(&summary, TLV_LOCATION),
            (3, 0, 0, 0),
            "recognized ({disclose}): {summary}"
        );
        assert_eq!(seen.len(), 3);
        for ex in &seen {
            assert_eq!(ex.reply.len(), ex.request.len(), "never longer");
            let (at, value) = find_tlv(&ex.reply[44..], TLV_LOCATION).expect("Location");
            assert_eq!(ex.reply[44 + at], 0, "U, M, I clear");
            let dst_port = u16::from_be_bytes([value[0], value[1]]);
            let src_port = u16::from_be_bytes([value[2], value[3]]);
            let subs = sub_tlvs(value);
            let asked = sub_tlvs(find_tlv(&ex.request[44..], TLV_LOCATION).unwrap().1);
            assert_eq!(subs.len(), asked.len(), "{subs:?}");
            for (flags, kind, v) in &subs {
                assert_eq!(*flags, 0, "sub-TLV {kind}: {subs:?}");
                if disclose == "none" {
                    assert!(v.iter().all(|&b| b == 0), "{subs:?}");
                }
            }
            if disclose == "none" {
                assert_eq!((dst_port, src_port), (0, 0));
                continue;
            }
            assert_eq!(dst_port, server.addr.port(), "the port it was sent to");
            assert!(
                src_port != 0 && src_port != proxy,
                "the relay's port: {src_port}"
            );
            let localhost = |kind: u8| {
                let (_, _, v) = subs.iter().find(|(_, k, _)| *k == kind).unwrap_or_else(|| {
                    panic!("no sub-TLV {kind}: asked {asked:?}, answered {subs:?}")
                });
                assert_eq!(v[..4], [127, 0, 0, 1], "{subs:?}");
                assert!(v[4..].iter().all(|&b| b == 0));
            };
            localhost(sub_type::DESTINATION_IPV4);
            localhost(sub_type::SOURCE_IPV4);
        }
    }
}

/// A request with a Location TLV asking for everything, from `socket` to
/// `to`, and the Location value of its reply.
fn ask_location(socket: &std::net::UdpSocket, to: std::net::SocketAddr) -> Vec<u8> {
    use udp_echo::stamp::Mode;
    let mut request = stamp_request(Mode::Open, 1, 44, None, 5);
    request.extend_from_slice(&udp_echo::stamp::location::request_tlv());
    socket.send_to(&request, to).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).expect("a reply");
    assert_eq!(n, request.len(), "never longer");
    let (_, value) = find_tlv(&buf[44..n], TLV_LOCATION).expect("Location");
    value.to_vec()
}

#[test]
fn a_wildcard_bound_reflector_learns_the_destination_address_from_the_kernel() {
    // (bind, client, destination answer type and its first bytes); the
    // dual-stack `::` socket answers an IPv4 client with IPv4.
    let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
    let cases: [(&str, &str, u8, &[u8]); 3] = [
        (
            "0.0.0.0",
            "127.0.0.1:0",
            sub_type::DESTINATION_IPV4,
            &[127, 0, 0, 1],
        ),
        ("::", "[::1]:0", sub_type::DESTINATION_IPV6, &v6),
        (
            "::",
            "127.0.0.1:0",
            sub_type::DESTINATION_IPV4,
            &[127, 0, 0, 1],
        ),
    ];
    for (bind, client, kind, address) in cases {
        for extra in [&[][..], &["--no-gro"], &["--batch", "1"]] {
            let server = start_server(&[&["--stamp", "-H", bind, "-p", "0"][..], extra].concat());
            let socket = std::net::UdpSocket::bind(client).unwrap();
            let to =
                std::net::SocketAddr::new(socket.local_addr().unwrap().ip(), server.addr.port());
            let value = ask_location(&socket, to);
            let subs = sub_tlvs(&value);
            let case = format!("{bind} {client} {extra:?}: {subs:?}");
            let dst = subs
                .iter()
                .find(|(_, k, _)| *k == sub_type::DESTINATION_IP || *k == kind);
            let (flags, got, v) = dst.unwrap_or_else(|| panic!("no destination: {case}"));
            // Every loop asks the kernel, the plain one (`--batch 1`) too:
            // a wildcard socket answers from that address.
            assert_eq!((*flags, *got), (0, kind), "{case}");
            assert_eq!(&v[..address.len()], address, "{case}");
        }
    }
}
