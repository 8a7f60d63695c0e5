//! Echo loops end by themselves (SPEC §5, issue 11 §1), on the real server:
//!
//! - the self case: a wildcard-bound server made to echo to itself through a
//!   second address of the host is stopped at the first datagram;
//! - two of our servers, and ours against an independent echo (a Python
//!   loop), set bouncing by one forged datagram from a raw socket, stop
//!   within 1,000 datagrams each;
//! - our own client's ping, flood and rate modes at full speed are never
//!   taken for a loop.
//!
//! The first three run in a network namespace the test creates (root needed
//! for it and for raw sockets; they skip visibly otherwise), so forged
//! traffic never leaves it. Everything is killed and deleted on drop.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::netns;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use netns::{in_ns, test_net};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod anyip;

/// The most datagrams a loop may cost each side (SPEC §5).
const LOOP_BUDGET: u64 = 1_000;

/// How long a loop is given to run before the counts are read: a loop that
/// was not stopped bounces some 20,000 times a second, far over the budget.
const LOOP_RUN: Duration = Duration::from_secs(1);

/// Stops a server with SIGTERM and returns its stderr (summary included).
fn stop(mut server: ServerProcess) -> String {
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr}");
    stderr
}

/// Sends one UDP datagram from `from` (any address and port: forged) to `to`
/// through a raw socket, as root, in the calling thread's namespace. The
/// kernel adds the IP header; the UDP header is ours, with checksum 0 (none,
/// which IPv4 allows).
fn forge(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).expect("raw socket");
    // The source address of the IP header the kernel writes.
    raw.bind(&SockAddr::from(SocketAddrV4::new(*from.ip(), 0)))
        .expect("bind the raw socket to the forged source address");
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut packet = Vec::with_capacity(usize::from(len));
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    // For a raw socket the port of the destination is ignored.
    let sent = raw
        .send_to(&packet, &SockAddr::from(SocketAddrV4::new(*to.ip(), 0)))
        .expect("send the forged datagram");
    assert_eq!(sent, packet.len());
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(v6) => panic!("expected IPv4, got {v6}"),
    }
}

/// Starts our server in namespace `ns` with `args` after `--port 0`.
fn server_in(ns: &str, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    start_server_via(&["ip", "netns", "exec", ns], &all)
}

#[test]
fn a_wildcard_server_does_not_echo_to_itself_through_another_local_address() {
    let Some(net) = test_net("self loop") else {
        return;
    };
    let ns = net.server.clone();
    netns::run(
        "ip",
        &["-n", &ns, "addr", "add", "192.0.2.1/32", "dev", "lo"],
        None,
    )
    .unwrap_or_else(|why| panic!("{why}"));
    let server = server_in(&ns, &["-H", "0.0.0.0", "--stop-on-empty", "never"]);
    let port = server.addr.port();
    // Stopped, the server cannot answer while the trigger's socket still
    // holds 192.0.2.1:PORT: its first echo goes to 192.0.2.1:PORT once that
    // socket is gone, i.e. to itself (the race the designer found).
    server.signal(libc::SIGSTOP);
    in_ns(&ns, move || {
        let trigger = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        trigger.set_reuse_address(true).unwrap();
        let own = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), port);
        trigger
            .bind(&SockAddr::from(own))
            .expect("co-bind 192.0.2.1 with the server's port (SO_REUSEADDR on both)");
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        trigger.send_to(b"x", &SockAddr::from(to)).unwrap();
    });
    server.signal(libc::SIGCONT);
    thread::sleep(LOOP_RUN);
    let stderr = stop(server);
    let received = summary_count(&stderr, "received");
    let bad_source = summary_count(&stderr, "bad-source");
    let loops = summary_count(&stderr, ", loop");
    eprintln!("self loop: {received} datagrams received, bad-source {bad_source}, loop {loops}");
    assert!(received <= LOOP_BUDGET, "runaway: {stderr}");
    assert_eq!(received, 1, "caught on the first datagram: {stderr}");
    assert_eq!(bad_source, 1, "{stderr}");
    assert!(
        stderr.contains("this server's own port"),
        "one warning: {stderr}"
    );
}

#[test]
fn two_of_our_servers_stop_bouncing_a_forged_datagram() {
    two_servers_stop_bouncing(&[]);
}

#[test]
fn two_of_our_servers_stop_bouncing_even_with_exclusive_threads() {
    // Two threads on one socket: the peer's datagrams spread over two
    // detectors, each of which needs its own streak.
    two_servers_stop_bouncing(&["--exclusive", "--threads", "2"]);
}

/// Server A (with `a_args`) and B, one forged datagram "from B" to A.
fn two_servers_stop_bouncing(a_args: &[&str]) {
    let Some(net) = test_net("two servers") else {
        return;
    };
    let ns = net.server.clone();
    let mut args = vec!["-H", "127.0.0.1", "--stop-on-empty", "never"];
    let b = server_in(&ns, &args);
    args.extend_from_slice(a_args);
    let a = server_in(&ns, &args);
    let (a_addr, b_addr) = (v4(a.addr), v4(b.addr));
    // One datagram "from B" to A: A answers B, B answers A, …
    in_ns(&ns, move || forge(b_addr, a_addr, b"ping-pong"));
    thread::sleep(LOOP_RUN);
    let (a_err, b_err) = (stop(a), stop(b));
    let a_received = summary_count(&a_err, "received");
    let b_received = summary_count(&b_err, "received");
    let loops = summary_count(&a_err, ", loop") + summary_count(&b_err, ", loop");
    eprintln!(
        "two servers (A {a_args:?}): A received {a_received}, B received {b_received}, loop drops {loops}"
    );
    assert!(
        a_received > 1 && b_received > 0,
        "the loop started:\n{a_err}\n{b_err}"
    );
    assert!(a_received <= LOOP_BUDGET, "A: {a_err}");
    assert!(b_received <= LOOP_BUDGET, "B: {b_err}");
    assert!(loops >= 1, "dropped as a loop:\n{a_err}\n{b_err}");
    let warned = format!("{a_err}{b_err}");
    assert!(warned.contains("echo loop with 127.0.0.1:"), "{warned}");
}

/// An independent RFC 862 echo: a Python loop in `ns`, which ends itself
/// after 30 s should the test die before its drop kills it. (A timeout(1) in
/// between would be killed alone and leave Python running.)
struct PythonEcho {
    child: Child,
    addr: SocketAddrV4,
}

impl PythonEcho {
    /// `None` (the caller skips) when python3 cannot run.
    fn start(ns: &str) -> Option<PythonEcho> {
        let script = "import socket,time\n\
            s=socket.socket(2,2); s.bind(('127.0.0.1',0)); s.settimeout(0.5)\n\
            print(s.getsockname()[1], flush=True)\n\
            end=time.monotonic()+30\n\
            while time.monotonic()<end:\n\
            \x20   try: d,a=s.recvfrom(65535); s.sendto(d,a)\n\
            \x20   except OSError: pass\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            use std::io::Read;
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        });
        let port = rx.recv_timeout(WAIT).ok()?.trim().parse().ok();
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        Some(PythonEcho {
            child,
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        })
    }
}

impl Drop for PythonEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn our_server_stops_bouncing_with_an_independent_echo() {
    let Some(net) = test_net("python echo") else {
        return;
    };
    let ns = net.server.clone();
    let Some(python) = PythonEcho::start(&ns) else {
        skip("python echo: python3 cannot run here");
        return;
    };
    let server = server_in(&ns, &["-H", "127.0.0.1", "--stop-on-empty", "never"]);
    let (ours, theirs) = (v4(server.addr), python.addr);
    in_ns(&ns, move || forge(theirs, ours, b"ping-pong"));
    thread::sleep(LOOP_RUN);
    let stderr = stop(server);
    drop(python);
    let received = summary_count(&stderr, "received");
    let loops = summary_count(&stderr, ", loop");
    eprintln!("python echo: our server received {received}, loop drops {loops}");
    assert!(received > 1, "the loop started: {stderr}");
    assert!(received <= LOOP_BUDGET, "{stderr}");
    assert!(loops >= 1, "{stderr}");
    assert!(
        stderr.contains(&format!("echo loop with {theirs}")),
        "{stderr}"
    );
}

/// Runs our client with `args` against `server`, killed if it outlives
/// `limit` (whether the client ends in time is the client's tests' business;
/// here only the server's verdict on its traffic counts).
fn client_run(server: SocketAddr, args: &[&str], limit: Duration) {
    let port = server.port().to_string();
    let mut child = common::command(CLIENT)
        .args(["-H", "127.0.0.1", "-p", &port, "-q"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn udp-echo-client");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            eprintln!("client {args:?} still running after {limit:?}: killed");
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn our_clients_modes_at_full_speed_are_never_taken_for_a_loop() {
    for (mode, args) in [
        ("ping", &["-c", "200", "-i", "0"][..]),
        ("flood", &["-f", "-w", "256", "-D", "1"]),
        ("rate", &["-r", "50000", "-D", "1"]),
    ] {
        let server = start_server(&["--port", "0", "--recv-buf", "4M"]);
        client_run(server.addr, args, Duration::from_secs(5));
        let stderr = stop(server);
        let echoed = summary_count(&stderr, "echoed");
        let loops = summary_count(&stderr, ", loop");
        eprintln!("{mode}: echoed {echoed}, loop drops {loops}");
        assert!(echoed >= 200, "{mode}: the client ran: {stderr}");
        assert_eq!(loops, 0, "{mode}: {stderr}");
    }
}

/// Sends `count` identical datagrams in a row from one socket, each after
/// the previous reply while `answered` of them are to be answered, the rest
/// without waiting; then checks that exactly `answered` replies came.
fn identical_in_a_row(server: SocketAddr, count: usize, answered: usize) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    for i in 0..count {
        client.send_to(b"y\n", server).unwrap();
        if i < answered {
            let (n, _) = client
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no reply to datagram {}: {e}", i + 1));
            assert_eq!(&buf[..n], b"y\n");
        }
    }
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "more than {answered} of {count} answered"
    );
}

#[test]
fn identical_bytes_in_a_row_are_answered_101_times_then_not_unless_told() {
    // What `yes | nc -u` gets: the documented price of the rule.
    let server = start_server(&["--port", "0"]);
    identical_in_a_row(server.addr, 130, 101);
    let stderr = stop(server);
    assert_eq!(summary_count(&stderr, "echoed"), 101, "{stderr}");
    assert_eq!(summary_count(&stderr, ", loop"), 29, "{stderr}");
    let server = start_server(&["--port", "0", "--no-loop-detect"]);
    assert!(server.wait_for_stderr("loop detection off (--no-loop-detect)", WAIT));
    identical_in_a_row(server.addr, 130, 130);
    let stderr = stop(server);
    assert_eq!(summary_count(&stderr, ", loop"), 0, "{stderr}");
}
