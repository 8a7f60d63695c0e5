//! `--stamp` end to end on loopback: an independent implementation's sender
//! (stamp-suite, skipped visibly where it is not installed) against our
//! reflector, open and authenticated; what the reflector refuses and counts;
//! a reply bounced back by an echo service is not answered. Our sender in
//! ping, rate and flood (and `--flows 2`) against our reflector and
//! stamp-suite's; against reflectors in the test that lose a packet each way
//! (loss by direction) or re-mark the DSCP on purpose (the Class of Service
//! TLV tells which way).
//!
//! stamp-suite is looked for in `$STAMP_SUITE`, then
//! `target/ci-tools/bin/stamp-suite`, then `PATH` (`.ci/run` installs it into a
//! cache outside the clone and sets `STAMP_SUITE`).
//!
//! The tests are in `reflector.rs`, `sender.rs`, `fake_reflectors.rs` and
//! `tlvs.rs`; this file keeps what they share (stamp-suite as sender and
//! reflector, the recording relay, the key file).

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use udp_echo::stamp::{Key, Mode, ReflectedPacket, SenderPacket, TimeFormat};

mod fake_reflectors;
mod reflector;
mod sender;
mod tlvs;

/// The key both sides share in the authenticated tests, as hex text.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// stamp-suite's binary, or `None` after saying visibly why the test skips.
pub(crate) fn stamp_suite(test: &str) -> Option<PathBuf> {
    let candidates = std::env::var_os("STAMP_SUITE")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-tools/bin/stamp-suite")])
        // Where .ci/run installs it.
        .chain([PathBuf::from(
            std::env::var_os("UDP_ECHO_CI_TOOLS")
                .unwrap_or_else(|| "/var/cache/udp-echo-ci".into()),
        )
        .join("bin/stamp-suite")])
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("stamp-suite"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    skip(&format!(
        "{test}: stamp-suite is not installed (cargo install stamp-suite --locked, or set STAMP_SUITE; .ci/run installs it)"
    ));
    None
}

/// A key file only its owner may read (stamp-suite insists), removed on drop.
pub(crate) struct KeyFile(pub PathBuf);

impl KeyFile {
    /// The shared test key, written to a file for `tag`'s test.
    pub(crate) fn new(tag: &str) -> KeyFile {
        let path =
            std::env::temp_dir().join(format!("udp-echo-stamp-key-{}-{tag}", std::process::id()));
        std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        KeyFile(path)
    }

    /// The file's path, as stamp-suite and our binaries take it.
    pub(crate) fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The number after `label` on a line of stamp-suite's report.
pub(crate) fn stat(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in stamp-suite's report:\n{report}"))
}

/// Stops the server and returns its summary line.
fn summary(mut server: ServerProcess) -> String {
    server.signal(libc::SIGINT);
    let (_, stderr) = server.wait_exit(WAIT);
    stderr
        .lines()
        .find(|l| l.contains("stopped by"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"))
        .to_owned()
}

/// A sender packet of `mode`, signed with `key` when given.
fn request(mode: Mode, seq: u32, key: Option<&Key>) -> Vec<u8> {
    let mut buf = vec![0u8; mode.base_len()];
    SenderPacket {
        seq,
        timestamp: TimeFormat::Ntp.encode(SystemTime::now()),
        error_estimate: TimeFormat::Ntp.error_estimate(),
        ssid: 0x1234,
    }
    .encode(mode, &mut buf);
    if let Some(key) = key {
        key.sign(&mut buf);
    }
    buf
}

fn try_reply(socket: &std::net::UdpSocket, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 2048];
    socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// stamp-suite as a reflector on a free loopback port, killed on drop.
pub(crate) struct SuiteReflector {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl SuiteReflector {
    pub(crate) fn start(suite: &std::path::Path, extra: &[&str]) -> SuiteReflector {
        let port = closed_port();
        let child = common::command(suite.to_str().unwrap())
            .args(["-i", "-S", "127.0.0.1", "-o", &port.to_string()])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn stamp-suite");
        let reflector = SuiteReflector { child, port };
        // Ready when it answers a 44-byte STAMP packet (an authenticated one
        // would be dropped unsigned: probe with our own client then).
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            let probe = UdpSocketProbe::new();
            if probe.answered(port, extra) {
                return reflector;
            }
        }
        panic!("stamp-suite {extra:?} did not answer on port {port}");
    }
}

impl Drop for SuiteReflector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One STAMP packet (signed with [`KEY_HEX`] when the reflector is authenticated).
struct UdpSocketProbe(std::net::UdpSocket);

impl UdpSocketProbe {
    fn new() -> Self {
        UdpSocketProbe(udp_client())
    }

    fn answered(&self, port: u16, extra: &[&str]) -> bool {
        let key = extra
            .contains(&"A")
            .then(|| Key::from_file_contents(KEY_HEX.as_bytes()).unwrap());
        let mode = if key.is_some() {
            Mode::Authenticated
        } else {
            Mode::Open
        };
        let packet = request(mode, 0, key.as_ref());
        try_reply(&self.0, SocketAddr::from(([127, 0, 0, 1], port)), &packet).is_some()
    }
}

/// Checks a `--stamp --json` run: all answered, one-way delay objects there.
fn all_answered(run: &ClientRun, sent: u64, size: u64) -> serde_json::Value {
    let json = json_of(run);
    assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
    assert_eq!(json["sent"], sent, "{json}");
    assert_eq!(json["received"], sent, "{json}");
    assert_eq!(json["size"], size, "{json}");
    for owd in ["owd_forward_us", "owd_reverse_us"] {
        for field in ["min", "p50", "p99", "max"] {
            assert!(json[owd][field].is_f64(), "{owd}.{field}: {json}");
        }
        assert_eq!(json[owd]["samples"], sent, "{json}");
    }
    json
}

/// One request and its reply as the [`recording_proxy`] saw them.
pub(crate) struct Exchange {
    pub(crate) request: Vec<u8>,
    pub(crate) reply: Vec<u8>,
    /// The TOS byte the reply arrived with (Linux only).
    #[cfg_attr(any(not(target_os = "linux"), udp_echo_portable), allow(dead_code))]
    reply_tos: Option<u8>,
}

/// Runs stamp-suite's session-sender against 127.0.0.1:`port` from
/// 127.0.0.1: `count` packets `gap_ms` apart, one session, then `extra`.
pub(crate) fn suite_sender(
    suite: &std::path::Path,
    port: &str,
    (count, gap_ms): (&str, &str),
    extra: &[&str],
) -> ClientRun {
    let mut args = vec![
        "-r",
        "127.0.0.1",
        "-S",
        "127.0.0.1",
        "-p",
        port,
        "-c",
        count,
        "-d",
        gap_ms,
        "-L",
        "1",
    ];
    args.extend_from_slice(extra);
    run_program(suite.to_str().unwrap(), &args, None)
}

/// A UDP relay in the test between a sender and the reflector on
/// `reflector_port` (both on loopback), so a test can read what stamp-suite's
/// sender and our reflector said to each other: each request goes on with
/// the TOS it came with, each reply back with its own. `flip` may damage a
/// request on the way (a middlebox rewriting a TLV). It ends 1 s after the
/// last request (or 10 s without any) and returns what it relayed.
pub(crate) fn recording_proxy(
    reflector_port: u16,
    mut flip: impl FnMut(&mut Vec<u8>) + Send + 'static,
) -> (u16, std::thread::JoinHandle<Vec<Exchange>>) {
    let front = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = front.local_addr().unwrap().port();
    let back = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(("127.0.0.1", reflector_port)).unwrap();
    let _ = udp_echo::sys::enable_recv_tos(&front);
    let _ = udp_echo::sys::enable_recv_tos(&back);
    let reflector = SocketAddr::from(([127, 0, 0, 1], reflector_port));
    let thread = std::thread::spawn(move || {
        front
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        let (mut idle, mut got_any) = (0, false);
        while seen.len() < 1000 {
            let Ok((n, sender, tos)) = udp_echo::sys::recv_from_tos(&front, &mut buf) else {
                idle += 1;
                if got_any || idle >= 10 {
                    break;
                }
                continue;
            };
            (idle, got_any) = (0, true);
            let mut request = buf[..n].to_vec();
            flip(&mut request);
            udp_echo::sys::send_to_tos(&back, &request, reflector, tos.unwrap_or(0)).unwrap();
            let Ok((m, _, reply_tos)) = udp_echo::sys::recv_from_tos(&back, &mut buf) else {
                continue;
            };
            let reply = buf[..m].to_vec();
            udp_echo::sys::send_to_tos(&front, &reply, sender, reply_tos.unwrap_or(0)).unwrap();
            seen.push(Exchange {
                request,
                reply,
                reply_tos,
            });
        }
        seen
    });
    (port, thread)
}

/// stamp-suite's JSON summary line (`--output-format json`).
pub(crate) fn suite_summary(run: &ClientRun) -> serde_json::Value {
    let out = run.stdout_text();
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"summary\""))
        .unwrap_or_else(|| panic!("no JSON summary from stamp-suite:\n{out}\n{}", run.stderr));
    serde_json::from_str(line).unwrap()
}

/// stamp-suite's verdict on the TLVs of type `kind` in our replies:
/// (observed, unrecognized, malformed, integrity failed).
pub(crate) fn suite_tlv_flags(summary: &serde_json::Value, kind: u8) -> (u64, u64, u64, u64) {
    let t = &summary["measurements"]["tlv_validation"]["by_type"][kind.to_string()];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    (
        n(&t["observed"]),
        n(&t["flags"]["unrecognized"]),
        n(&t["flags"]["malformed"]),
        n(&t["flags"]["integrity_failed"]),
    )
}
