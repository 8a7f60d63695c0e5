//! The loop matrix (issue 19, SPEC §5): our server against every kind of
//! peer, with 1, 2, 10 and 100 datagrams in flight (same-sketch ones
//! included), over IPv4, IPv6 and v4-mapped (`::` bound), each loop started
//! by forged datagrams from a raw socket; and what real clients do, never cut.
//!
//! Peers: our server, a Python RFC 862 echo, socat, stamp-suite's reflector
//! (skipped visibly when absent), an echo that writes a counter into every
//! datagram and one that appends a byte. Each row reads the server's summary
//! (datagrams received, echoed, dropped as `loop`) and asserts the loop
//! ended within its documented bound. Every row prints one line of the table
//! of docs/public-service.md (`cargo test --test it loop_matrix:: -- --nocapture`).
//!
//! Everything runs in a network namespace the test creates (root needed for
//! it and for raw sockets; skipped visibly otherwise), bounded in time and
//! count; every process is killed on drop.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::netns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use netns::{in_ns, test_net};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod peers;
mod real_clients;

/// The most datagrams a loop may cost the server (SPEC §5).
const LOOP_BUDGET: u64 = 1_000;

/// The near-copy budget the counter and appending rows run with: the
/// default (4,194,304) would take minutes of a loop to spend; the rule is
/// the same, only the number differs (the unit tests check the default).
const TEST_NEAR_COPY_BUDGET: u64 = 2_000;

/// What the default near-copy budget allows an appending echo: 4,194,304
/// / 4,096.
const GROWN_BUDGET: u64 = 1_024;

/// How long a row waits for the server's warning that the loop ended.
const ROW_LIMIT: Duration = Duration::from_secs(8);

/// The wait for a counter echo's loop to end. Its near-copy budget is spent
/// once per receive call, and a loaded host packs more of a pipelined loop
/// into one call (k = 100: as few as one call a round), so the end comes
/// after at most budget × k + k echoes (asserted) but at the host's pace.
const COUNTER_ROW_LIMIT: Duration = Duration::from_secs(45);

/// After the warning: time for the datagrams still in flight to come back
/// and be dropped.
const DRAIN: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    /// Server bound to `::`, peer on 127.0.0.1: the server sees ::ffff:127.0.0.1.
    Mapped,
}

impl Family {
    fn server_host(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1",
            Family::V6 => "::1",
            Family::Mapped => "::",
        }
    }

    fn peer_ip(self) -> IpAddr {
        match self {
            Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Where the peer reaches the server.
    fn server_ip(self) -> IpAddr {
        self.peer_ip()
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
            Family::Mapped => "v4-mapped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    Ours,
    Python,
    Socat,
    StampSuite,
    Counter,
    Appending,
}

impl PeerKind {
    fn name(self) -> &'static str {
        match self {
            PeerKind::Ours => "our server",
            PeerKind::Python => "Python echo",
            PeerKind::Socat => "socat",
            PeerKind::StampSuite => "stamp-suite reflector",
            PeerKind::Counter => "counter echo",
            PeerKind::Appending => "appending echo",
        }
    }
}

/// The one's-complement sum of `bytes` (big-endian 16-bit words) added to `sum`.
fn ones_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    sum
}

/// Sends UDP datagrams from `from` (forged: any address and port) to `to`
/// through one raw socket, as root, in the calling thread's namespace. The
/// kernel writes the IP header; the UDP header is ours (IPv4: no checksum,
/// which it allows; IPv6: the checksum it requires).
fn forge(from: SocketAddr, to: SocketAddr, payloads: &[Vec<u8>]) {
    let domain = if from.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let raw = Socket::new(domain, Type::RAW, Some(Protocol::UDP)).expect("raw socket");
    raw.bind(&SockAddr::from(SocketAddr::new(from.ip(), 0)))
        .expect("bind the raw socket to the forged source address");
    for payload in payloads {
        let len = u16::try_from(8 + payload.len()).unwrap();
        let mut packet = Vec::with_capacity(usize::from(len));
        packet.extend_from_slice(&from.port().to_be_bytes());
        packet.extend_from_slice(&to.port().to_be_bytes());
        packet.extend_from_slice(&len.to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(payload);
        if let (IpAddr::V6(src), IpAddr::V6(dst)) = (from.ip(), to.ip()) {
            let mut sum = ones_sum(0, &src.octets());
            sum = ones_sum(sum, &dst.octets());
            sum += u32::from(len) + 17;
            sum = ones_sum(sum, &packet);
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            let checksum = match !(sum as u16) {
                0 => 0xffff,
                c => c,
            };
            packet[6..8].copy_from_slice(&checksum.to_be_bytes());
        }
        // For a raw socket the port of the destination is ignored.
        let sent = raw
            .send_to(&packet, &SockAddr::from(SocketAddr::new(to.ip(), 0)))
            .expect("send a forged datagram");
        assert_eq!(sent, packet.len());
    }
}

/// `k` payloads of 64 bytes to set circulating, in three kinds taken in
/// turn: distinct from everything at both ends; all with one length, head
/// and tail (they differ in four bytes in the middle: one sketch); and all
/// with one length and tail but each its own head (one set of the
/// detector's table for all their tails: from nine of them on, they used
/// to keep a loop going for ever).
fn loop_payloads(k: usize) -> Vec<Vec<u8>> {
    (0..k as u32)
        .map(|i| match i % 3 {
            0 => {
                let mut p: Vec<u8> = (0..64u32)
                    .map(|b| (b.wrapping_mul(97) ^ i.wrapping_mul(2_654_435_761) >> (b % 24)) as u8)
                    .collect();
                p[..4].copy_from_slice(&i.to_be_bytes());
                p[60..].copy_from_slice(&(!i).to_be_bytes());
                p
            }
            1 => {
                let mut p = vec![b'.'; 64];
                p[30..34].copy_from_slice(&i.to_le_bytes());
                p
            }
            _ => {
                let mut p = vec![b'-'; 64];
                p[..4].copy_from_slice(&i.to_le_bytes());
                p
            }
        })
        .collect()
}

/// `k` STAMP requests (open mode, RFC 8762 §4.2.1), sequence numbers 0..k,
/// time stamp 0: the first reply copies it, so only the second round of
/// replies carries the reflector's time twice.
fn stamp_requests(k: usize) -> Vec<Vec<u8>> {
    (0..k as u32)
        .map(|i| {
            let mut p = vec![0u8; 44];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        })
        .collect()
}

/// A free UDP port on `ip` in namespace `ns` (for programs that take one).
fn free_port(ns: &str, ip: IpAddr) -> u16 {
    in_ns(ns, move || {
        UdpSocket::bind(SocketAddr::new(ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// Waits until something in `ns` holds UDP `addr` (a bind there fails).
fn wait_bound(ns: &str, addr: SocketAddr) -> bool {
    in_ns(ns, move || {
        for _ in 0..400 {
            if UdpSocket::bind(addr).is_err() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    })
}

/// A peer that is not our server: a child process in the namespace,
/// killed on drop.
struct ChildPeer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ChildPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python echo's loop body for each scripted peer.
fn python_body(kind: PeerKind) -> &'static str {
    match kind {
        PeerKind::Counter => {
            "n=0\nwhile True:\n    d,a=s.recvfrom(65535); n+=1; s.sendto(n.to_bytes(8,'little')+d[8:],a)\n"
        }
        PeerKind::Appending => {
            "while True:\n    d,a=s.recvfrom(65535)\n    try: s.sendto(d+b'+',a)\n    except OSError: pass\n"
        }
        _ => "while True:\n    d,a=s.recvfrom(65535); s.sendto(d,a)\n",
    }
}

/// Starts `program` in `ns`. `ip netns exec` execs it in place, so the
/// child is the program itself and [`ChildPeer`]'s kill ends it (a
/// timeout(1) in between would be killed alone, leaving it orphaned).
fn spawn_in(ns: &str, program: &str, args: &[&str]) -> Option<Child> {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Starts a non-udp-echo peer of `kind` on `ip`; `None` when its program
/// cannot run here (the caller skips visibly).
fn start_child_peer(ns: &str, kind: PeerKind, ip: IpAddr) -> Option<ChildPeer> {
    let port = free_port(ns, ip);
    let addr = SocketAddr::new(ip, port);
    let host = ip.to_string();
    let child = match kind {
        PeerKind::Python | PeerKind::Counter | PeerKind::Appending => {
            let family = if ip.is_ipv4() { 2 } else { 10 };
            let script = format!(
                "import socket\ns=socket.socket({family},2); s.bind(('{host}',{port}))\n{}",
                python_body(kind)
            );
            spawn_in(ns, "python3", &["-c", &script])?
        }
        PeerKind::Socat => {
            let listen = if ip.is_ipv4() {
                format!("UDP4-LISTEN:{port},bind={host}")
            } else {
                format!("UDP6-LISTEN:{port},bind=[{host}]")
            };
            spawn_in(ns, "socat", &["-T", "20", &listen, "PIPE"])?
        }
        PeerKind::StampSuite => {
            let bin = crate::stamp::stamp_suite("loop matrix: stamp-suite's reflector")?;
            spawn_in(
                ns,
                bin.to_str()?,
                &["-i", "-S", &host, "-o", &port.to_string()],
            )?
        }
        PeerKind::Ours => unreachable!("our server is started as a server"),
    };
    let mut peer = ChildPeer { child, addr };
    if !wait_bound(ns, addr) || peer.child.try_wait().ok().flatten().is_some() {
        return None;
    }
    Some(peer)
}

/// Starts our server in namespace `ns` with `args` after `--port 0`.
fn server_in(ns: &str, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--port", "0", "--stop-on-empty", "never"];
    all.extend_from_slice(args);
    start_server_via(&["ip", "netns", "exec", ns], &all)
}

/// Stops a server with SIGTERM and returns its stderr (summary included).
fn stop(mut server: ServerProcess) -> String {
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr}");
    stderr
}

/// Waits until the server warned about a loop (`a` or `b`), at most `limit`.
fn wait_for_either(server: &ServerProcess, a: &str, b: &str, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let stderr = server.stderr();
        if stderr.contains(a) || stderr.contains(b) {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

/// What one row measured on our server.
#[derive(Debug)]
struct Row {
    received: u64,
    echoed: u64,
    loops: u64,
    stderr: String,
}

impl Row {
    fn of(stderr: String) -> Row {
        Row {
            received: summary_count(&stderr, "received"),
            echoed: summary_count(&stderr, "echoed"),
            loops: summary_count(&stderr, ", loop"),
            stderr,
        }
    }
}

/// One row: our server (`family`) and a peer of `kind`, `k` forged datagrams
/// in flight. `None`: skipped (a peer that cannot run here).
fn run_row(ns: &str, kind: PeerKind, k: usize, family: Family) -> Option<Row> {
    let mut args = vec!["-H", family.server_host()];
    let budget = TEST_NEAR_COPY_BUDGET.to_string();
    if kind == PeerKind::Counter {
        args.extend_from_slice(&["--near-copy-budget", &budget]);
    }
    let server = server_in(ns, &args);
    let to = SocketAddr::new(family.server_ip(), server.addr.port());
    let payloads = if kind == PeerKind::StampSuite {
        stamp_requests(k)
    } else {
        loop_payloads(k)
    };
    let (peer_server, _peer_child, from) = if kind == PeerKind::Ours {
        let peer_host = family.peer_ip().to_string();
        let peer = server_in(ns, &["-H", &peer_host]);
        let from = SocketAddr::new(family.peer_ip(), peer.addr.port());
        (Some(peer), None, from)
    } else {
        let peer = start_child_peer(ns, kind, family.peer_ip())?;
        let from = peer.addr;
        (None, Some(peer), from)
    };
    in_ns(ns, move || forge(from, to, &payloads));
    let limit = if kind == PeerKind::Counter {
        COUNTER_ROW_LIMIT
    } else {
        ROW_LIMIT
    };
    let ended = wait_for_either(&server, "echo loop with", "STAMP/TWAMP reply from", limit);
    thread::sleep(DRAIN);
    let row = Row::of(stop(server));
    if let Some(peer) = peer_server {
        let peer_row = Row::of(stop(peer));
        eprintln!(
            "  (peer server: received {}, echoed {}, loop {})",
            peer_row.received, peer_row.echoed, peer_row.loops
        );
        assert!(peer_row.received <= LOOP_BUDGET, "{}", peer_row.stderr);
    }
    eprintln!(
        "| {} | {k} | {} | {} | {} | {} |",
        kind.name(),
        family.name(),
        row.received,
        row.echoed,
        row.loops
    );
    assert!(
        ended || row.received <= 2 * k as u64,
        "no loop ended:\n{}",
        row.stderr
    );
    Some(row)
}

const IN_FLIGHT: [usize; 4] = [1, 2, 10, 100];
const FAMILIES: [Family; 3] = [Family::V4, Family::V6, Family::Mapped];

/// Every row of `kind`, each asserted by `check(k, row)`.
fn rows_of(kind: PeerKind, check: impl Fn(usize, &Row)) {
    let Some(net) = test_net(kind.name()) else {
        return;
    };
    let ns = net.server.clone();
    for family in FAMILIES {
        for k in IN_FLIGHT {
            let Some(row) = run_row(&ns, kind, k, family) else {
                skip(&format!("{}: it cannot run here", kind.name()));
                return;
            };
            check(k, &row);
            assert!(
                row.loops >= 1,
                "{} k {k} {family:?}: {}",
                kind.name(),
                row.stderr
            );
        }
    }
}

/// An exact echo: the loop ends within 1,000 datagrams, whatever `k`.
fn ends_within_the_budget(k: usize, row: &Row) {
    assert!(row.received > k as u64, "the loop started: {}", row.stderr);
    assert!(row.echoed <= LOOP_BUDGET, "k {k}: {}", row.stderr);
    assert!(
        row.received <= LOOP_BUDGET + k as u64,
        "k {k}: {}",
        row.stderr
    );
}
