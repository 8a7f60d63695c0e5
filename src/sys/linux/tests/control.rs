//! Unit tests of `linux`'s control messages: crafted as the kernel lays
//! them out (error-queue transmit stamps, `IP_PKTINFO`'s reply source, the
//! source message written), and transmit stamps end to end on loopback.

use super::*;

/// Writes control messages `(level, kind, data)` into `buf` as the kernel
/// lays them out, and returns a header over them.
fn crafted(buf: &mut [u64; 64], messages: &[(libc::c_int, libc::c_int, &[u8])]) -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_control = buf.as_mut_ptr().cast();
    hdr.msg_controllen = mem::size_of_val(buf) as _;
    // SAFETY: the header describes `buf` (aligned for cmsghdr, 512 bytes);
    // every message written fits (asserted), through CMSG_FIRSTHDR/NXTHDR.
    unsafe {
        let mut used = 0;
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        for &(level, kind, data) in messages {
            assert!(!cmsg.is_null());
            (*cmsg).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(cmsg), data.len());
            used += libc::CMSG_SPACE(data.len() as u32) as usize;
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
        hdr.msg_controllen = used as _;
    }
    hdr
}

fn extended_err(origin: u8, info: u32, data: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(libc::ENOMSG as u32).to_ne_bytes()); // ee_errno
    b.extend_from_slice(&[origin, 0, 0, 0]); // ee_origin, type, code, pad
    b.extend_from_slice(&info.to_ne_bytes());
    b.extend_from_slice(&data.to_ne_bytes());
    b.extend_from_slice(&[0; 16]); // the offender's sockaddr_in
    b
}

fn timestamping(secs: i64, nanos: i64) -> Vec<u8> {
    let mut b = Vec::new();
    for (s, n) in [(secs, nanos), (0, 0), (0, 0)] {
        b.extend_from_slice(&s.to_ne_bytes());
        b.extend_from_slice(&n.to_ne_bytes());
    }
    b
}

#[test]
fn the_error_queue_parser_reads_the_counter_and_the_software_stamp() {
    let mut buf = [0u64; 64];
    let err = extended_err(libc::SO_EE_ORIGIN_TIMESTAMPING, 0, 41);
    let ts = timestamping(1_700_000_000, 123_456_789);
    let ns = timestamping(9, 9); // an SCM_TIMESTAMPNS beside them (SO_TIMESTAMPNS on)
    let hdr = crafted(
        &mut buf,
        &[
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ns[..16]),
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &ts),
            (libc::SOL_IP, libc::IP_RECVERR, &err),
        ],
    );
    assert_eq!(cmsg::tx_stamp(&hdr), Some((41, 1_700_000_000_123_456_789)));
    // IPv6 sockets report the error as IPV6_RECVERR, in any order.
    let hdr = crafted(
        &mut buf,
        &[
            (libc::SOL_IPV6, libc::IPV6_RECVERR, &err),
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &ts),
        ],
    );
    assert_eq!(cmsg::tx_stamp(&hdr).map(|s| s.0), Some(41));
}

#[test]
fn the_error_queue_parser_skips_other_errors_and_incomplete_messages() {
    let mut buf = [0u64; 64];
    let ts = timestamping(1_700_000_000, 5);
    // An ICMP error (origin 2), a scheduler stamp (SCM_TSTAMP_SCHED = 1).
    for err in [
        extended_err(libc::SO_EE_ORIGIN_ICMP, 0, 3),
        extended_err(libc::SO_EE_ORIGIN_TIMESTAMPING, 1, 3),
    ] {
        let hdr = crafted(
            &mut buf,
            &[
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &ts),
                (libc::SOL_IP, libc::IP_RECVERR, &err),
            ],
        );
        assert_eq!(cmsg::tx_stamp(&hdr), None);
    }
    let err = extended_err(libc::SO_EE_ORIGIN_TIMESTAMPING, 0, 3);
    // No stamp; a stamp cut short; a zero (hardware-only) software stamp.
    let hdr = crafted(&mut buf, &[(libc::SOL_IP, libc::IP_RECVERR, &err)]);
    assert_eq!(cmsg::tx_stamp(&hdr), None);
    let hdr = crafted(
        &mut buf,
        &[
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &ts[..16]),
            (libc::SOL_IP, libc::IP_RECVERR, &err),
        ],
    );
    assert_eq!(cmsg::tx_stamp(&hdr), None);
    let zero = timestamping(0, 0);
    let hdr = crafted(
        &mut buf,
        &[
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &zero),
            (libc::SOL_IP, libc::IP_RECVERR, &err),
        ],
    );
    assert_eq!(cmsg::tx_stamp(&hdr), None);
}

#[test]
fn every_send_gets_a_numbered_transmit_stamp_and_receives_keep_theirs() {
    let (server, client) = pair();
    client.connect(server.local_addr().unwrap()).unwrap();
    server.connect(client.local_addr().unwrap()).unwrap();
    txstamp::enable_tx_timestamps(&client).unwrap();
    cmsg::enable_rx_timestamps(&client).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // More than one recvmmsg takes (16), fewer than the server's buffer holds.
    for i in 0..40u8 {
        client.send(&[i; 20]).unwrap();
    }
    let mut stamps = Vec::new();
    for _ in 0..200 {
        txstamp::read_tx_timestamps(&client, &mut |id, ns| stamps.push((id, ns))).unwrap();
        if stamps.len() >= 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids: Vec<u32> = stamps.iter().map(|s| s.0).collect();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    assert!(stamps.windows(2).all(|w| w[0].1 <= w[1].1), "{stamps:?}");
    assert!(
        stamps.iter().all(|s| s.1 >= before - 1_000_000),
        "{stamps:?}"
    );
    // Empty now: no block, nothing read.
    assert_eq!(
        txstamp::read_tx_timestamps(&client, &mut |_, _| {}).unwrap(),
        0
    );
    // The receive path still gets its kernel time, and the TOS beside it.
    crate::sys::enable_recv_tos(&client).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..40 {
        let _ = server.recv(&mut buf).unwrap();
    }
    server.send(b"reply").unwrap();
    let mut inbox = gro::GroBatch::new(2);
    assert_eq!(inbox.recv(&client).unwrap(), 1);
    assert!(!inbox.buffer(0).truncated);
    assert!(inbox.rx_time_ns(0).is_some());
    assert!(inbox.tos(0).is_some());
}

/// An `in_pktinfo` as the kernel writes it: interface 1, this local
/// address (`ipi_spec_dst`) and header destination.
fn in_pktinfo(spec_dst: [u8; 4], addr: [u8; 4]) -> Vec<u8> {
    [&1u32.to_ne_bytes()[..], &spec_dst, &addr].concat()
}

/// An `in6_pktinfo`: this address, interface 1.
fn in6_pktinfo(addr: &str) -> Vec<u8> {
    let ip: std::net::Ipv6Addr = addr.parse().unwrap();
    [&ip.octets()[..], &1u32.to_ne_bytes()].concat()
}

#[test]
fn the_reply_source_is_the_local_address_and_never_multicast_or_broadcast() {
    use super::cmsg::{destination, reply_source};
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let mut buf = [0u64; 64];
    let (v4, v6) = (
        (libc::IPPROTO_IP, libc::IP_PKTINFO),
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO),
    );
    // Unicast: the destination; a broadcast: `ipi_spec_dst`, the interface's
    // address, is what the kernel would answer from, but the header's
    // destination stays the broadcast (for the Location TLV).
    let unicast = in_pktinfo([198, 18, 5, 5], [198, 18, 5, 5]);
    let hdr = crafted(&mut buf, &[(v4.0, v4.1, &unicast)]);
    assert_eq!(reply_source(&hdr), Some(ip("198.18.5.5")));
    let broadcast = in_pktinfo([10, 0, 0, 2], [10, 0, 0, 255]);
    let hdr = crafted(&mut buf, &[(v4.0, v4.1, &broadcast)]);
    assert_eq!(reply_source(&hdr), Some(ip("10.0.0.2")));
    assert_eq!(destination(&hdr), Some(ip("10.0.0.255")));
    // Queued before the socket asked: no `ipi_spec_dst`, the header's then.
    let early = in_pktinfo([0; 4], [198, 18, 5, 5]);
    let hdr = crafted(&mut buf, &[(v4.0, v4.1, &early)]);
    assert_eq!(reply_source(&hdr), Some(ip("198.18.5.5")));
    for spec_dst in [[255, 255, 255, 255], [224, 0, 0, 1], [0, 0, 0, 0]] {
        let info = in_pktinfo(spec_dst, spec_dst);
        let hdr = crafted(&mut buf, &[(v4.0, v4.1, &info)]);
        assert_eq!(reply_source(&hdr), None, "{spec_dst:?}");
    }
    // IPv6, and IPv4-mapped on a dual-stack socket: IP_PKTINFO first.
    let info = in6_pktinfo("2001:db8:77::5");
    let hdr = crafted(&mut buf, &[(v6.0, v6.1, &info)]);
    assert_eq!(reply_source(&hdr), Some(ip("2001:db8:77::5")));
    for no in [
        "ff02::1",
        "::",
        "::ffff:224.0.0.1",
        "::ffff:255.255.255.255",
    ] {
        let info = in6_pktinfo(no);
        let hdr = crafted(&mut buf, &[(v6.0, v6.1, &info)]);
        assert_eq!(reply_source(&hdr), None, "{no}");
    }
    let mapped = in6_pktinfo("::ffff:198.18.5.5");
    let hdr = crafted(&mut buf, &[(v6.0, v6.1, &mapped), (v4.0, v4.1, &unicast)]);
    assert_eq!(reply_source(&hdr), Some(ip("198.18.5.5")));
    let hdr = crafted(&mut buf, &[(v6.0, v6.1, &mapped)]);
    assert_eq!(reply_source(&hdr), Some(ip("::ffff:198.18.5.5")));
    let hdr = crafted(&mut buf, &[(libc::IPPROTO_IP, libc::IP_TOS, &[0xb8])]);
    assert_eq!(reply_source(&hdr), None, "none reported");
}

#[test]
fn the_source_message_follows_the_destination_s_path() {
    use super::cmsg::source_message;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let to = |s: &str| s.parse::<SocketAddr>().unwrap();
    let cases = [
        ("10.0.0.1:9", "198.18.5.5", Some("198.18.5.5")),
        ("10.0.0.1:9", "::ffff:198.18.5.5", Some("198.18.5.5")),
        ("10.0.0.1:9", "2001:db8::1", None),
        ("[::ffff:10.0.0.1]:9", "198.18.5.5", Some("198.18.5.5")),
        (
            "[::ffff:10.0.0.1]:9",
            "::ffff:198.18.5.5",
            Some("198.18.5.5"),
        ),
        ("[::ffff:10.0.0.1]:9", "2001:db8::1", None),
        ("[2001:db8::2]:9", "2001:db8::1", Some("2001:db8::1")),
        ("[2001:db8::2]:9", "198.18.5.5", None),
        ("[2001:db8::2]:9", "::ffff:198.18.5.5", None),
    ];
    for (dest, from, want) in cases {
        assert_eq!(
            source_message(to(dest), ip(from)),
            want.map(ip),
            "{from} → {dest}"
        );
    }
    // Written: IP_PKTINFO with ipi_spec_dst, its exact length; IPV6_PKTINFO.
    let mut control = SendControl::ZERO;
    let end = control.source(0, Some(to("10.0.0.1:9")), ip("198.18.5.5"));
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = |n: usize| unsafe { libc::CMSG_SPACE(n as u32) } as usize;
    assert_eq!(end, Some(space(12)));
    assert_eq!(control.source(0, None, ip("198.18.5.5")), None);
    let end = control.tos(0, Some(to("[2001:db8::2]:9")), 0xb8);
    let end = control.source(end, Some(to("[2001:db8::2]:9")), ip("2001:db8::1"));
    assert_eq!(end, Some(space(4) + space(20)));
}
