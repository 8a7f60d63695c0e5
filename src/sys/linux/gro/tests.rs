//! GRO receive and GSO echo on loopback, IPv4 and IPv6.

use super::*;
use crate::sys::linux::gso::{disable_udp_checksums, send_segmented};
use std::time::Duration;

fn bound(host: &str) -> Option<UdpSocket> {
    let socket = UdpSocket::bind((host, 0)).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    Some(socket)
}

/// A GRO server socket and a client, or `None` without IPv6 loopback.
fn pair(host: &str) -> Option<(UdpSocket, UdpSocket)> {
    let server = bound(host)?;
    enable_gro(&server).expect("UDP GRO (Linux >= 5.0)");
    Some((server, bound(host)?))
}

/// `count` datagrams of `size` bytes (the last `last` bytes), each byte
/// naming its datagram and position.
fn burst(count: usize, size: usize, last: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|d| {
            let len = if d + 1 == count { last } else { size };
            (0..len).map(move |i| (d * 7 + i) as u8)
        })
        .collect()
}

/// Receives until `datagrams` datagrams have come in; returns every
/// buffer's (length, segment size) and the datagrams.
fn take(batch: &mut GroBatch, server: &UdpSocket, datagrams: usize) -> Vec<(usize, usize)> {
    let mut buffers = Vec::new();
    let mut seen = 0;
    while seen < datagrams {
        let n = batch.recv(server).unwrap();
        for i in 0..n {
            let buffer = batch.buffer(i);
            assert!(!buffer.truncated);
            buffers.push((buffer.data.len(), buffer.segment_size));
            seen += buffer.datagrams();
        }
    }
    buffers
}

fn replies(client: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; GRO_BUFFER_LEN];
    (0..count)
        .map(|_| {
            let n = client.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect()
}

fn expected(data: &[u8], size: usize, keep: impl Fn(usize) -> bool) -> Vec<Vec<u8>> {
    data.chunks(size)
        .enumerate()
        .filter(|&(k, _)| keep(k))
        .map(|(_, d)| d.to_vec())
        .collect()
}

#[test]
fn a_gso_burst_arrives_as_one_buffer_and_goes_back_as_the_same_datagrams() {
    for host in ["127.0.0.1", "::1"] {
        let Some((server, client)) = pair(host) else {
            continue; // no IPv6 loopback here
        };
        let to = server.local_addr().unwrap();
        let data = burst(11, 100, 50);
        assert_eq!(
            send_segmented(&client, Some(to), &data, 100).unwrap(),
            data.len()
        );
        let mut batch = GroBatch::new(4);
        assert_eq!(batch.recv(&server).unwrap(), 1, "{host}");
        let buffer = batch.buffer(0);
        assert_eq!(
            (buffer.data, buffer.segment_size, buffer.datagrams()),
            (&data[..], 100, 11),
            "{host}: one buffer, the UDP_GRO segment size"
        );
        assert_eq!(buffer.source, Some(client.local_addr().unwrap()));
        assert_eq!(batch.queue(0, 0..11, 0), 11);
        let outcome = batch.flush(&server);
        assert_eq!((outcome.sent, outcome.bytes), (11, data.len()), "{host}");
        assert_eq!(outcome.gso_refused, None);
        assert_eq!(replies(&client, 11), expected(&data, 100, |_| true));
        assert_eq!(batch.queued_datagrams().count(), 11);
        assert_eq!(
            batch.queued_datagrams().last(),
            Some((50, client.local_addr().unwrap()))
        );
    }
}

#[test]
fn runs_of_kept_datagrams_go_back_exact_and_the_rest_do_not() {
    let (server, client) = pair("127.0.0.1").unwrap();
    let data = burst(9, 300, 299);
    send_segmented(&client, Some(server.local_addr().unwrap()), &data, 300).unwrap();
    let mut batch = GroBatch::new(4);
    assert_eq!(take(&mut batch, &server, 9), vec![(data.len(), 300)]);
    // Keep 0-1, 4, 6-8 (the short last one included).
    for run in [0..2, 4..5, 6..9] {
        assert_eq!(batch.queue(0, run.clone(), 0), run.len());
    }
    let outcome = batch.flush(&server);
    assert_eq!(outcome.sent, 6);
    let keep = |k| !matches!(k, 2 | 3 | 5);
    assert_eq!(replies(&client, 6), expected(&data, 300, keep));
}

#[test]
fn the_empty_stop_datagram_is_never_coalesced() {
    let (server, client) = pair("127.0.0.1").unwrap();
    let to = server.local_addr().unwrap();
    let data = burst(5, 64, 64);
    send_segmented(&client, Some(to), &data, 64).unwrap();
    client.send_to(b"", to).unwrap();
    send_segmented(&client, Some(to), &data, 64).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut batch = GroBatch::new(8);
    assert_eq!(
        take(&mut batch, &server, 11),
        vec![(320, 64), (0, 0), (320, 64)]
    );
    assert_eq!(batch.buffer(1).datagrams(), 1);
    assert_eq!(batch.buffer(1).datagram(0), b"");
}

#[test]
fn runs_longer_than_the_segment_cap_are_split() {
    let (server, client) = pair("127.0.0.1").unwrap();
    let to = server.local_addr().unwrap();
    // Kernels since 6.11 take 128 segments in one send; older ones refuse
    // more than 64, and then separate sends show the same echo.
    let data = burst(100, 20, 7);
    if send_segmented(&client, Some(to), &data, 20).is_err() {
        for chunk in data.chunks(20) {
            client.send_to(chunk, to).unwrap();
        }
    }
    let mut batch = GroBatch::new(128);
    let buffers = take(&mut batch, &server, 100);
    let mut queued = 0;
    for (slot, _) in buffers.iter().enumerate() {
        let datagrams = batch.buffer(slot).datagrams();
        queued += batch.queue(slot, 0..datagrams, 0);
    }
    assert_eq!(queued, 100);
    if buffers.len() == 1 {
        assert_eq!(batch.queued, 2, "64 + 36 segments");
    }
    assert_eq!(batch.flush(&server).sent, 100);
    assert_eq!(replies(&client, 100), expected(&data, 20, |_| true));
}

#[test]
fn a_refused_gso_send_goes_again_as_separate_datagrams() {
    for host in ["127.0.0.1", "::1"] {
        let Some((server, client)) = pair(host) else {
            continue;
        };
        // Without UDP checksums the kernel refuses GSO with EINVAL.
        disable_udp_checksums(&server, true).unwrap();
        disable_udp_checksums(&client, false).unwrap();
        let to = server.local_addr().unwrap();
        let mut batch = GroBatch::new(4);
        let data = burst(6, 200, 10);
        for round in 0..2 {
            send_segmented(&client, Some(to), &data, 200).unwrap();
            assert_eq!(take(&mut batch, &server, 6), vec![(data.len(), 200)]);
            assert_eq!(batch.queue(0, 0..6, 0), 6);
            let outcome = batch.flush(&server);
            assert_eq!((outcome.sent, outcome.errors), (6, 0), "{host} {outcome:?}");
            let refused = if round == 0 { Some(libc::EINVAL) } else { None };
            assert_eq!(outcome.gso_refused, refused, "{host}: reported once");
            assert!(!batch.gso());
            assert_eq!(
                replies(&client, 6),
                expected(&data, 200, |_| true),
                "{host}"
            );
        }
    }
}

#[test]
fn without_gso_every_datagram_is_a_message_and_a_full_list_says_so() {
    let (server, client) = pair("127.0.0.1").unwrap();
    let data = burst(64, 10, 10);
    send_segmented(&client, Some(server.local_addr().unwrap()), &data, 10).unwrap();
    let mut batch = GroBatch::new(1);
    take(&mut batch, &server, 64);
    batch.disable_gso();
    // Room for capacity + 64 messages: 64 fit, then the list is full.
    assert_eq!(batch.queue(0, 0..40, 0), 40);
    assert_eq!(batch.queue(0, 40..64, 0), 24);
    assert_eq!(batch.queue(0, 0..1, 0), 1);
    assert_eq!(batch.queue(0, 1..2, 0), 0, "full");
    assert_eq!(batch.flush(&server).sent, 65);
    let mut want = expected(&data, 10, |_| true);
    want.push(data[..10].to_vec());
    assert_eq!(replies(&client, 65), want);
}

#[test]
fn each_buffer_reports_the_tos_it_arrived_with_ipv4_and_ipv6() {
    for host in ["127.0.0.1", "::1"] {
        let Some((server, client)) = pair(host) else {
            eprintln!("skipped for {host}: no such loopback here");
            continue;
        };
        crate::sys::enable_recv_tos(&server).unwrap();
        let to = server.local_addr().unwrap();
        let sock = socket2::SockRef::from(&client);
        for tos in [0xb8u8, 0x00, 0x21] {
            if to.is_ipv4() {
                sock.set_tos_v4(u32::from(tos)).unwrap();
            } else {
                sock.set_tclass_v6(u32::from(tos)).unwrap();
            }
            client.send_to(b"marked", to).unwrap();
            let mut batch = GroBatch::new(4);
            assert_eq!(batch.recv(&server).unwrap(), 1);
            assert_eq!(batch.tos(0), Some(tos), "{host}, TOS {tos:#04x}");
        }
    }
}

#[test]
fn queued_runs_go_back_with_their_tos_segmented_or_not() {
    use super::super::tests::{replies_with_tos, tos_cases};
    const EF: u8 = 0xb8;
    for (server, client, to) in tos_cases() {
        let case = format!("{} → {to}", client.local_addr().unwrap());
        enable_gro(&server).unwrap();
        let sock = socket2::SockRef::from(&client);
        if to.is_ipv4() {
            sock.set_tos_v4(u32::from(EF)).unwrap();
        } else {
            sock.set_tclass_v6(u32::from(EF)).unwrap();
        }
        let data = burst(6, 40, 40);
        send_segmented(&client, Some(to), &data, 40).unwrap();
        let mut batch = GroBatch::new(4);
        assert_eq!(take(&mut batch, &server, 6), vec![(240, 40)], "{case}");
        assert_eq!(batch.tos(0), Some(EF), "{case}");
        // A GSO run with EF, a single datagram with EF, a run without a TOS.
        assert_eq!(batch.queue(0, 0..3, EF), 3);
        assert_eq!(batch.queue(0, 3..4, EF), 1);
        assert_eq!(batch.queue(0, 4..6, 0), 2);
        assert_eq!(batch.flush(&server).sent, 6, "{case}");
        let got = replies_with_tos(&client, 6);
        let tos: Vec<_> = got.iter().map(|(_, tos)| *tos).collect();
        let want = [EF, EF, EF, EF, 0, 0].map(Some);
        assert_eq!(tos, want, "{case}");
        let bytes: Vec<_> = got.into_iter().map(|(d, _)| d).collect();
        assert_eq!(bytes, expected(&data, 40, |_| true), "{case}");
        // Without GSO: one message per datagram, each with its TOS.
        send_segmented(&client, Some(to), &data[..80], 40).unwrap();
        let mut batch = GroBatch::new(4);
        batch.disable_gso();
        take(&mut batch, &server, 2);
        assert_eq!(batch.queue(0, 0..2, EF), 2);
        assert_eq!(batch.flush(&server).sent, 2, "{case}");
        let tos: Vec<_> = replies_with_tos(&client, 2).iter().map(|r| r.1).collect();
        assert_eq!(tos, [Some(EF), Some(EF)], "{case}");
    }
}

#[test]
fn a_wildcard_burst_goes_back_from_the_address_asked_segmented_or_not() {
    const EF: u8 = 0xb8;
    let (server, client, asked) = super::super::tests::wildcard_pair();
    enable_gro(&server).unwrap();
    crate::sys::enable_recv_tos(&server).unwrap();
    crate::sys::enable_recv_tos(&client).unwrap();
    socket2::SockRef::from(&client)
        .set_tos_v4(u32::from(EF))
        .unwrap();
    let data = burst(6, 40, 40);
    for gso in [true, false] {
        send_segmented(&client, Some(asked), &data, 40).unwrap();
        let mut batch = GroBatch::new(4);
        batch.reply_from_destination();
        if !gso {
            batch.disable_gso();
        }
        assert_eq!(take(&mut batch, &server, 6), vec![(240, 40)], "gso {gso}");
        assert_eq!(batch.destination(0), Some(asked.ip()));
        assert_eq!(batch.queue(0, 0..4, EF), 4);
        assert_eq!(batch.queue(0, 4..6, 0), 2);
        let outcome = batch.flush(&server);
        assert_eq!((outcome.sent, outcome.unsourced), (6, 0), "{outcome:?}");
        let mut buf = [0u8; 64];
        for k in 0..6 {
            let (n, from, meta) = crate::sys::recv_from_meta(&client, &mut buf, false).unwrap();
            assert_eq!((n, from), (40, asked), "gso {gso}, reply {k}");
            let tos = if k < 4 { EF } else { 0 };
            assert_eq!(
                meta.tos,
                Some(tos),
                "gso {gso}, reply {k}: the TOS beside the source"
            );
        }
    }
}
