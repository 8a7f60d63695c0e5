//! Shared helpers for the integration tests: start the real binaries on loopback,
//! read their `listening on` line, talk to them with std sockets, and make sure
//! nothing outlives a test or waits forever.

#![allow(dead_code)] // each test file uses a different subset

#[cfg(target_os = "linux")]
pub(crate) mod mesh;
pub(crate) mod netns;
mod process;

pub(crate) use process::{
    ClientRun, ServerProcess, run_client, run_client_env, run_client_within, run_program,
    start_server, start_server_via, try_start_server,
};

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) const SERVER: &str = env!("CARGO_BIN_EXE_udp-echo-server");
pub(crate) const CLIENT: &str = env!("CARGO_BIN_EXE_udp-echo-client");

/// Variables of the caller's environment that change what the binaries do:
/// log level (`RUST_LOG`), systemd's socket activation, readiness and
/// watchdog (set when `cargo test` itself runs under systemd), the terminal
/// width of help and histograms, the client's offload switch. Every child a
/// test starts goes without them ([`command`]) unless the test sets one.
pub(crate) const CALLER_ENV: [&str; 14] = [
    "RUST_LOG",
    "RUST_LOG_STYLE",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "UDP_ECHO_CLIENT_OFFLOAD",
];

/// `Command::new(program)` without [`CALLER_ENV`]: what a test starts
/// behaves the same whatever shell or service manager runs `cargo test`.
pub(crate) fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    for name in CALLER_ENV {
        command.env_remove(name);
    }
    command
}

/// A std client socket on loopback with a receive timeout, so no test can hang.
pub(crate) fn udp_client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
}

/// Sends `payload` to `server` and returns the reply (panics on timeout).
pub(crate) fn echo(socket: &UdpSocket, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    socket.send_to(payload, server).expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, from) = socket.recv_from(&mut buf).expect("reply within 2 s");
    assert_eq!(from, server, "reply from the server's address");
    buf.truncate(n);
    buf
}

/// A test-only UDP server on loopback that answers each datagram with `respond`
/// (`None`: stay silent), for at most `limit` datagrams or `WAIT`, then ends.
pub(crate) fn fake_server(
    limit: usize,
    respond: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
) -> (SocketAddr, thread::JoinHandle<usize>) {
    fake_server_with(limit, move |d| respond(d).into_iter().collect())
}

/// Like [`fake_server`], but `respond` may keep state and send any number of
/// datagrams back (none, one, several) for each one it gets.
pub(crate) fn fake_server_with(
    limit: usize,
    mut respond: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, thread::JoinHandle<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 65536];
        let mut seen = 0;
        while seen < limit && Instant::now() < deadline {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            seen += 1;
            for reply in respond(&buf[..n]) {
                let _ = socket.send_to(&reply, from);
            }
        }
        seen
    });
    (addr, handle)
}

/// A free loopback port that nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// A UDP socket on a fixed `port` (a reflector's, a router's or a
/// privileged one) that no other program on the host and no other test
/// holds: bound to a loopback address of its own, 127.X.Y.Z with X.Y from
/// this process's id and Z counting calls, and with SO_REUSEADDR so a local
/// service on the wildcard address that allows sharing (avahi on 5353) does
/// not stand in the way. Only a privileged port without root fails.
pub(crate) fn bind_fixed_port(port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(10);
    let pid = std::process::id();
    let z = NEXT.fetch_add(1, Ordering::Relaxed).max(10);
    let ip = std::net::Ipv4Addr::new(127, (pid >> 8) as u8, pid as u8, z);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((ip, port)).into())?;
    Ok(socket.into())
}

/// Whether `::1` is usable on this host (some containers have no IPv6).
pub(crate) fn has_ipv6_loopback() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// The variable under which a skip fails its test instead of passing: `.ci/run`
/// sets it, so a missing install step (a tool, root) cannot hide in CI.
pub(crate) const NO_SKIP: &str = "UDP_ECHO_TESTS_NO_SKIP";

/// Says why a test did not run, on the real stderr: `eprintln!` is captured by
/// the test harness for passing tests, and a skip must be visible. Every test
/// that cannot run here comes through this one function; under
/// [`NO_SKIP`]`=1` it panics with the reason instead.
pub(crate) fn skip(reason: &str) {
    if std::env::var_os(NO_SKIP).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("would skip, and {NO_SKIP} is set: {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// Parses `name N` out of the summary line.
pub(crate) fn summary_count(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped by"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let at = line
        .find(name)
        .unwrap_or_else(|| panic!("no '{name}' in {line}"))
        + name.len();
    line[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("'{name}' in {line}: {e}"))
}

/// The client's `--json` output as one JSON value, or a panic that shows
/// everything the client printed and its exit code.
pub(crate) fn json_of(run: &ClientRun) -> serde_json::Value {
    serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from the client ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            run.code(),
            run.stdout_text(),
            run.stderr
        )
    })
}

/// Runs the client in network namespace `ns` (`ip netns exec`), with the
/// same deadline as every run.
pub(crate) fn run_client_in(ns: &str, args: &[&str]) -> ClientRun {
    let prefix = ["netns", "exec", ns, CLIENT];
    run_program("ip", &[&prefix[..], args].concat(), None)
}

/// A STAMP session-sender packet of `mode` with sequence `seq` and `ssid`,
/// `len` bytes (cut, or zero-padded after the base packet), time-stamped now
/// and signed when `key` is given.
pub(crate) fn stamp_request(
    mode: udp_echo::stamp::Mode,
    seq: u32,
    len: usize,
    key: Option<&udp_echo::stamp::Key>,
    ssid: u16,
) -> Vec<u8> {
    use udp_echo::stamp::{SenderPacket, TimeFormat};
    let mut buf = vec![0u8; len.max(mode.base_len())];
    SenderPacket {
        seq,
        timestamp: TimeFormat::Ntp.encode(std::time::SystemTime::now()),
        error_estimate: TimeFormat::Ntp.error_estimate(),
        ssid,
    }
    .encode(mode, &mut buf);
    if let Some(key) = key {
        key.sign(&mut buf);
    }
    buf.truncate(len);
    buf
}
