//! `--batch`, `--threads` and `--stats-interval` on the real server: every datagram
//! answered once, to its source, byte for byte; prompt stops; honest summaries.

use crate::common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

/// Sizes from 1 byte up; each round also carries one datagram of the IPv4
/// maximum (65507). A round stays near 120 KB, within the receive buffer the
/// tests ask for (`SERVER_RECV_BUF`) even on a kernel with default limits, so
/// nothing is dropped for lack of room and "every datagram answered" is fair.
const SIZES: [usize; 7] = [1, 7, 64, 512, 1400, 4096, 9000];
const LARGEST: usize = 65507;
const SERVER_RECV_BUF: &str = "1M";

fn size_of(sock: usize, round: usize, b: usize, sockets: usize) -> usize {
    if b == 0 && sock == round % sockets {
        LARGEST
    } else {
        SIZES[(sock + round + b) % SIZES.len()]
    }
}

/// Payload `seq` of socket `sock`: its first bytes say who and which, the rest a
/// pattern, so a reply delivered to the wrong socket or mangled is caught.
fn payload(sock: usize, seq: usize, size: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| (i * 31 + sock * 7 + seq) as u8).collect();
    let tag = [(sock as u8), (seq as u8), (seq >> 8) as u8];
    let n = tag.len().min(size);
    p[..n].copy_from_slice(&tag[..n]);
    p
}

/// Sends `rounds` bursts of `burst` datagrams from each of `sockets`, collects the
/// replies after each round, and checks every one came back exactly once.
fn burst_exchange(server: SocketAddr, sockets: &[UdpSocket], rounds: usize, burst: usize) -> usize {
    let mut sent = 0;
    for round in 0..rounds {
        let mut expected: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
        for (s, socket) in sockets.iter().enumerate() {
            for b in 0..burst {
                let seq = round * burst + b;
                let size = size_of(s, round, b, sockets.len());
                let p = payload(s, seq, size);
                socket.send_to(&p, server).unwrap();
                expected.entry(s).or_default().push(p);
                sent += 1;
            }
        }
        let mut buf = vec![0u8; 65536];
        for (s, socket) in sockets.iter().enumerate() {
            for want in &expected[&s] {
                let (n, from) = socket
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("socket {s} round {round}: no reply: {e}"));
                assert_eq!(from, server);
                assert_eq!(n, want.len(), "socket {s} round {round}: size");
                assert!(
                    buf[..n] == want[..],
                    "socket {s} round {round}: bytes differ"
                );
            }
        }
    }
    // Nothing extra: no datagram was answered twice.
    for socket in sockets {
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            socket.recv_from(&mut buf).is_err(),
            "an extra reply arrived"
        );
    }
    sent
}

/// `--threads 4 --batch 64` with room for the bursts.
fn start_four_thread_batched_server() -> ServerProcess {
    start_server(&[
        "--port",
        "0",
        "--recv-buf",
        SERVER_RECV_BUF,
        "--threads",
        "4",
        "--batch",
        "64",
    ])
}

fn mixed_sizes_in_bursts_are_each_echoed_once(batch: &str) {
    let mut server = start_server(&[
        "--port",
        "0",
        "--recv-buf",
        SERVER_RECV_BUF,
        "--batch",
        batch,
    ]);
    let sockets: Vec<UdpSocket> = (0..8).map(|_| udp_client()).collect();
    let sent = burst_exchange(server.addr, &sockets, 6, 3);
    udp_client().send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("received {} datagrams", sent + 1)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("echoed {sent} (")), "{stderr}");
    assert!(
        stderr.contains(&if batch == "1" {
            "1 datagram per syscall".to_owned()
        } else {
            format!("{batch} datagrams per syscall")
        }),
        "{stderr}"
    );
}

#[test]
fn batch_1_echoes_mixed_sizes_in_bursts_each_once_to_its_source() {
    mixed_sizes_in_bursts_are_each_echoed_once("1");
}

#[test]
fn batch_8_echoes_mixed_sizes_in_bursts_each_once_to_its_source() {
    mixed_sizes_in_bursts_are_each_echoed_once("8");
}

#[test]
fn batch_64_echoes_mixed_sizes_in_bursts_each_once_to_its_source() {
    mixed_sizes_in_bursts_are_each_echoed_once("64");
}

/// Sockets of the kernel's UDP table bound to exactly `addr` (Linux), to see
/// SO_REUSEPORT at work. The address counts too: another program's (or
/// another test's) socket may hold the same port number on another address.
fn sockets_on(addr: SocketAddr) -> Option<usize> {
    // The kernel prints each 32-bit word of the address as a native integer.
    let words = |octets: &[u8]| -> String {
        octets
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().unwrap())))
            .collect()
    };
    let (path, ip) = match addr.ip() {
        std::net::IpAddr::V4(ip) => ("/proc/net/udp", words(&ip.octets())),
        std::net::IpAddr::V6(ip) => ("/proc/net/udp6", words(&ip.octets())),
    };
    let needle = format!("{ip}:{:04X}", addr.port());
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(1) == Some(needle.as_str()))
            .count(),
    )
}

#[test]
fn four_threads_answer_all_of_64_flows() {
    let mut server = start_four_thread_batched_server();
    if let Some(count) = sockets_on(server.addr) {
        assert_eq!(count, 4, "four sockets share the port");
    }
    let sockets: Vec<UdpSocket> = (0..64).map(|_| udp_client()).collect();
    let sent = burst_exchange(server.addr, &sockets, 3, 2);
    assert_eq!(sent, 64 * 3 * 2);
    udp_client().send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("received {} datagrams", sent + 1)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("echoed {sent} (")), "{stderr}");
    assert!(stderr.contains("4 threads"), "{stderr}");
}

#[test]
fn a_stop_datagram_ends_a_four_thread_batched_server_within_a_second() {
    let mut server = start_four_thread_batched_server();
    let sockets: Vec<UdpSocket> = (0..16).map(|_| udp_client()).collect();
    let sent = burst_exchange(server.addr, &sockets, 2, 2);
    let asked = Instant::now();
    udp_client().send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by empty datagram"), "{stderr}");
    assert!(stderr.contains(&format!("echoed {sent} (")), "{stderr}");
}

#[test]
fn sigterm_ends_a_four_thread_batched_server_within_a_second() {
    let mut server = start_four_thread_batched_server();
    let sockets: Vec<UdpSocket> = (0..16).map(|_| udp_client()).collect();
    let sent = burst_exchange(server.addr, &sockets, 2, 2);
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(
        stderr.contains(&format!("received {sent} datagrams")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("echoed {sent} (")), "{stderr}");
}

#[test]
fn a_threaded_server_is_refused_a_port_another_server_holds() {
    let first = start_server(&["--port", "0"]);
    let port = first.addr.port().to_string();
    let failure = try_start_server(&["--port", &port, "--threads", "2"])
        .err()
        .expect("refused");
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    assert!(
        failure.stderr.contains(&format!("UDP port {port}")),
        "{}",
        failure.stderr
    );
    assert_eq!(echo(&udp_client(), first.addr, b"first"), b"first");
}

#[test]
fn a_threaded_server_is_refused_a_port_shared_by_a_reuseport_socket() {
    use socket2::{Domain, Socket, Type};
    let holder = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    holder.set_reuse_port(true).unwrap();
    holder
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let port = holder
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .port()
        .to_string();
    let failure = try_start_server(&["--port", &port, "--threads", "2"])
        .err()
        .expect("refused");
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    assert!(
        failure.stderr.contains("shares it with SO_REUSEPORT"),
        "{}",
        failure.stderr
    );
}

#[test]
fn stats_interval_logs_rates_and_counters() {
    let server = start_server(&["--port", "0", "--stats-interval", "0.2"]);
    let client = udp_client();
    for _ in 0..10 {
        echo(&client, server.addr, b"counted");
    }
    assert!(
        server.wait_for_stderr("datagrams/s", WAIT),
        "{}",
        server.stderr()
    );
    let stderr = server.stderr();
    let line = stderr.lines().find(|l| l.contains("stats ")).unwrap();
    assert!(
        line.contains("bytes/s, dropped 0 (service-port 0, bad-source 0, not-allowed 0, rate-limited 0, loop 0, malformed 0, short 0, no-reply 0), send errors 0, receive errors 0, kernel drops"),
        "{line}"
    );
}

#[test]
fn batch_and_threads_reject_zero_and_silly_values() {
    for args in [
        &["--batch", "0"][..],
        &["--threads", "0"],
        &["--batch", "5000"],
        &["--stats-interval", "0"],
    ] {
        let run = run_program(SERVER, args, None);
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn exclusive_threads_share_one_socket_that_no_one_can_join() {
    use socket2::{Domain, Socket, Type};
    let mut server = start_server(&[
        "--port",
        "0",
        "--recv-buf",
        SERVER_RECV_BUF,
        "--threads",
        "2",
        "--exclusive",
    ]);
    if let Some(count) = sockets_on(server.addr) {
        assert_eq!(count, 1, "two threads, one socket");
    }
    // The most a co-binder can ask for: both reuse options. The kernel refuses.
    let intruder = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    intruder.set_reuse_address(true).unwrap();
    intruder.set_reuse_port(true).unwrap();
    let err = intruder
        .bind(&server.addr.into())
        .expect_err("an --exclusive server's port cannot be joined");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    // Both threads echo: every datagram once, to its source. Two threads on
    // one socket may send a flow's echoes out of order, so order is not checked.
    let sockets: Vec<UdpSocket> = (0..16).map(|_| udp_client()).collect();
    let mut sent = 0;
    for round in 0..4 {
        for (s, socket) in sockets.iter().enumerate() {
            let mut want: Vec<Vec<u8>> = (0..4)
                .map(|b| payload(s, round * 4 + b, 64 + b * 100))
                .collect();
            for p in &want {
                socket.send_to(p, server.addr).unwrap();
                sent += 1;
            }
            let mut got: Vec<Vec<u8>> = (0..4)
                .map(|_| {
                    let mut buf = vec![0u8; 2048];
                    let (n, from) = socket.recv_from(&mut buf).expect("a reply");
                    assert_eq!(from, server.addr);
                    buf.truncate(n);
                    buf
                })
                .collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "socket {s} round {round}");
        }
    }
    udp_client().send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("received {} datagrams", sent + 1)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("echoed {sent} (")), "{stderr}");
    assert!(stderr.contains("2 threads on one socket"), "{stderr}");
}
