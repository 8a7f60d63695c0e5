//! Unit tests of `linux`, beside it but out of its way.

use super::*;
use std::time::Duration;

fn pair() -> (UdpSocket, UdpSocket) {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    (server, client)
}

#[test]
fn receives_a_burst_in_one_call_and_echoes_it_to_the_source() {
    let (server, client) = pair();
    let to = server.local_addr().unwrap();
    for i in 0..5u8 {
        client.send_to(&vec![i; 1 + i as usize * 1000], to).unwrap();
    }
    let mut batch = Batch::new(8);
    let mut got = 0;
    while got < 5 {
        let n = batch.recv(&server).unwrap();
        for i in 0..n {
            let (data, source) = batch.datagram(i);
            assert_eq!(source, Some(client.local_addr().unwrap()));
            assert_eq!(data, vec![got as u8; 1 + got * 1000]);
            got += 1;
        }
        let outcome = batch.echo(&server, |_| Some(0));
        assert_eq!((outcome.sent, outcome.errors), (n, 0));
    }
    let mut buf = [0u8; 8192];
    for i in 0..5u8 {
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &vec![i; 1 + i as usize * 1000][..]);
    }
}

#[test]
fn echo_sends_only_the_kept_slots() {
    let (server, client) = pair();
    let to = server.local_addr().unwrap();
    for payload in [&b"a"[..], b"skip", b"c"] {
        client.send_to(payload, to).unwrap();
    }
    let mut batch = Batch::new(4);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let n = batch.recv(&server).unwrap();
        let first = seen.len();
        for i in 0..n {
            seen.push(batch.datagram(i).0.to_vec());
        }
        let outcome = batch.echo(&server, |i| (seen[first + i] != b"skip").then_some(0));
        assert_eq!(outcome.errors, 0);
    }
    let mut buf = [0u8; 16];
    for want in [&b"a"[..], b"c"] {
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], want);
    }
}

#[test]
fn a_refused_message_is_skipped_and_the_rest_still_go() {
    let (server, client) = pair();
    let to = server.local_addr().unwrap();
    client.send_to(b"one", to).unwrap();
    client.send_to(b"two", to).unwrap();
    let mut batch = Batch::new(4);
    // Loopback queues both before the first recvmmsg returns.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(batch.recv(&server).unwrap(), 2);
    // A source the kernel cannot send to (wrong family) makes it refuse that one.
    batch.addrs[0].ss_family = libc::AF_UNIX as libc::sa_family_t;
    let outcome = batch.echo(&server, |_| Some(0));
    assert_eq!(outcome.errors, 1, "{outcome:?}");
    assert_eq!(outcome.sent, 1);
    assert_eq!(outcome.bytes, 3);
    let mut buf = [0u8; 16];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
}

#[test]
fn send_batch_and_wait_readable_carry_probes_both_ways() {
    let (server, client) = pair();
    client.connect(server.local_addr().unwrap()).unwrap();
    let mut out = SendBatch::new(4, 10);
    for i in 0..4 {
        out.slot_mut(i).fill(i as u8);
    }
    assert_eq!(out.send(&client, 0, 4).unwrap(), 4);
    assert!(wait_readable(&server, Duration::from_secs(2)).unwrap());
    let mut batch = Batch::new(8);
    let mut got = 0;
    while got < 4 {
        let n = match batch.recv_queued(&server) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&server, Duration::from_secs(2)).unwrap();
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        for i in 0..n {
            assert_eq!(batch.datagram(i).0, &[got as u8; 10][..]);
            got += 1;
        }
    }
    assert!(!wait_readable(&server, Duration::from_millis(10)).unwrap());
    assert_eq!(
        batch.recv_queued(&server).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
}

#[test]
fn dont_fragment_and_path_mtu_on_loopback() {
    let (server, client) = pair();
    client.connect(server.local_addr().unwrap()).unwrap();
    set_dont_fragment(&client, false).unwrap();
    let mtu = path_mtu(&client, false).unwrap();
    assert!(mtu >= 1280, "loopback MTU {mtu}");
    // Within the MTU a DF datagram goes; beyond it (if the MTU allows a
    // beyond) the kernel refuses it locally.
    client.send(&[0u8; 1000]).unwrap();
    if mtu < 65535 {
        let too_big = vec![0u8; mtu as usize];
        assert_eq!(
            client.send(&too_big).unwrap_err().raw_os_error(),
            Some(libc::EMSGSIZE)
        );
    }
}

#[test]
fn ipv6_sources_are_decoded() {
    let Ok(server) = UdpSocket::bind("[::1]:0") else {
        return; // no IPv6 loopback here
    };
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client
        .send_to(b"six", server.local_addr().unwrap())
        .unwrap();
    let mut batch = Batch::new(2);
    assert_eq!(batch.recv(&server).unwrap(), 1);
    assert_eq!(
        batch.datagram(0),
        (&b"six"[..], Some(client.local_addr().unwrap()))
    );
}

#[test]
fn a_timeout_is_an_error_not_an_empty_batch() {
    let (server, _client) = pair();
    server
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let err = Batch::new(4).recv(&server).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
}

/// TOS EF (DSCP 46).
const EF: u8 = 0xb8;

/// The TOS cases of a send test: (server bind, client bind, where the client
/// sends): IPv4, IPv6 (when there is `::1`), and an IPv4 client of a
/// dual-stack `::` socket, whose replies go to an IPv4-mapped address.
pub(super) fn tos_cases() -> Vec<(UdpSocket, UdpSocket, SocketAddr)> {
    let mut cases = Vec::new();
    for (server, client, to) in [
        ("127.0.0.1:0", "127.0.0.1:0", None),
        ("[::1]:0", "[::1]:0", None),
        ("[::]:0", "127.0.0.1:0", Some(Ipv4Addr::LOCALHOST)),
    ] {
        let (Ok(server), Ok(client)) = (UdpSocket::bind(server), UdpSocket::bind(client)) else {
            continue; // no IPv6 here
        };
        for socket in [&server, &client] {
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            crate::sys::enable_recv_tos(socket).unwrap();
        }
        let port = server.local_addr().unwrap().port();
        let to = match to {
            Some(ip) => SocketAddr::from((ip, port)),
            None => server.local_addr().unwrap(),
        };
        cases.push((server, client, to));
    }
    cases
}

/// The client's replies, each with the TOS it arrived with.
pub(super) fn replies_with_tos(client: &UdpSocket, count: usize) -> Vec<(Vec<u8>, Option<u8>)> {
    let mut buf = [0u8; 2048];
    (0..count)
        .map(|_| {
            let (n, _, tos) = crate::sys::recv_from_tos(client, &mut buf).unwrap();
            (buf[..n].to_vec(), tos)
        })
        .collect()
}

#[test]
fn echo_sends_each_datagram_with_the_tos_given_and_none_for_zero() {
    for (server, client, to) in tos_cases() {
        let case = format!("{} → {to}", client.local_addr().unwrap());
        for (payload, tos) in [(&b"ef"[..], EF), (b"zero", 0), (b"ef-ect0", EF | 0b10)] {
            crate::sys::send_to_tos(&client, payload, to, tos).unwrap();
        }
        let mut batch = Batch::new(4);
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = batch.recv(&server).unwrap();
            for i in 0..n {
                got.push(batch.tos(i));
            }
            // The request's DSCP, not its ECN bits.
            let outcome = batch.echo(&server, |i| Some(batch_tos(&got, got.len() - n + i)));
            assert_eq!(outcome.sent, n, "{case}");
        }
        assert_eq!(got, [Some(EF), Some(0), Some(EF | 0b10)], "{case}");
        assert_eq!(
            replies_with_tos(&client, 3),
            [
                (b"ef".to_vec(), Some(EF)),
                (b"zero".to_vec(), Some(0)),
                (b"ef-ect0".to_vec(), Some(EF)),
            ],
            "{case}"
        );
    }
}

fn batch_tos(got: &[Option<u8>], i: usize) -> u8 {
    got[i].unwrap_or(0) & 0xfc
}

#[test]
fn the_environment_is_changed_only_by_a_lone_thread() {
    assert_eq!(threads_of("Name:\tx\nThreads:\t1\nSigQ:\t0/1\n"), Some(1));
    assert_eq!(threads_of("Threads:\t17\n"), Some(17));
    assert_eq!(threads_of("Name:\tx\n"), None);
    // A test runs beside the harness's main thread, and here beside one more
    // of its own: never alone, so `take_listen_fds` leaves the environment be.
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || wait.recv());
    assert!(!only_thread());
    drop(done);
    let _ = other.join();
}

#[test]
fn the_descriptor_limit_is_known_here() {
    assert!(open_files_limit().is_some_and(|limit| limit >= 3));
}

/// Set in the child process the test below starts.
const CHILD: &str = "UDP_ECHO_TAKE_LISTEN_FDS_CHILD";

#[test]
fn take_listen_fds_beside_other_threads_leaves_the_environment_alone() {
    const NAME: &str =
        "sys::linux::tests::take_listen_fds_beside_other_threads_leaves_the_environment_alone";
    if std::env::var_os(CHILD).is_none() {
        // The variables must be in place before the process starts (setting
        // them here, beside the harness's threads, is what must not happen):
        // run this test again in a child that has them, meant for PID 1.
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--quiet"])
            .env(CHILD, "1")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDS", "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child test failed: {status}");
        return;
    }
    // Another thread reads the environment all the while, as a logger or a
    // resolver might.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = std::sync::Arc::clone(&stop);
    let reader = std::thread::spawn(move || {
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("1"));
        }
    });
    assert!(take_listen_fds().unwrap().is_empty(), "meant for PID 1");
    assert_eq!(
        std::env::var("LISTEN_PID").as_deref(),
        Ok("1"),
        "left alone"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
}

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

/// A socket bound to 0.0.0.0 that answers from the address asked
/// ([`enable_reply_source`](crate::sys::enable_reply_source)), and a client
/// on 127.0.0.1: 127.0.0.0/8 is all local, so a request to 127.0.0.2 is
/// answered from 127.0.0.1, the kernel's choice, unless told otherwise.
pub(super) fn wildcard_pair() -> (UdpSocket, UdpSocket, SocketAddr) {
    let server = UdpSocket::bind("0.0.0.0:0").unwrap();
    crate::sys::enable_reply_source(&server).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let asked = SocketAddr::from(([127, 0, 0, 2], server.local_addr().unwrap().port()));
    (server, client, asked)
}

#[test]
fn a_wildcard_batch_echoes_from_the_address_asked_with_its_tos() {
    let (server, client, asked) = wildcard_pair();
    crate::sys::enable_recv_tos(&server).unwrap();
    crate::sys::enable_recv_tos(&client).unwrap();
    for (payload, tos) in [(&b"ef"[..], EF), (b"zero", 0)] {
        crate::sys::send_to_tos(&client, payload, asked, tos).unwrap();
    }
    let mut batch = Batch::new(4);
    batch.reply_from_destination();
    let mut got = 0;
    while got < 2 {
        let n = batch.recv(&server).unwrap();
        for i in 0..n {
            assert_eq!(batch.destination(i), Some(asked.ip()));
        }
        let first = got;
        let outcome = batch.echo(&server, |i| Some(if first + i == 0 { EF } else { 0 }));
        assert_eq!((outcome.sent, outcome.unsourced), (n, 0), "{outcome:?}");
        got += n;
    }
    let mut buf = [0u8; 64];
    for (want, tos) in [(&b"ef"[..], Some(EF)), (b"zero", Some(0))] {
        let (n, from, meta) = crate::sys::recv_from_meta(&client, &mut buf, false).unwrap();
        assert_eq!((&buf[..n], from), (want, asked));
        assert_eq!(meta.tos, tos, "the TOS beside the source");
    }
}

#[test]
fn send_to_from_names_the_source_and_refuses_one_of_the_wrong_family() {
    let (server, client, asked) = wildcard_pair();
    client.send_to(b"q", asked).unwrap();
    let mut buf = [0u8; 64];
    let (n, to, meta) = crate::sys::recv_from_meta(&server, &mut buf, true).unwrap();
    assert_eq!(meta.destination, Some(asked.ip()));
    assert_eq!(meta.reply_source, Some(asked.ip()));
    crate::sys::send_to_from(&server, &buf[..n], to, 0, meta.reply_source).unwrap();
    assert_eq!(client.recv_from(&mut buf).unwrap(), (1, asked));
    let wrong = Some("::1".parse().unwrap());
    let err = crate::sys::send_to_from(&server, b"q", to, 0, wrong).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    // A source not of this host: IPv4 refuses it with ENETUNREACH.
    let foreign = Some("192.0.2.1".parse().unwrap());
    let err = crate::sys::send_to_from(&server, b"q", to, 0, foreign).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
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
