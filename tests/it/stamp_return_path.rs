//! RFC 9503's Destination Node Address and Return Path TLVs at our
//! reflector, in every server loop: the destination is checked against the
//! address the request was sent to; a Return Path's Return Address is a
//! reflection vector, honoured only inside `--stamp-return-path-allow`
//! (flagged U, reply to the source, otherwise); a Control Code asking for
//! no reply gets none, counted. Judged by where replies arrive, their
//! flags and the server's counts, over real loopback sockets (127.0.0.2 is
//! another address of this host: Linux routes all of 127/8 to lo).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::common;

use common::*;
use udp_echo::stamp::Mode;
use udp_echo::stamp::packet::tlv_flags;
use udp_echo::stamp::return_path::{destination_tlv, return_address_tlv};

const LOOPS: [&[&str]; 3] = [&["--batch", "1"], &["--no-gro"], &[]];

/// A request with a Destination Node Address TLV naming `dna` and a Return
/// Path TLV naming `back`, base packet 44 bytes, so the DNA TLV's flags are
/// at 44 and the Return Path's at 52 (IPv4 addresses).
fn request(dna: IpAddr, back: IpAddr) -> Vec<u8> {
    let mut req = stamp_request(Mode::Open, 7, 44, None, 3);
    req.extend_from_slice(&destination_tlv(dna));
    req.extend_from_slice(&return_address_tlv(back));
    req
}

fn socket_on(ip: &str, port: u16) -> UdpSocket {
    let socket = UdpSocket::bind((ip, port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
}

/// What arrives at `socket` (one datagram at most), and from where.
fn got(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    socket
        .recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

#[test]
fn a_return_path_goes_elsewhere_only_where_the_operator_allows() {
    let (here, there): (IpAddr, IpAddr) =
        ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    // Bound to 127.0.0.1, and a wildcard bind (whose replies, sent
    // elsewhere or not, leave from the address the request was sent to).
    for (loop_args, host) in LOOPS
        .iter()
        .flat_map(|l| [(*l, "127.0.0.1"), (*l, "0.0.0.0")])
    {
        for allow in [None, Some("127.0.0.2/32")] {
            let mut args = vec!["--stamp", "-H", host, "-p", "0"];
            args.extend_from_slice(loop_args);
            if let Some(allow) = allow {
                args.extend(["--stamp-return-path-allow", allow]);
            }
            let server = start_server(&args);
            let server_addr = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
            let sender = socket_on("127.0.0.1", 0);
            let port = sender.local_addr().unwrap().port();
            // Another socket of the test, on the address the Return Path names.
            let elsewhere = socket_on("127.0.0.2", port);
            let req = request(here, there);
            sender.send_to(&req, server_addr).unwrap();
            let (at_source, at_elsewhere) = (got(&sender), got(&elsewhere));
            let (reply, from) = match (allow, at_source, at_elsewhere) {
                (None, Some(reply), None) => reply,
                (Some(_), None, Some(reply)) => reply,
                (allow, s, e) => panic!(
                    "{loop_args:?} {host} allow {allow:?}: at the source {:?}, elsewhere {:?}",
                    s.map(|r| r.1),
                    e.map(|r| r.1)
                ),
            };
            assert_eq!(
                from, server_addr,
                "{loop_args:?} {host}: from the address asked"
            );
            assert_eq!(reply.len(), req.len(), "never longer than the request");
            assert_eq!(reply[44], 0, "Destination Node Address: where it was sent");
            let flags = if allow.is_some() { 0 } else { tlv_flags::U };
            assert_eq!(
                (reply[52], reply[56]),
                (flags, flags),
                "{loop_args:?} allow {allow:?}: Return Path and its Return Address flags"
            );
            assert_eq!(&reply[60..64], &[127, 0, 0, 2], "the address as sent");
        }
    }
}

#[test]
fn a_destination_node_address_elsewhere_is_flagged_and_the_reply_comes_anyway() {
    for loop_args in LOOPS {
        // Bound to 127.0.0.1, and a wildcard bind that learns each
        // request's destination from the kernel (`IP_PKTINFO`).
        for host in ["127.0.0.1", "0.0.0.0"] {
            let mut args = vec!["--stamp", "-H", host, "-p", "0"];
            args.extend_from_slice(loop_args);
            let server = start_server(&args);
            let to = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
            let sender = socket_on("127.0.0.1", 0);
            for (dna, expected) in [("127.0.0.1", 0), ("192.0.2.1", tlv_flags::U)] {
                let mut req = stamp_request(Mode::Open, 1, 44, None, 3);
                req.extend_from_slice(&destination_tlv(dna.parse().unwrap()));
                sender.send_to(&req, to).unwrap();
                let (reply, _) = got(&sender).expect("a reply");
                assert_eq!(reply[44], expected, "{loop_args:?} {host} DNA {dna}");
                assert_eq!(reply.len(), req.len());
            }
        }
    }
}

#[test]
fn stamp_suites_sender_with_both_tlvs_against_our_reflector() {
    let Some(suite) = crate::stamp::stamp_suite(
        "stamp-suite sender with Destination Node Address and Return Path → our reflector",
    ) else {
        return;
    };
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let run = crate::stamp::suite_sender(
        &suite,
        &port,
        ("4", "20"),
        &[
            "--ssid",
            "9",
            "--dest-node-addr",
            "127.0.0.1",
            "--return-address",
            "127.0.0.1",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let summary = crate::stamp::suite_summary(&run);
    assert_eq!(summary["packets_received"], 4, "{summary}");
    use udp_echo::stamp::return_path::{TLV_DESTINATION_NODE_ADDRESS, TLV_RETURN_PATH};
    assert_eq!(
        crate::stamp::suite_tlv_flags(&summary, TLV_DESTINATION_NODE_ADDRESS),
        (4, 0, 0, 0),
        "recognised: {summary}"
    );
    assert_eq!(
        crate::stamp::suite_tlv_flags(&summary, TLV_RETURN_PATH),
        (4, 4, 0, 0),
        "not allowed by default: U, and the reply to the source: {summary}"
    );
}

/// A redirected reply spends the `--rate-limit` budget of the address it
/// goes to, not only its sender's: 30 forged-looking senders (127.0.0.10
/// to .39), each well within its own budget of 5 a second, ask for 60
/// replies at 127.0.0.2 between them; it gets about its own budget's worth,
/// not 60.
#[test]
fn redirected_replies_spend_the_rate_limit_of_where_they_go() {
    for loop_args in LOOPS {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(loop_args);
        args.extend(["--stamp-return-path-allow", "127.0.0.2/32"]);
        args.extend(["--rate-limit", "5"]);
        let server = start_server(&args);
        let server_addr = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
        let elsewhere = socket_on("127.0.0.2", 0);
        let port = elsewhere.local_addr().unwrap().port();
        let senders: Vec<UdpSocket> = (10..40)
            .map(|i| socket_on(&format!("127.0.0.{i}"), port))
            .collect();
        let req = request("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        for _ in 0..2 {
            for sender in &senders {
                sender.send_to(&req, server_addr).unwrap();
            }
        }
        let mut arrived = 0;
        while got(&elsewhere).is_some() && arrived < 100 {
            arrived += 1;
        }
        // The replies are all in by now: a short look at each sender.
        let at_senders = senders
            .iter()
            .filter_map(|s| {
                s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                got(s)
            })
            .count();
        eprintln!("{loop_args:?}: {arrived} redirected replies arrived, {at_senders} at senders");
        assert!(arrived >= 1, "{loop_args:?}: the budget lets some through");
        assert!(
            arrived <= 15,
            "{loop_args:?}: {arrived} of 60 redirected replies arrived at one address limited to 5/s"
        );
        assert_eq!(at_senders, 0, "none goes to its sender instead");
    }
}

/// Two of our reflectors on one port, each allowing Return Paths to the
/// other, and a request (from that port, its sender time stamp zero, so the
/// first hop does not look reflected) whose Return Path names the second:
/// the first sends its reply there, the second (not allowed to send to
/// itself) answers the first, which recognises its own transmit time coming
/// back and drops it. Two replies in all, not a ping-pong, in every loop.
#[test]
fn two_reflectors_allowing_each_other_do_not_bounce_a_reply_for_ever() {
    for loop_args in LOOPS {
        let mut args_a = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        args_a.extend_from_slice(loop_args);
        args_a.extend(["--stamp-return-path-allow", "127.0.0.2/32"]);
        let a = start_server(&args_a);
        let port = a.addr.port().to_string();
        let mut args_b = vec!["--stamp", "-H", "127.0.0.2", "-p", &port];
        args_b.extend_from_slice(loop_args);
        args_b.extend(["--stamp-return-path-allow", "127.0.0.1/32"]);
        let b = start_server(&args_b);
        let sender = socket_on("127.0.0.3", a.addr.port());
        let mut req = request("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        req[4..12].fill(0);
        sender.send_to(&req, a.addr).unwrap();
        // Ample time for a ping-pong to run up thousands of bounces.
        std::thread::sleep(Duration::from_millis(500));
        assert!(got(&sender).is_none(), "nothing goes back to the sender");
        let stop = |mut server: ServerProcess| {
            server.signal(libc::SIGTERM);
            let (status, stderr) = server.wait_exit(Duration::from_secs(5));
            assert_eq!(status.code(), Some(0), "{stderr}");
            stderr
        };
        let (a, b) = (stop(a), stop(b));
        let echoed = |s: &str| summary_count(s, "echoed");
        eprintln!(
            "{loop_args:?}: A echoed {}, B echoed {}",
            echoed(&a),
            echoed(&b)
        );
        assert_eq!((echoed(&a), echoed(&b)), (1, 1), "{a}\n{b}");
        assert_eq!(summary_count(&a, "loop"), 1, "A drops its reply back: {a}");
    }
}

/// A request with one Return Path TLV of one Control Code sub-TLV (RFC 9503
/// §4.1.1): 0 asks for no reply, 1 for a reply on the same link. The TLV's
/// flags are at 44 and the sub-TLV's at 48.
fn control_code_request(seq: u32, code: u32) -> Vec<u8> {
    let mut req = stamp_request(Mode::Open, seq, 44, None, 3);
    req.extend_from_slice(&udp_echo::stamp::return_path::control_code_tlv(code));
    req
}

/// The sender's sequence number a stateless reflector's reply copies.
fn sender_seq(reply: &[u8]) -> u32 {
    u32::from_be_bytes(reply[24..28].try_into().unwrap())
}

/// Issue 24: a Control Code of 0 ("no reply requested") used to be flagged
/// U and answered. Now it gets no reply, in every loop, stateless and
/// stateful, and is counted (`no-reply`, on `/metrics` and in the summary);
/// the requests around it are answered, and a Control Code of 1 (the same
/// link) is answered as usual with its flags clear.
#[test]
fn a_control_code_asking_for_no_reply_gets_none_and_is_counted() {
    for loop_args in LOOPS {
        for stateful in [false, true] {
            let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
            args.extend(["--metrics", "127.0.0.1:0"]);
            args.extend_from_slice(loop_args);
            if stateful {
                args.push("--stamp-stateful");
            }
            let mut server = start_server(&args);
            let metrics = crate::metrics::metrics_addr(&server);
            let case = format!("{loop_args:?} stateful {stateful}");
            let sender = socket_on("127.0.0.1", 0);
            let plain = stamp_request(Mode::Open, 1, 44, None, 3);
            sender.send_to(&plain, server.addr).unwrap();
            let (first, _) = got(&sender).unwrap_or_else(|| panic!("{case}: no first reply"));
            for seq in 2..5 {
                sender
                    .send_to(&control_code_request(seq, 0), server.addr)
                    .unwrap();
            }
            sender
                .send_to(&control_code_request(5, 1), server.addr)
                .unwrap();
            // Loopback keeps the order: the next datagram is the answer to 5.
            let (same_link, _) = got(&sender).unwrap_or_else(|| panic!("{case}: no reply to 5"));
            assert_eq!(sender_seq(&same_link), 5, "{case}: 2 to 4 unanswered");
            assert_eq!(
                (same_link[44], same_link[48]),
                (0, 0),
                "{case}: the same link understood"
            );
            if stateful {
                // The session numbers its replies 0, 1: the three withheld
                // took no number.
                assert_eq!(&first[..4], &0u32.to_be_bytes(), "{case}");
                assert_eq!(&same_link[..4], &1u32.to_be_bytes(), "{case}");
            }
            assert!(got(&sender).is_none(), "{case}: nothing more");
            let body = crate::metrics::scrape_until(
                metrics,
                "udp_echo_server_dropped_datagrams_total{reason=\"no-reply\"}",
                3.0,
            );
            let series = |s: &str| crate::metrics::sample(&body, s);
            assert_eq!(
                series("udp_echo_server_dropped_datagrams_total{reason=\"no-reply\"}"),
                Some(3.0),
                "{case}: {body}"
            );
            assert_eq!(
                series("udp_echo_server_echoed_datagrams_total"),
                Some(2.0),
                "{case}"
            );
            server.signal(libc::SIGTERM);
            let (status, stderr) = server.wait_exit(Duration::from_secs(5));
            assert_eq!(status.code(), Some(0), "{stderr}");
            assert_eq!(summary_count(&stderr, "no-reply"), 3, "{case}: {stderr}");
            assert_eq!(summary_count(&stderr, "echoed"), 2, "{case}: {stderr}");
        }
    }
}

/// "No reply" is no way around `--rate-limit`: the guard judges a request
/// before the reflector reads its TLVs, so requests that ask for no reply
/// spend their source's budget as answered ones do. Twelve of them from
/// one source with a budget of 5 a second: about 5 `no-reply`, the rest
/// `rate-limited`, and a plain request right after finds the budget spent.
#[test]
fn no_reply_requests_spend_the_rate_limit_budget() {
    for loop_args in LOOPS {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0", "--rate-limit", "5"];
        args.extend_from_slice(loop_args);
        let mut server = start_server(&args);
        let sender = socket_on("127.0.0.1", 0);
        for seq in 0..12 {
            sender
                .send_to(&control_code_request(seq, 0), server.addr)
                .unwrap();
        }
        sender
            .send_to(&stamp_request(Mode::Open, 99, 44, None, 3), server.addr)
            .unwrap();
        let answered = got(&sender).is_some();
        server.signal(libc::SIGTERM);
        let (status, stderr) = server.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{stderr}");
        let (no_reply, limited, echoed) = (
            summary_count(&stderr, "no-reply"),
            summary_count(&stderr, "rate-limited"),
            summary_count(&stderr, "echoed"),
        );
        eprintln!("{loop_args:?}: no-reply {no_reply}, rate-limited {limited}, echoed {echoed}");
        assert_eq!(no_reply + limited + echoed, 13, "{loop_args:?}: {stderr}");
        // A burst of 5, plus what refills while a slow machine gets round
        // to the rest (5 a second): far from all 12.
        assert!(
            (5..=8).contains(&no_reply),
            "{loop_args:?}: {no_reply} no-reply within a budget of 5: {stderr}"
        );
        assert!(limited >= 5, "{loop_args:?}: {stderr}");
        assert_eq!(u64::from(answered), echoed, "{loop_args:?}");
    }
}

/// stamp-suite's sender asking for no reply (`--return-path-cc 0`) gets
/// none from our reflector, every request counted; asking for the same
/// link (`--return-path-cc 1`) it gets every reply, the Return Path TLV
/// recognised.
#[test]
fn stamp_suites_sender_with_a_control_code_against_our_reflector() {
    let Some(suite) = crate::stamp::stamp_suite(
        "stamp-suite sender with a Return Path Control Code → our reflector",
    ) else {
        return;
    };
    use udp_echo::stamp::return_path::TLV_RETURN_PATH;
    for (code, answered) in [("0", 0), ("1", 4)] {
        let mut server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
        let port = server.addr.port().to_string();
        let run = crate::stamp::suite_sender(
            &suite,
            &port,
            ("4", "20"),
            &["--return-path-cc", code, "--output-format", "json"],
        );
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        let summary = crate::stamp::suite_summary(&run);
        assert_eq!(summary["packets_sent"], 4, "{summary}");
        assert_eq!(
            summary["packets_received"], answered,
            "code {code}: {summary}"
        );
        if answered > 0 {
            assert_eq!(
                crate::stamp::suite_tlv_flags(&summary, TLV_RETURN_PATH),
                (4, 0, 0, 0),
                "recognised: {summary}"
            );
        }
        server.signal(libc::SIGTERM);
        let (status, stderr) = server.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert_eq!(summary_count(&stderr, "no-reply"), 4 - answered, "{stderr}");
        assert_eq!(summary_count(&stderr, "echoed"), answered, "{stderr}");
    }
}
