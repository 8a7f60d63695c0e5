//! AnyIP routes (`ip route add local …`): the host answers for a whole
//! prefix, so a wildcard server must know those addresses as its own too,
//! IPv4 and IPv6, and a route added while it runs.

use super::*;

/// Two payloads the old detector could not tell apart (same length, first
/// and last 16 bytes; different middles): in flight together they reset each
/// other's streak, so only the own-address check can stop them.
fn same_sketch_pair() -> [Vec<u8>; 2] {
    let mut a = vec![b'a'; 64];
    let mut b = a.clone();
    a[32] = b'x';
    b[32] = b'y';
    [a, b]
}

/// Adds `route` (`ip route add local …`, AnyIP) to the server's namespace.
fn add_anyip(ns: &str, family: &str, route: &str) {
    netns::run(
        "ip",
        &[
            "-n", ns, family, "route", "add", "local", route, "dev", "lo",
        ],
        None,
    )
    .unwrap_or_else(|why| panic!("{why}"));
}

/// Reads the summary of a server that was sent two datagrams from its own
/// port on an AnyIP address: both dropped as bad-source, none echoed.
fn assert_two_dropped_as_own(what: &str, stderr: &str) {
    let received = summary_count(stderr, "received");
    let bad_source = summary_count(stderr, "bad-source");
    eprintln!("{what}: {received} datagrams received, bad-source {bad_source}");
    assert!(received <= LOOP_BUDGET, "runaway: {stderr}");
    assert_eq!(received, 2, "caught on the first datagrams: {stderr}");
    assert_eq!(bad_source, 2, "{stderr}");
    assert_eq!(summary_count(stderr, "echoed"), 0, "{stderr}");
}

#[test]
fn a_wildcard_server_does_not_echo_to_itself_through_an_anyip_route() {
    // Issue 19 §2: 198.51.100.0/24 is local by a route alone, on no
    // interface; two datagrams forged from 198.51.100.5:PORT to
    // 127.0.0.1:PORT made the server echo to itself for ever. IPv4, and the
    // same on a dual-stack socket, where the source is v4-mapped, and in the
    // plain loop (`--batch 1`).
    for (host, batch) in [("0.0.0.0", "32"), ("::", "32"), ("0.0.0.0", "1")] {
        let Some(net) = test_net("AnyIP self loop") else {
            return;
        };
        let ns = net.server.clone();
        add_anyip(&ns, "-4", "198.51.100.0/24");
        let args = ["-H", host, "--batch", batch, "--stop-on-empty", "never"];
        let server = server_in(&ns, &args);
        let port = server.addr.port();
        in_ns(&ns, move || {
            let from = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 5), port);
            let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            for payload in same_sketch_pair() {
                forge(from, to, &payload);
            }
        });
        thread::sleep(LOOP_RUN);
        assert_two_dropped_as_own(&format!("AnyIP on {host}, batch {batch}"), &stop(server));
    }
}

/// The same with the request sent to another address of the AnyIP range
/// (forged from 198.51.100.9:PORT to 198.51.100.8:PORT), which the reply
/// would now leave from: still the server's own socket, dropped on the
/// first datagram; in the batched and plain loops and as a STAMP reflector.
#[test]
fn a_forged_datagram_between_two_anyip_addresses_is_the_servers_own() {
    let cases: [(&str, &[&str]); 3] = [
        ("32", &[]),
        ("1", &[]),
        ("32", &["--stamp", "--stamp-stateful"]),
    ];
    for (batch, extra) in cases {
        let Some(net) = test_net("AnyIP to AnyIP self loop") else {
            return;
        };
        let ns = net.server.clone();
        add_anyip(&ns, "-4", "198.51.100.0/24");
        let mut args = vec![
            "-H",
            "0.0.0.0",
            "--batch",
            batch,
            "--stop-on-empty",
            "never",
        ];
        args.extend_from_slice(extra);
        let server = server_in(&ns, &args);
        let port = server.addr.port();
        in_ns(&ns, move || {
            let from = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), port);
            let to = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 8), port);
            for payload in same_sketch_pair() {
                forge(from, to, &payload);
            }
        });
        thread::sleep(LOOP_RUN);
        assert_two_dropped_as_own(
            &format!("AnyIP to AnyIP, batch {batch} {extra:?}"),
            &stop(server),
        );
    }
}

#[test]
fn a_wildcard_server_does_not_echo_to_itself_through_an_ipv6_anyip_route() {
    let Some(net) = test_net("IPv6 AnyIP self loop") else {
        return;
    };
    let ns = net.server.clone();
    add_anyip(&ns, "-6", "2001:db8:5::/64");
    let server = server_in(&ns, &["-H", "::", "--stop-on-empty", "never"]);
    let port = server.addr.port();
    // As in the test above for an interface address: stopped, the server
    // answers only once the trigger's socket (which would take the echoes)
    // is gone, so its echoes go to 2001:db8:5::5:PORT, i.e. to itself.
    server.signal(libc::SIGSTOP);
    in_ns(&ns, move || {
        let trigger = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        trigger.set_reuse_address(true).unwrap();
        // IPv6 binds an AnyIP address only with IPV6_FREEBIND.
        trigger.set_freebind_v6(true).unwrap();
        let own: SocketAddr = format!("[2001:db8:5::5]:{port}").parse().unwrap();
        trigger
            .bind(&SockAddr::from(own))
            .expect("co-bind [2001:db8:5::5] with the server's port");
        let to: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        for payload in same_sketch_pair() {
            trigger.send_to(&payload, &SockAddr::from(to)).unwrap();
        }
    });
    server.signal(libc::SIGCONT);
    thread::sleep(LOOP_RUN);
    assert_two_dropped_as_own("IPv6 AnyIP", &stop(server));
}

/// As [`forge`], from any source address, local or not: the whole IPv4
/// header is ours (`IPPROTO_RAW`); the kernel fills in its checksum.
fn forge_any(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) {
    let raw = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )
    .expect("raw socket");
    let udp_len = u16::try_from(8 + payload.len()).unwrap();
    let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    packet[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    for field in [from.port(), to.port(), udp_len, 0] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    packet.extend_from_slice(payload);
    let sent = raw
        .send_to(&packet, &SockAddr::from(SocketAddrV4::new(*to.ip(), 0)))
        .expect("send the forged packet");
    assert_eq!(sent, packet.len());
}

#[test]
fn an_anyip_route_added_while_the_server_runs_counts_once_its_answer_is_a_second_old() {
    let Some(net) = test_net("AnyIP added later") else {
        return;
    };
    let ns = net.server.clone();
    let server = server_in(&ns, &["-H", "0.0.0.0", "--stop-on-empty", "never"]);
    let port = server.addr.port();
    let from = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 5), port);
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    // Not local yet: answered (towards an unroutable address), and the
    // kernel's "not local" cached.
    in_ns(&ns, move || forge_any(from, to, b"not yet ours"));
    thread::sleep(Duration::from_millis(200));
    add_anyip(&ns, "-4", "198.51.100.0/24");
    // The cached "not local" is at most 1 s old after this (TTL).
    thread::sleep(Duration::from_millis(1_500));
    in_ns(&ns, move || {
        for payload in same_sketch_pair() {
            forge_any(from, to, &payload);
        }
    });
    thread::sleep(LOOP_RUN);
    let stderr = stop(server);
    let received = summary_count(&stderr, "received");
    let bad_source = summary_count(&stderr, "bad-source");
    eprintln!("AnyIP added later: {received} received, bad-source {bad_source}");
    assert!(received <= LOOP_BUDGET, "runaway: {stderr}");
    assert_eq!(received, 3, "{stderr}");
    // The first one too, should it have been read only after the route came.
    assert!(bad_source >= 2, "{stderr}");
    let answered = summary_count(&stderr, "echoed") + summary_count(&stderr, "send errors");
    assert_eq!(answered, 3 - bad_source, "{stderr}");
}
