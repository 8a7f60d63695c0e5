//! The server under a service manager: socket activation with the real
//! `systemd-socket-activate` (an inherited UDP socket is served, a TCP one is
//! refused), and readiness through `NOTIFY_SOCKET` (`READY=1`, `STATUS=`,
//! `WATCHDOG=1`, then `STOPPING=1`), read from a Unix datagram socket the test
//! listens on as the manager would.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{SERVER, WAIT, skip, start_server_via, summary_count};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub(crate) const ACTIVATE: &str = "systemd-socket-activate";

pub(crate) fn has_activate() -> bool {
    let found = common::command(ACTIVATE)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(
            "systemd-socket-activate is not installed (package systemd): socket activation was not tried",
        );
    }
    found
}

/// A loopback address with a port nothing holds (bound, then released).
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// systemd-socket-activate execs the server only at the first datagram, so
/// this sends one every 100 ms until one comes back (or `WAIT` passes): the
/// wake-up and the proof that the inherited socket echoes.
fn echo_until_answered(target: SocketAddr) -> thread::JoinHandle<Option<Vec<u8>>> {
    thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            socket.send_to(b"inherited", target).unwrap();
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                assert_eq!(from, target);
                return Some(buf[..n].to_vec());
            }
        }
        None
    })
}

#[test]
fn a_socket_activated_server_echoes_on_the_inherited_socket_and_says_so() {
    if !has_activate() {
        return;
    }
    let addr = free_addr();
    let listen = addr.to_string();
    let answered = echo_until_answered(addr);
    let server = start_server_via(&[ACTIVATE, "--datagram", "-l", &listen], &[]);
    assert_eq!(server.addr, addr, "listening on the inherited address");
    assert_eq!(answered.join().unwrap().as_deref(), Some(&b"inherited"[..]));
    assert!(
        server.wait_for_stderr(
            &format!("socket activation: inherited fd 3, a UDP socket bound to {addr}"),
            WAIT
        ),
        "{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("1 thread, one socket"),
        "{}",
        server.stderr()
    );
    // Its own options are re-applied to the inherited socket, GRO included.
    assert!(
        server.stderr().contains("UDP GRO/GSO on"),
        "{}",
        server.stderr()
    );
}

#[test]
fn two_inherited_sockets_are_served_by_a_thread_each() {
    if !has_activate() {
        return;
    }
    let (first, second) = (free_addr(), free_addr());
    let (a, b) = (first.to_string(), second.to_string());
    let answered = echo_until_answered(first);
    let server = start_server_via(
        &[ACTIVATE, "--datagram", "-l", &a, "-l", &b],
        &["--threads", "3"],
    );
    assert_eq!(answered.join().unwrap().as_deref(), Some(&b"inherited"[..]));
    // The second socket echoes too, now that the server runs.
    assert_eq!(
        echo_until_answered(second).join().unwrap().as_deref(),
        Some(&b"inherited"[..])
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("inherited fd 3") && stderr.contains("inherited fd 4"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--threads 3 ignored: serving the 2 inherited sockets"),
        "{stderr}"
    );
    // The port-sharing watch covers the second socket too.
    let intruder = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    intruder.set_reuse_address(true).unwrap();
    if intruder.bind(&second.into()).is_err() {
        skip("the manager's sockets lack SO_REUSEADDR: no co-binder to watch for");
        return;
    }
    let warning = format!("another socket shares UDP port {}", second.port());
    assert!(
        server.wait_for_stderr(&warning, WAIT),
        "{}",
        server.stderr()
    );
}

/// Sends one UDP datagram with a forged source `from` to `to`, both on
/// loopback, through a raw socket (root only): the kernel writes the IP
/// header, the UDP header is ours with checksum 0 (none, which IPv4 allows).
fn forge(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> std::io::Result<()> {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
    raw.bind(&SockAddr::from(SocketAddrV4::new(*from.ip(), 0)))?;
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut packet = Vec::new();
    for field in [from.port(), to.port(), len, 0] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    packet.extend_from_slice(payload);
    raw.send_to(&packet, &SockAddr::from(SocketAddrV4::new(*to.ip(), 0)))?;
    Ok(())
}

#[test]
fn each_inherited_socket_is_named_and_a_datagram_from_one_to_the_other_is_not_echoed() {
    // Issue 19 §2: every loop took the first socket's address as its own, so
    // a datagram forged to the second socket from its own address echoed to
    // itself, two of them (same length, head and tail) for ever. Now each
    // loop knows its socket, and the guard every socket served: from either
    // socket, to either, nothing is echoed.
    if !has_activate() {
        return;
    }
    let (first, second) = (free_addr(), free_addr());
    let (a, b) = (first.to_string(), second.to_string());
    let answered = echo_until_answered(first);
    let server = start_server_via(&[ACTIVATE, "--datagram", "-l", &a, "-l", &b], &[]);
    assert_eq!(answered.join().unwrap().as_deref(), Some(&b"inherited"[..]));
    let report = format!("2 threads, one per inherited socket ({first}, {second})");
    assert!(server.wait_for_stderr(&report, WAIT), "{}", server.stderr());
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (first, second) else {
        unreachable!("loopback IPv4 addresses")
    };
    let mut pair = [vec![b'p'; 64], vec![b'p'; 64]];
    pair[0][32] = b'x';
    pair[1][32] = b'y';
    for (from, to) in [(to, to), (from, to), (to, from)] {
        for payload in &pair {
            if let Err(e) = forge(from, to, payload) {
                skip(&format!(
                    "no raw socket to forge a source ({e}): needs root"
                ));
                return;
            }
        }
    }
    thread::sleep(Duration::from_secs(1));
    let mut server = server;
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let received = summary_count(&stderr, "received");
    let echoed = summary_count(&stderr, "echoed");
    let bad_source = summary_count(&stderr, "bad-source");
    eprintln!("cross-socket: received {received}, echoed {echoed}, bad-source {bad_source}");
    assert!(received < 1_000, "runaway: {stderr}");
    assert_eq!(bad_source, 6, "{stderr}");
    assert_eq!(
        received,
        echoed + 6,
        "only the wake-up datagrams echoed: {stderr}"
    );
}

/// Waits for `child` to exit, killing it after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn an_inherited_tcp_socket_is_refused_with_one_clear_line() {
    if !has_activate() {
        return;
    }
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = common::command(ACTIVATE)
        .args(["-l", &addr.to_string(), SERVER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Connect only once the manager listens: connecting before, to a free port
    // in the ephemeral range, can connect the socket to itself (TCP
    // simultaneous open), and the manager would never see a connection.
    let (lines, said) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in
            std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)).map_while(Result::ok)
        {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + WAIT;
    while let Ok(line) = said.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("Listening on") {
            break;
        }
    }
    // A stream socket is handed over at the first connection.
    while TcpStream::connect(addr).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let status = wait_exit(&mut child, WAIT).expect("the server exits");
    let stderr = reader.join().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "no `listening on`: {stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(
            "inherited fd 3 is a stream (TCP) socket, not a UDP socket; use ListenDatagram="
        ),
        "{stderr}"
    );
}

/// A Unix datagram socket in a fresh directory, as a manager's NOTIFY_SOCKET.
struct Manager {
    socket: UnixDatagram,
    dir: PathBuf,
    path: PathBuf,
}

impl Manager {
    fn new(name: &str) -> Manager {
        let dir = std::env::temp_dir().join(format!("udp-echo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Manager { socket, dir, path }
    }

    /// The next message, or a failure after `WAIT`.
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {WAIT:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the server with `env`, returns it and its address.
fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let mut child = common::command(SERVER)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("a `listening on` line");
    let addr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

#[test]
fn readiness_is_sent_once_serving_and_stopping_at_stop() {
    let manager = Manager::new("notify");
    let notify = manager.path.to_str().unwrap();
    let (mut child, addr) = start_with_env(&["--port", "0"], &[("NOTIFY_SOCKET", notify)]);
    let ready = manager.next();
    assert_eq!(ready, format!("READY=1\nSTATUS=serving on {addr}"));
    // Serving by then: an echo works.
    let socket = common::udp_client();
    assert_eq!(common::echo(&socket, addr, b"ready?"), b"ready?");
    socket.send_to(b"", addr).unwrap();
    let stopping = manager.next();
    assert!(
        stopping.starts_with("STOPPING=1\nSTATUS=stopped by empty datagram"),
        "{stopping}"
    );
    assert!(wait_exit(&mut child, WAIT).unwrap().success());
}

#[test]
fn status_lines_follow_the_stats_interval_and_the_watchdog_is_fed() {
    let manager = Manager::new("status");
    let notify = manager.path.to_str().unwrap();
    let (mut child, addr) = start_with_env(
        &["--port", "0", "--stats-interval", "0.1"],
        // 200 ms: a ping every 100 ms.
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "200000")],
    );
    assert!(manager.next().starts_with("READY=1\n"));
    let (mut statuses, mut pings) = (0, 0);
    let deadline = Instant::now() + WAIT;
    while (statuses < 2 || pings < 2) && Instant::now() < deadline {
        match manager.next().as_str() {
            "WATCHDOG=1" => pings += 1,
            status if status.starts_with("STATUS=stats ") => {
                assert!(status.contains("datagrams/s"), "{status}");
                statuses += 1;
            }
            other => panic!("unexpected notification {other:?}"),
        }
    }
    assert!(
        statuses >= 2 && pings >= 2,
        "{statuses} STATUS, {pings} WATCHDOG"
    );
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"", addr)
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let message = manager.next();
        if message.starts_with("STOPPING=1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "no STOPPING=1");
    }
    assert!(wait_exit(&mut child, WAIT).unwrap().success());
}

#[test]
fn an_absurd_listen_fds_is_refused_with_one_line_without_reserving_memory() {
    // Issue 19 §9: LISTEN_FDS=2147483644 with our PID reserved 8 GiB before
    // looking at a descriptor (an abort, exit 134, under a memory limit).
    // Under a 2 GiB address-space limit, the shell execs the server with
    // LISTEN_PID set to its own PID, which exec keeps.
    let mut child = common::command("sh")
        .args([
            "-c",
            "ulimit -v 2000000; LISTEN_PID=$$ LISTEN_FDS=2147483644 exec \"$0\" --port 0",
            SERVER,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, WAIT).expect("exits at once");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "socket activation: LISTEN_FDS=2147483644 is more descriptors than this process may have open"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
