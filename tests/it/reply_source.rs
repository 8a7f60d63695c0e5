//! A wildcard-bound server (`-H 0.0.0.0`, `-H ::`) answers every request
//! from the address it was sent to, in every loop (GRO, `--no-gro`,
//! `--batch 1`) and with `--stamp`: a client connected to that address
//! (the kernel drops datagrams from any other source on a connected
//! socket) gets its replies, and an unconnected one sees them come from it.
//!
//! The server host (a namespace of its own) has an AnyIP range for each
//! family (`ip route add local … dev lo`) and a secondary address on `lo`
//! for each. Requests come from two places: the server host itself, from a
//! socket bound to its loopback address (the kernel's own choice of source
//! for the reply would be that loopback address), and the client host on
//! the other end of the veth link (there it would be the server's link
//! address). IPv4 requests to the `::` server arrive IPv4-mapped.

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::common;
use crate::common::netns::{self, TestNet};

use common::start_server_via;

/// The server host's IPv4 AnyIP range and the address asked in it.
const ANYIP_V4: &str = "198.18.0.0/16";
const ASKED_ANYIP_V4: &str = "198.18.5.5";
/// A secondary IPv4 address on the server host's `lo`.
const SECONDARY_V4: &str = "192.0.2.7";
/// The IPv6 AnyIP range and the address asked in it.
const ANYIP_V6: &str = "2001:db8:77::/64";
const ASKED_ANYIP_V6: &str = "2001:db8:77::5";
/// A secondary IPv6 address on the server host's `lo`.
const SECONDARY_V6: &str = "2001:db8:99::7";

/// How long a socket waits for one reply: a reply from the wrong source
/// never comes to a connected socket, so this is what a failure costs.
const REPLY_WAIT: Duration = Duration::from_secs(2);

/// Datagrams in the burst that the server's GRO socket takes as one buffer.
const BURST: usize = 64;

fn must(args: &[&str]) {
    netns::run("ip", args, None).unwrap_or_else(|why| panic!("{why}"));
}

/// The two hosts, the server's with its AnyIP ranges and secondary
/// addresses, the client's with routes to them over the link.
fn hosts(test: &str) -> Option<TestNet> {
    let net = netns::test_net(test)?;
    let (s, c) = (net.server.as_str(), net.client.as_str());
    must(&["-n", s, "route", "add", "local", ANYIP_V4, "dev", "lo"]);
    must(&[
        "-n", s, "-6", "route", "add", "local", ANYIP_V6, "dev", "lo",
    ]);
    must(&[
        "-n",
        s,
        "addr",
        "add",
        &format!("{SECONDARY_V4}/32"),
        "dev",
        "lo",
    ]);
    let v6 = format!("{SECONDARY_V6}/128");
    must(&["-n", s, "addr", "add", &v6, "dev", "lo", "nodad"]);
    for (range, via) in [
        (ANYIP_V4, netns::SERVER_V4),
        (&format!("{SECONDARY_V4}/32"), netns::SERVER_V4),
    ] {
        must(&["-n", c, "route", "add", range, "via", via]);
    }
    for (range, via) in [
        (ANYIP_V6, netns::SERVER_V6),
        (v6.as_str(), netns::SERVER_V6),
    ] {
        must(&["-n", c, "-6", "route", "add", range, "via", via]);
    }
    Some(net)
}

/// What the requests carry: plain bytes, or STAMP test packets (`--stamp`).
#[derive(Clone, Copy)]
enum Payload {
    Echo,
    Stamp,
}

impl Payload {
    fn bytes(self, seq: usize) -> Vec<u8> {
        match self {
            Payload::Echo => format!("reply-source {seq:08}").into_bytes(),
            Payload::Stamp => {
                common::stamp_request(udp_echo::stamp::Mode::Open, seq as u32, 44, None, 7)
            }
        }
    }
}

fn socket(bind: IpAddr) -> UdpSocket {
    let socket = UdpSocket::bind((bind, 0)).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    socket.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    socket
}

/// From a socket bound to `bind`: one request to `asked` on an unconnected
/// socket, whose reply must come from `asked`, then one on a socket
/// connected to `asked`, which must be answered at all.
fn ask(bind: IpAddr, asked: SocketAddr, payload: Payload, seq: usize, case: &str) {
    let mut buf = [0u8; 2048];
    let unconnected = socket(bind);
    let request = payload.bytes(seq);
    unconnected.send_to(&request, asked).unwrap();
    let (n, from) = unconnected
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{case}: no reply to {asked} within {REPLY_WAIT:?}: {e}"));
    assert_eq!(n, request.len(), "{case}");
    assert_eq!(
        from, asked,
        "{case}: the reply's source is the address asked"
    );
    let connected = socket(bind);
    connected.connect(asked).unwrap();
    let request = payload.bytes(seq + 1);
    connected.send(&request).unwrap();
    let n = connected.recv(&mut buf).unwrap_or_else(|e| {
        panic!("{case}: a client connected to {asked} got no reply within {REPLY_WAIT:?}: {e}")
    });
    assert_eq!(n, request.len(), "{case}");
}

/// From a socket bound to `bind`: [`BURST`] requests of one size to
/// `asked` in one GSO send, which the server's GRO socket takes as one
/// buffer; every reply comes back, from `asked`.
fn burst(bind: IpAddr, asked: SocketAddr, payload: Payload, case: &str) {
    let client = socket(bind);
    let requests: Vec<Vec<u8>> = (0..BURST).map(|seq| payload.bytes(1000 + seq)).collect();
    let size = requests[0].len();
    assert!(requests.iter().all(|r| r.len() == size));
    let bytes = requests.concat();
    let sent = udp_echo::sys::send_segmented(&client, Some(asked), &bytes, size)
        .unwrap_or_else(|e| panic!("{case}: GSO send: {e}"));
    assert_eq!(sent, bytes.len(), "{case}");
    let mut buf = [0u8; 2048];
    for k in 0..BURST {
        let (n, from) = client.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!("{case}: reply {k} of {BURST} did not come within {REPLY_WAIT:?}: {e}")
        });
        assert_eq!(n, size, "{case}: reply {k}");
        assert_eq!(
            from, asked,
            "{case}: reply {k} comes from the address asked"
        );
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Every loop kind, with and without `--stamp`, on `bind`: each address
/// asked answers from itself, from both hosts.
fn wildcard_replies_from_the_address_asked(test: &str, bind: &str) {
    let Some(net) = hosts(test) else {
        return;
    };
    // IPv4 on both (IPv4-mapped on `::`), IPv6 on `::` only.
    let mut asked = vec![ip(ASKED_ANYIP_V4), ip(SECONDARY_V4)];
    if bind == "::" {
        asked.extend([ip(ASKED_ANYIP_V6), ip(SECONDARY_V6)]);
    }
    for stamp in [false, true] {
        for mode in [&[][..], &["--no-gro"], &["--batch", "1"]] {
            let mut args = vec!["-H", bind, "-p", "0"];
            args.extend_from_slice(mode);
            let payload = if stamp {
                args.push("--stamp");
                Payload::Stamp
            } else {
                Payload::Echo
            };
            let server = start_server_via(&["ip", "netns", "exec", &net.server], &args);
            let port = server.addr.port();
            let targets: Vec<SocketAddr> =
                asked.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
            let what = format!("{test}: server {args:?}");
            // On the server host, from its loopback addresses.
            let (on_server, case) = (targets.clone(), what.clone());
            netns::in_ns(&net.server, move || {
                for (seq, &to) in on_server.iter().enumerate() {
                    let bind = if to.is_ipv4() {
                        ip("127.0.0.1")
                    } else {
                        ip("::1")
                    };
                    let case = format!("{case}: {bind} → {to}");
                    ask(bind, to, payload, 10 * seq, &case);
                }
                for &to in on_server.iter().filter(|to| to.ip() == ip(ASKED_ANYIP_V4)) {
                    burst(
                        ip("127.0.0.1"),
                        to,
                        payload,
                        &format!("{case}: burst → {to}"),
                    );
                }
                for &to in on_server.iter().filter(|to| to.ip() == ip(ASKED_ANYIP_V6)) {
                    burst(ip("::1"), to, payload, &format!("{case}: burst → {to}"));
                }
            });
            // On the client host, over the link.
            let case = what.clone();
            netns::in_ns(&net.client, move || {
                for (seq, &to) in targets.iter().enumerate() {
                    let bind = if to.is_ipv4() {
                        ip(netns::CLIENT_V4)
                    } else {
                        ip(netns::CLIENT_V6)
                    };
                    let case = format!("{case}: {bind} → {to}");
                    ask(bind, to, payload, 100 + 10 * seq, &case);
                }
            });
            let stderr = server.stderr();
            assert!(
                !stderr.contains("kernel's choice of source"),
                "{what}: every reply from the address asked:\n{stderr}"
            );
        }
    }
}

#[test]
fn an_ipv4_wildcard_server_replies_from_the_address_asked_in_every_loop() {
    wildcard_replies_from_the_address_asked("reply_source v4", "0.0.0.0");
}

#[test]
fn a_dual_stack_wildcard_server_replies_from_the_address_asked_ipv6_and_ipv4_mapped() {
    wildcard_replies_from_the_address_asked("reply_source dual-stack", "::");
}

/// A socket-activated server on an inherited `0.0.0.0` socket replies from
/// the address asked too (`Server::adopt` readies it as `bind` does), the
/// datagram that woke it included: it was queued before the server asked
/// for destinations, so the kernel reports only its header's destination.
#[test]
fn a_socket_activated_wildcard_server_replies_from_the_address_asked() {
    use crate::activation::{ACTIVATE, has_activate};
    if !has_activate() {
        return;
    }
    let Some(net) = hosts("reply_source activation") else {
        return;
    };
    const PORT: u16 = 7007;
    let target = SocketAddr::new(ip(ASKED_ANYIP_V4), PORT);
    let waker = {
        let ns = net.server.clone();
        std::thread::spawn(move || {
            netns::in_ns(&ns, move || {
                let socket = socket(ip("127.0.0.1"));
                socket
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..100 {
                    socket.send_to(b"wake up", target).unwrap();
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        return Some(from);
                    }
                }
                None
            })
        })
    };
    let listen = format!("0.0.0.0:{PORT}");
    let server = start_server_via(
        &[
            "ip",
            "netns",
            "exec",
            &net.server,
            ACTIVATE,
            "--datagram",
            "-l",
            &listen,
        ],
        &[],
    );
    assert_eq!(
        waker.join().unwrap(),
        Some(target),
        "the activated server answered the wake-up from the address asked"
    );
    assert_eq!(server.addr.port(), PORT);
    netns::in_ns(&net.server, move || {
        for (seq, asked) in [ASKED_ANYIP_V4, SECONDARY_V4].into_iter().enumerate() {
            let to = SocketAddr::new(ip(asked), PORT);
            let case = format!("activated 0.0.0.0: 127.0.0.1 → {to}");
            ask(ip("127.0.0.1"), to, Payload::Echo, 10 * seq, &case);
        }
    });
}

/// Where the kernel refuses the address asked as a source — an IPv6 AnyIP
/// address on a socket without `IPV6_FREEBIND`, which
/// `sys::enable_reply_source` would set — the reply goes again without it,
/// from the kernel's choice, and is counted: batched, and a GRO buffer's
/// `UDP_SEGMENT` message, after which GSO stays on (the refusal was the
/// source's, not GSO's).
#[test]
fn a_refused_source_falls_back_to_the_kernel_s_choice_and_is_counted() {
    let Some(net) = hosts("reply_source refused") else {
        return;
    };
    netns::in_ns(&net.server, || {
        let server = UdpSocket::bind("[::]:0").unwrap();
        udp_echo::sys::enable_recv_destination(&server).unwrap();
        server.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        let asked = SocketAddr::new(ip(ASKED_ANYIP_V6), server.local_addr().unwrap().port());
        let kernel_s_choice = SocketAddr::new(ip("::1"), asked.port());
        let client = socket(ip("::1"));
        let mut buf = [0u8; 2048];

        client.send_to(b"batched", asked).unwrap();
        let mut batch = udp_echo::sys::Batch::new(4);
        batch.reply_from_destination();
        assert_eq!(batch.recv(&server).unwrap(), 1);
        assert_eq!(batch.destination(0), Some(asked.ip()));
        let outcome = batch.echo(&server, |_| Some(0));
        assert_eq!(
            (outcome.sent, outcome.errors),
            (1, 0),
            "still answered: {outcome:?}"
        );
        assert_eq!(
            (outcome.unsourced, outcome.source_refused),
            (1, 1),
            "{outcome:?}"
        );
        assert_eq!(client.recv_from(&mut buf).unwrap(), (7, kernel_s_choice));

        let gro = UdpSocket::bind("[::]:0").unwrap();
        udp_echo::sys::enable_recv_destination(&gro).unwrap();
        gro.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        if udp_echo::sys::enable_gro(&gro).is_err() {
            return common::skip("no UDP GRO here: the GSO fallback was not tried");
        }
        let asked = SocketAddr::new(asked.ip(), gro.local_addr().unwrap().port());
        let kernel_s_choice = SocketAddr::new(ip("::1"), asked.port());
        let data = vec![7u8; 8 * 40];
        udp_echo::sys::send_segmented(&client, Some(asked), &data, 40).unwrap();
        let mut batch = udp_echo::sys::GroBatch::new(4);
        batch.reply_from_destination();
        let mut buffers = 0;
        let mut datagrams = 0;
        while datagrams < 8 {
            let n = batch.recv(&gro).unwrap();
            for slot in 0..n {
                let count = batch.buffer(slot).datagrams();
                assert_eq!(batch.queue(slot, 0..count, 0), count);
                datagrams += count;
                buffers += 1;
            }
            let outcome = batch.flush(&gro);
            assert_eq!(outcome.errors, 0, "{outcome:?}");
            assert_eq!(outcome.unsourced, outcome.sent, "{outcome:?}");
            assert_eq!(outcome.source_refused, outcome.sent, "{outcome:?}");
            assert_eq!(outcome.gso_refused, None, "{outcome:?}");
        }
        assert!(batch.gso(), "a refused source leaves GSO on");
        for k in 0..8 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(
                (n, from),
                (40, kernel_s_choice),
                "reply {k} ({buffers} buffers)"
            );
        }
    });
}

/// An IPv6 link-local destination, a second one on the server's link
/// (`fe80::2` beside the kernel's own, as a router's `fe80::1` is): the
/// reply comes from the address asked, in every loop, with and without
/// `--stamp` (the reply's destination carries the link as its scope).
#[test]
fn a_wildcard_server_replies_from_a_second_link_local_address() {
    let Some(net) = netns::test_net("reply_source link-local") else {
        return;
    };
    let (s, c) = (net.server.as_str(), net.client.as_str());
    must(&[
        "-n",
        s,
        "addr",
        "add",
        "fe80::2/64",
        "dev",
        &net.server_dev,
        "nodad",
    ]);
    must(&[
        "-n",
        c,
        "addr",
        "add",
        "fe80::1/64",
        "dev",
        &net.client_dev,
        "nodad",
    ]);
    for stamp in [false, true] {
        for mode in [&[][..], &["--no-gro"], &["--batch", "1"]] {
            let mut args = vec!["-H", "::", "-p", "0"];
            args.extend_from_slice(mode);
            let payload = if stamp {
                args.push("--stamp");
                Payload::Stamp
            } else {
                Payload::Echo
            };
            let server = start_server_via(&["ip", "netns", "exec", s], &args);
            let port = server.addr.port();
            let (dev, case) = (net.client_dev.clone(), format!("link-local {args:?}"));
            netns::in_ns(c, move || {
                let name = std::ffi::CString::new(dev).unwrap();
                // SAFETY: if_nametoindex reads a NUL-terminated name we own.
                let link = unsafe { libc::if_nametoindex(name.as_ptr()) };
                assert_ne!(link, 0, "the client's link has an index");
                let local = std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 0, 0, link);
                let asked = std::net::SocketAddrV6::new("fe80::2".parse().unwrap(), port, 0, link);
                let client = UdpSocket::bind(local).unwrap();
                client.set_read_timeout(Some(REPLY_WAIT)).unwrap();
                let request = payload.bytes(7);
                client.send_to(&request, asked).unwrap();
                let mut buf = [0u8; 2048];
                let (n, from) = client
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("{case}: no reply from {asked}: {e}"));
                assert_eq!(n, request.len(), "{case}");
                assert_eq!(
                    from,
                    SocketAddr::V6(asked),
                    "{case}: from the address asked"
                );
            });
            let stderr = server.stderr();
            assert!(
                !stderr.contains("kernel's choice of source"),
                "{args:?}: every reply from the address asked:\n{stderr}"
            );
        }
    }
}
