//! Unit tests of `linux`'s batches on loopback: `recvmmsg`/`sendmmsg`, the
//! TOS of each message, a wildcard socket's reply source, DF and path MTU.

use super::*;

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
