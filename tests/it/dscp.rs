//! DSCP reflection in every echo loop: a request marked EF (TOS 0xb8) gets
//! its reply marked EF, over IPv4, IPv6 and from an IPv4 client of a
//! dual-stack `::` server, in the plain loop (`--batch 1`), the default GRO
//! loop, the batched loop (`--no-gro`), with `--threads 2` (also on one
//! `--exclusive` socket) and `--stamp`; an
//! unmarked one gets an unmarked reply, and the ECN bits never come back.
//! Linux (IP_RECVTOS, IPV6_RECVTCLASS).

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use udp_echo::sys::{enable_recv_tos, recv_from_tos};

/// DSCP EF (46) in the TOS byte.
const EF: u8 = 0xb8;

/// Sends `payload` marked `tos` from a socket on `local` to `server` and
/// returns the reply's TOS byte.
fn reply_tos(local: &str, server: SocketAddr, tos: u8, payload: &[u8]) -> Option<u8> {
    let socket = UdpSocket::bind(local).unwrap();
    let sock = socket2::SockRef::from(&socket);
    match server {
        SocketAddr::V4(_) => sock.set_tos_v4(u32::from(tos)).unwrap(),
        SocketAddr::V6(_) => sock.set_tclass_v6(u32::from(tos)).unwrap(),
    }
    enable_recv_tos(&socket).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(payload, server).unwrap();
    let mut buf = [0u8; 256];
    let (n, from, tos) = recv_from_tos(&socket, &mut buf).expect("a reply");
    assert_eq!(from, server);
    assert!(n > 0);
    tos
}

/// EF comes back EF, 0 comes back 0, EF with ECT(0) comes back EF without it.
fn assert_dscp_reflected(local: &str, server: SocketAddr, payload: &[u8], case: &str) {
    assert_eq!(
        reply_tos(local, server, EF, payload).map(|t| t & 0xfc),
        Some(EF),
        "{case}"
    );
    assert_eq!(
        reply_tos(local, server, 0, payload),
        Some(0),
        "{case}: an unmarked request gets an unmarked reply"
    );
    // ECT(0) on the request: the DSCP goes back, the ECN bits do not.
    assert_eq!(
        reply_tos(local, server, EF | 0b10, payload),
        Some(EF),
        "{case}"
    );
}

/// The loops: plain, default (GRO), batched without GRO, two threads (on
/// two sockets, and on one), STAMP.
const LOOPS: [&[&str]; 7] = [
    &["--batch", "1"],
    &[],
    &["--no-gro", "--batch", "32"],
    &["--threads", "2"],
    &["--exclusive", "--threads", "2"],
    &["--stamp"],
    &["--stamp", "--batch", "1"],
];

#[test]
fn a_request_marked_ef_gets_a_reply_marked_ef_on_ipv4_and_ipv6() {
    let mut families = vec![("127.0.0.1", "127.0.0.1:0")];
    if has_ipv6_loopback() {
        families.push(("::1", "[::1]:0"));
    } else {
        skip("DSCP over IPv6: no ::1 here");
    }
    for (host, local) in families {
        for extra in LOOPS {
            let server = start_server(&[&["-H", host, "-p", "0"][..], extra].concat());
            let payload = [0u8; 44];
            assert_dscp_reflected(local, server.addr, &payload, &format!("{host} {extra:?}"));
        }
    }
}

#[test]
fn a_dual_stack_server_reflects_an_ipv4_clients_dscp() {
    if !has_ipv6_loopback() {
        skip("dual-stack DSCP: no IPv6 here");
        return;
    }
    for extra in LOOPS {
        let server = start_server(&[&["-H", "::", "-p", "0"][..], extra].concat());
        let v4: SocketAddr = ([127, 0, 0, 1], server.addr.port()).into();
        assert_dscp_reflected("127.0.0.1:0", v4, &[0u8; 44], &format!(":: {extra:?}"));
    }
}

/// `--stamp --tos EF`: our reflector keeps the DSCP (dscp_changed 0); a
/// reflector that answers unmarked changes every reply's.
#[test]
fn the_stamp_sender_counts_replies_whose_dscp_changed() {
    use udp_echo::stamp::{Mode, ReflectedPacket, SenderPacket, TimeFormat};
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let args = |port: &str| {
        vec![
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            port,
            "-c",
            "5",
            "-i",
            "0.01",
            "--tos",
            "EF",
            "--json",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let ours = args(&port);
    let json = json_of(&run_client(
        &ours.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    ));
    assert_eq!(json["dscp_sent"], 46, "{json}");
    assert_eq!(json["dscp_seen"]["46"], 5, "{json}");
    assert_eq!(json["dscp_changed"], 0, "{json}");
    // A reflector that does not copy the DSCP (replies leave unmarked).
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port().to_string();
    let reflector = std::thread::spawn(move || {
        plain
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 256];
        for _ in 0..5 {
            let Ok((n, from)) = plain.recv_from(&mut buf) else {
                return;
            };
            let sender = SenderPacket::decode(Mode::Open, &buf[..n]).unwrap();
            let mut out = [0u8; 44];
            ReflectedPacket {
                seq: sender.seq,
                timestamp: sender.timestamp,
                error_estimate: TimeFormat::Ntp.error_estimate(),
                ssid: sender.ssid,
                receive_timestamp: sender.timestamp,
                sender_seq: sender.seq,
                sender_timestamp: sender.timestamp,
                sender_error_estimate: sender.error_estimate,
                sender_ttl: 255,
            }
            .encode(Mode::Open, &mut out);
            plain.send_to(&out, from).unwrap();
        }
    });
    let theirs = args(&port);
    let json = json_of(&run_client(
        &theirs.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    ));
    reflector.join().unwrap();
    assert_eq!(json["received"], 5, "{json}");
    assert_eq!(json["dscp_seen"]["0"], 5, "{json}");
    assert_eq!(json["dscp_changed"], 5, "{json}");
}
