//! UDP GRO/GSO on the real server: bursts sent with one segmented send each
//! come back as the same datagrams, byte for byte and in order, whichever loop
//! serves them, and the summary counts datagrams, not buffers.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use udp_echo::sys;

/// Datagram `seq` of flow `flow`: `len` bytes that name both.
fn datagram(flow: u8, seq: usize, len: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..len).map(|i| (i * 31 + seq) as u8 ^ flow).collect();
    for (byte, tag) in d.iter_mut().zip([flow, seq as u8]) {
        *byte = tag;
    }
    d
}

/// Sends `count` datagrams of `size` bytes, the last `last`, with one GSO send.
fn burst(
    client: &UdpSocket,
    to: SocketAddr,
    flow: u8,
    count: usize,
    size: usize,
    last: usize,
) -> Vec<Vec<u8>> {
    let datagrams: Vec<Vec<u8>> = (0..count)
        .map(|seq| datagram(flow, seq, if seq + 1 == count { last } else { size }))
        .collect();
    let bytes = datagrams.concat();
    assert_eq!(
        sys::send_segmented(client, Some(to), &bytes, size).unwrap(),
        bytes.len()
    );
    datagrams
}

fn client(host: &str) -> UdpSocket {
    let socket = UdpSocket::bind((host, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
}

fn round_trip(host: &str, options: &[&str]) {
    let args = [
        &["-H", host, "--port", "0", "--recv-buf", "1M"][..],
        options,
    ]
    .concat();
    let mut server = start_server(&args);
    let gro_here = UdpSocket::bind((host, 0))
        .map(|s| sys::enable_gro(&s).is_ok())
        .unwrap_or(false);
    let gro_expected = gro_here && options.is_empty();
    assert_eq!(
        server.wait_for_stderr(
            "UDP GRO/GSO on",
            if gro_expected {
                WAIT
            } else {
                Duration::from_millis(200)
            }
        ),
        gro_expected,
        "{options:?}: {}",
        server.stderr()
    );
    let shapes = [(12, 333, 100), (40, 1200, 1200), (3, 9000, 1)];
    let clients: Vec<UdpSocket> = shapes.iter().map(|_| client(host)).collect();
    let mut total = (0, 0);
    for (flow, (&(count, size, last), client)) in shapes.iter().zip(&clients).enumerate() {
        let sent = burst(client, server.addr, flow as u8, count, size, last);
        let mut buf = vec![0u8; 65536];
        for (seq, want) in sent.iter().enumerate() {
            let n = client.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "{options:?} flow {flow}: reply {seq}: {e}\n{}",
                    server.stderr()
                )
            });
            assert_eq!(
                &buf[..n],
                &want[..],
                "{options:?} flow {flow}: datagram {seq}"
            );
        }
        total.0 += count;
        total.1 += sent.iter().map(Vec::len).sum::<usize>();
    }
    clients[0].send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let (datagrams, bytes) = total;
    assert!(
        stderr.contains(&format!(
            "received {} datagrams ({bytes} bytes), echoed {datagrams} ({bytes} bytes), dropped 0 (",
            datagrams + 1
        )),
        "{options:?}: {stderr}"
    );
}

#[test]
fn gso_bursts_come_back_as_the_same_datagrams_with_gro_without_it_and_unbatched() {
    for options in [&[][..], &["--no-gro"], &["--batch", "1"]] {
        round_trip("127.0.0.1", options);
    }
}

#[test]
fn gso_bursts_come_back_as_the_same_datagrams_over_ipv6() {
    if !has_ipv6_loopback() {
        skip("no IPv6 loopback");
        return;
    }
    round_trip("::1", &[]);
}
