//! The STAMP reflector in every loop — plain (`--batch 1`), batched
//! (`--no-gro`) and the default GRO loop — fed bursts of requests in one
//! UDP GSO send, so the batched loops really see several per receive (the
//! GRO loop: one coalesced buffer). Every request is answered in order, with
//! the sender's TTL and a kernel receive time; TWAMP-Light requests shorter
//! than the 44-byte reply are dropped as `short`; a bad HMAC or a reflected packet inside a burst is
//! dropped and counted while the rest of the burst is answered.

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::*;
use udp_echo::stamp::{Key, Mode, ReflectedPacket, TimeFormat};
use udp_echo::sys::send_segmented;

/// The loops a `--stamp` server can run.
const LOOPS: [&[&str]; 3] = [&["--batch", "1"], &[], &["--no-gro", "--batch", "32"]];

/// The key of the authenticated tests, as hex text.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A key file only its owner may read, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(tag: &str) -> KeyFile {
        let path = std::env::temp_dir().join(format!(
            "udp-echo-stamp-reflector-key-{}-{tag}",
            std::process::id()
        ));
        std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        KeyFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A `--stamp` server on IPv4 loopback with `extra` arguments.
fn stamp_server(extra: &[&str]) -> ServerProcess {
    start_server(&[&["--stamp", "-H", "127.0.0.1", "-p", "0"][..], extra].concat())
}

/// Stops the server and returns its stderr (with the summary line).
fn stop(mut server: ServerProcess) -> String {
    server.signal(libc::SIGINT);
    server.wait_exit(WAIT).1
}

/// A sender packet of `mode` with sequence `seq`, `len` bytes, signed
/// with `key` when given (this file's SSID).
fn request(mode: Mode, seq: u32, len: usize, key: Option<&Key>) -> Vec<u8> {
    common::stamp_request(mode, seq, len, key, 0x5151)
}

/// A client socket with TTL `ttl` (what the replies must report).
fn client(ttl: u32) -> UdpSocket {
    let socket = udp_client();
    socket.set_ttl(ttl).unwrap();
    socket
}

/// Sends `packets` (all `packets[0].len()` bytes but the last, which may be
/// shorter) with one GSO send.
fn send_burst(socket: &UdpSocket, to: SocketAddr, packets: &[Vec<u8>]) {
    let bytes = packets.concat();
    let size = packets[0].len();
    assert_eq!(
        send_segmented(socket, Some(to), &bytes, size).unwrap(),
        bytes.len()
    );
}

/// `count` replies (each waited for at most 2 s).
fn replies(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    (0..count)
        .map(|i| {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("reply {i} of {count}: {e}"));
            buf[..n].to_vec()
        })
        .collect()
}

/// No further reply within 300 ms.
fn assert_no_more(socket: &UdpSocket) {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(socket.recv(&mut buf).is_err(), "an unexpected reply");
}

/// Whether an NTP time stamp is within a minute of now: set, and on this
/// host's clock (not a bound on any delay).
fn is_now(t: u64) -> bool {
    let now = TimeFormat::Ntp.encode(SystemTime::now());
    TimeFormat::Ntp.diff_ns(now, t).abs() < 60_000_000_000
}

#[test]
fn a_burst_of_requests_gets_every_reply_in_order_with_ttl_and_receive_time() {
    for extra in LOOPS {
        for stateful in [false, true] {
            let mut args = extra.to_vec();
            if stateful {
                args.push("--stamp-stateful");
            }
            let server = stamp_server(&args);
            let socket = client(77);
            // 44-byte packets, then 60-byte ones with an Extra Padding TLV.
            let mut sent = 0u32;
            for len in [44, 60] {
                let packets: Vec<Vec<u8>> = (0..20)
                    .map(|i| {
                        let mut p = request(Mode::Open, 1000 + sent + i, len, None);
                        if len > 44 {
                            p[44..48].copy_from_slice(&[0, 1, 0, 12]);
                        }
                        p
                    })
                    .collect();
                send_burst(&socket, server.addr, &packets);
                for (i, reply) in replies(&socket, 20).iter().enumerate() {
                    let case = format!("{args:?}: {len}-byte request {i}");
                    assert_eq!(reply.len(), len, "{case}: as long as its request");
                    let got = ReflectedPacket::decode(Mode::Open, reply).unwrap();
                    let seq = sent + i as u32;
                    assert_eq!(got.sender_seq, 1000 + seq, "{case}: in order");
                    let own = if stateful { seq } else { 1000 + seq };
                    assert_eq!(got.seq, own, "{case}");
                    assert_eq!(got.ssid, 0x5151, "{case}");
                    assert_eq!(got.sender_ttl, 77, "{case}: the request's TTL");
                    assert!(is_now(got.receive_timestamp), "{case}");
                    assert!(is_now(got.timestamp), "{case}");
                    assert_eq!(&reply[44..], &packets[i][44..], "{case}: TLVs copied");
                }
                sent += 20;
            }
            let stderr = stop(server);
            assert_eq!(summary_count(&stderr, "echoed"), 40, "{args:?}\n{stderr}");
            assert_eq!(summary_count(&stderr, "malformed"), 0, "{args:?}");
        }
    }
}

#[test]
fn short_requests_in_a_burst_are_dropped_and_the_rest_answered_in_order() {
    for extra in LOOPS {
        let server = stamp_server(extra);
        let socket = client(64);
        // Ten 14-byte requests: every one short, none answered (a 44-byte
        // reply would be 3.14× what a spoofed source sent).
        let short: Vec<Vec<u8>> = (0..10).map(|i| request(Mode::Open, i, 14, None)).collect();
        send_burst(&socket, server.addr, &short);
        assert_no_more(&socket);
        // Three 44-byte requests and a 20-byte one last in the same burst.
        let mut mixed: Vec<Vec<u8>> = (10..13).map(|i| request(Mode::Open, i, 44, None)).collect();
        mixed.push(request(Mode::Open, 13, 20, None));
        send_burst(&socket, server.addr, &mixed);
        let got = replies(&socket, 3);
        let seqs: Vec<u32> = got
            .iter()
            .map(|r| ReflectedPacket::decode(Mode::Open, r).unwrap().sender_seq)
            .collect();
        assert_eq!(seqs, [10, 11, 12], "{extra:?}");
        assert!(got.iter().all(|r| r.len() == 44), "{extra:?}");
        assert_no_more(&socket);
        // Under 14 bytes: short as well.
        let tiny: Vec<Vec<u8>> = (0..3).map(|i| request(Mode::Open, i, 13, None)).collect();
        send_burst(&socket, server.addr, &tiny);
        assert_no_more(&socket);
        let stderr = stop(server);
        assert_eq!(summary_count(&stderr, "echoed"), 3, "{extra:?}\n{stderr}");
        assert_eq!(summary_count(&stderr, "short"), 14, "{extra:?}");
        assert_eq!(summary_count(&stderr, "malformed"), 0, "{extra:?}");
    }
}

#[test]
fn a_bad_hmac_inside_a_burst_is_dropped_and_the_rest_answered() {
    let key_file = KeyFile::new("burst");
    let key = Key::from_file_contents(KEY_HEX.as_bytes()).unwrap();
    for extra in LOOPS {
        let server = stamp_server(&[&["--stamp-key", key_file.path()][..], extra].concat());
        let socket = client(64);
        let mut packets: Vec<Vec<u8>> = (0..5)
            .map(|i| request(Mode::Authenticated, i, 112, Some(&key)))
            .collect();
        packets[2][40] ^= 0x01; // no longer matches its HMAC
        send_burst(&socket, server.addr, &packets);
        let got = replies(&socket, 4);
        let seqs: Vec<u32> = got
            .iter()
            .map(|r| {
                assert!(key.verify(r), "{extra:?}: signed");
                ReflectedPacket::decode(Mode::Authenticated, r)
                    .unwrap()
                    .sender_seq
            })
            .collect();
        assert_eq!(seqs, [0, 1, 3, 4], "{extra:?}");
        assert_no_more(&socket);
        let stderr = stop(server);
        assert_eq!(
            summary_count(&stderr, "malformed"),
            1,
            "{extra:?}\n{stderr}"
        );
        assert_eq!(summary_count(&stderr, "echoed"), 4, "{extra:?}");
    }
}

#[test]
fn replies_sent_back_inside_a_burst_are_dropped_as_a_loop() {
    for extra in LOOPS {
        let server = stamp_server(extra);
        let socket = client(64);
        send_burst(&socket, server.addr, &[request(Mode::Open, 1, 44, None)]);
        let reply = replies(&socket, 1).remove(0);
        // An echo service bouncing our replies, around a real request.
        send_burst(
            &socket,
            server.addr,
            &[reply.clone(), request(Mode::Open, 2, 44, None), reply],
        );
        let got = replies(&socket, 1);
        let packet = ReflectedPacket::decode(Mode::Open, &got[0]).unwrap();
        assert_eq!(packet.sender_seq, 2, "{extra:?}");
        assert_no_more(&socket);
        let stderr = stop(server);
        assert_eq!(summary_count(&stderr, "loop"), 2, "{extra:?}\n{stderr}");
        assert_eq!(summary_count(&stderr, "echoed"), 2, "{extra:?}");
    }
}

/// The TOS byte of CS1 (DSCP 8), EF (46) and AF41 (34).
const CS1: u8 = 8 << 2;
const EF: u8 = 46 << 2;
const AF41: u8 = 34 << 2;

/// A client on `local` whose datagrams leave marked `tos`, with TTL / hop
/// limit 77, and which reads the TOS of what it receives.
fn marking_client(local: &str, tos: u8) -> UdpSocket {
    let socket = UdpSocket::bind(local).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sock = socket2::SockRef::from(&socket);
    if socket.local_addr().unwrap().is_ipv4() {
        sock.set_tos_v4(u32::from(tos)).unwrap();
        sock.set_ttl_v4(77).unwrap();
    } else {
        sock.set_tclass_v6(u32::from(tos)).unwrap();
        sock.set_unicast_hops_v6(77).unwrap();
    }
    udp_echo::sys::enable_recv_tos(&socket).unwrap();
    socket
}

/// `count` replies, each with the TOS it arrived with.
fn replies_with_tos(socket: &UdpSocket, count: usize) -> Vec<(Vec<u8>, u8)> {
    let mut buf = [0u8; 2048];
    (0..count)
        .map(|i| {
            let (n, _, tos) = udp_echo::sys::recv_from_tos(socket, &mut buf)
                .unwrap_or_else(|e| panic!("reply {i} of {count}: {e}"));
            (buf[..n].to_vec(), tos.expect("the reply's TOS"))
        })
        .collect()
}

/// An open request followed by `tlv`.
fn request_with(seq: u32, tlv: &[u8]) -> Vec<u8> {
    let mut p = request(Mode::Open, seq, 44, None);
    p.extend_from_slice(tlv);
    p
}

fn class_of_service(dscp1: u8) -> [u8; 8] {
    udp_echo::stamp::packet::ClassOfService {
        dscp1,
        ..Default::default()
    }
    .tlv()
}

/// The Class of Service TLV of a reply, read back.
fn cos_of(reply: &[u8]) -> udp_echo::stamp::packet::ClassOfService {
    udp_echo::stamp::packet::ClassOfService::from_value(reply[48..52].try_into().unwrap())
}

#[test]
fn a_class_of_service_tlv_gets_its_reply_sent_with_dscp1_and_says_what_arrived() {
    let mut hosts = vec![("127.0.0.1", "127.0.0.1:0")];
    if has_ipv6_loopback() {
        hosts.push(("::1", "[::1]:0"));
    } else {
        skip("STAMP Class of Service over IPv6: no ::1 here");
    }
    for (host, local) in hosts {
        for extra in LOOPS {
            let args = [&["--stamp", "-H", host, "-p", "0"][..], extra].concat();
            let server = start_server(&args);
            let case = format!("{args:?}");
            // CS1 with ECT(0) on the way out, EF asked for the way back.
            let socket = marking_client(local, CS1 | 0b10);
            let req = request_with(1, &class_of_service(46));
            send_burst(&socket, server.addr, &[req]);
            let (reply, tos) = replies_with_tos(&socket, 1).remove(0);
            assert_eq!(tos, EF, "{case}: DSCP1, Not-ECT");
            assert_eq!(&reply[44..48], &[0, 4, 0, 4], "{case}: no flag");
            let cos = cos_of(&reply);
            assert_eq!(
                (cos.dscp1, cos.dscp2, cos.ecn, cos.rp),
                (46, 8, 2, 0),
                "{case}"
            );
            // A Class of Service TLV of the wrong length: flagged M, and the
            // reply goes with the request's DSCP as any echo.
            let mut bad = class_of_service(46).to_vec();
            bad[3] = 2;
            bad.truncate(6);
            send_burst(&socket, server.addr, &[request_with(2, &bad)]);
            let (reply, tos) = replies_with_tos(&socket, 1).remove(0);
            assert_eq!(tos, CS1, "{case}");
            assert_eq!(reply[44], udp_echo::stamp::packet::tlv_flags::M, "{case}");
            assert_eq!(&reply[45..], &bad[1..], "{case}");
            // Cut short (length 4, 2 bytes there): flagged M as well.
            let cut = &class_of_service(46)[..6];
            send_burst(&socket, server.addr, &[request_with(3, cut)]);
            let (reply, tos) = replies_with_tos(&socket, 1).remove(0);
            assert_eq!(
                (reply[44], tos),
                (udp_echo::stamp::packet::tlv_flags::M, CS1)
            );
            let stderr = stop(server);
            assert_eq!(summary_count(&stderr, "echoed"), 3, "{case}\n{stderr}");
        }
    }
}

#[test]
fn replies_in_one_burst_each_go_with_the_dscp_their_request_asked_for() {
    for extra in LOOPS {
        let server = stamp_server(extra);
        let socket = marking_client("127.0.0.1:0", CS1);
        // Same size, different asks: EF, EF, AF41, none (Extra Padding), EF.
        let padding = [0, 1, 0, 4, 0, 0, 0, 0];
        let asks = [Some(46), Some(46), Some(34), None, Some(46)];
        let packets: Vec<Vec<u8>> = asks
            .iter()
            .enumerate()
            .map(|(i, ask)| match ask {
                Some(dscp1) => request_with(i as u32, &class_of_service(*dscp1)),
                None => request_with(i as u32, &padding),
            })
            .collect();
        send_burst(&socket, server.addr, &packets);
        let got = replies_with_tos(&socket, 5);
        let seqs: Vec<u32> = got
            .iter()
            .map(|(r, _)| ReflectedPacket::decode(Mode::Open, r).unwrap().sender_seq)
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "{extra:?}: in order");
        let tos: Vec<u8> = got.iter().map(|(_, tos)| *tos).collect();
        assert_eq!(tos, [EF, EF, AF41, CS1, EF], "{extra:?}");
        for (reply, _) in got.iter().filter(|(r, _)| r[45] == 4) {
            assert_eq!(cos_of(reply).dscp2, 8, "{extra:?}: arrived CS1");
        }
        stop(server);
    }
}

/// Routers' session-senders send from port 862: the reflector answers that
/// port although the guard drops every other source port below 1024, and an
/// echo server keeps dropping it.
#[test]
fn a_sender_on_port_862_is_answered_by_the_reflector_and_not_by_an_echo_server() {
    let sender = match bind_fixed_port(862) {
        Ok(socket) => socket,
        Err(e) => {
            skip(&format!("cannot bind source port 862 ({e}): needs root"));
            return;
        }
    };
    sender
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let packet = request(Mode::Open, 7, 44, None);
    let reflector = stamp_server(&[]);
    sender.send_to(&packet, reflector.addr).unwrap();
    let reply = replies(&sender, 1).remove(0);
    let decoded = ReflectedPacket::decode(Mode::Open, &reply).unwrap();
    assert_eq!(decoded.sender_seq, 7);
    let stderr = stop(reflector);
    assert_eq!(summary_count(&stderr, "service-port"), 0, "{stderr}");

    let echo = start_server(&["-H", "127.0.0.1", "-p", "0"]);
    sender.send_to(&packet, echo.addr).unwrap();
    assert_no_more(&sender);
    let stderr = stop(echo);
    assert_eq!(summary_count(&stderr, "service-port"), 1, "{stderr}");
}

/// One reflector's reply sent on to another that writes the other time
/// format must be refused, or two reflectors (or one of ours and a PTP
/// router) would bounce one forged packet for ever.
#[test]
fn a_reply_of_a_reflector_in_the_other_time_format_is_refused() {
    for (first, second) in [
        (&[][..], &["--stamp-ptp"][..]),
        (&["--stamp-ptp"][..], &[][..]),
    ] {
        let a = stamp_server(first);
        let b = stamp_server(second);
        let socket = client(64);
        socket
            .send_to(&request(Mode::Open, 9, 44, None), a.addr)
            .unwrap();
        let reply = replies(&socket, 1).remove(0);
        socket.send_to(&reply, b.addr).unwrap();
        assert_no_more(&socket);
        let stderr = stop(b);
        assert_eq!(
            summary_count(&stderr, "loop"),
            1,
            "{first:?} → {second:?}: {stderr}"
        );
        drop(a);
    }
}
