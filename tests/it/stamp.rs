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

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use udp_echo::stamp::{Key, Mode, ReflectedPacket, SenderPacket, TimeFormat};

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

#[test]
fn stamp_suites_sender_gets_every_one_of_50_packets_answered_open_and_authenticated() {
    let Some(suite) = stamp_suite("stamp-suite sender → our reflector") else {
        return;
    };
    let key = KeyFile::new("reflector");
    for (auth, stateful) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        if auth {
            args.extend(["--stamp-key", key.path()]);
        }
        if stateful {
            args.push("--stamp-stateful");
        }
        let server = start_server(&args);
        let port = server.addr.port().to_string();
        let mut suite_args = vec![
            "-r",
            "127.0.0.1",
            "-S",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "50",
            "-d",
            "2",
            "-L",
            "1",
        ];
        if auth {
            suite_args.extend(["-A", "A", "--hmac-key-file", key.path()]);
        }
        let run = run_program(suite.to_str().unwrap(), &suite_args, None);
        let report = format!("{}{}", run.stdout_text(), run.stderr);
        let case = format!("auth {auth}, stateful {stateful}");
        assert_eq!(run.code(), Some(0), "{case}:\n{report}");
        assert_eq!(stat(&report, "Packets sent:"), 50, "{case}:\n{report}");
        assert_eq!(stat(&report, "Packets received:"), 50, "{case}:\n{report}");
        assert_eq!(stat(&report, "Packets lost:"), 0, "{case}:\n{report}");
        let line = summary(server);
        let size = if auth { 112 } else { 44 };
        assert!(
            line.contains(&format!("echoed 50 ({} bytes)", 50 * size)),
            "{case}: {line}"
        );
        assert!(line.contains("malformed 0"), "{case}: {line}");
    }
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

#[test]
fn malformed_packets_and_wrong_hmacs_are_dropped_and_counted() {
    let key_file = KeyFile::new("malformed");
    let server = start_server(&[
        "--stamp",
        "--stamp-key",
        key_file.path(),
        "-H",
        "127.0.0.1",
        "-p",
        "0",
    ]);
    let key = Key::from_file_contents(KEY_HEX.as_bytes()).unwrap();
    let wrong = Key::from_bytes(b"not the shared key at all").unwrap();
    let socket = udp_client();
    let good = request(Mode::Authenticated, 7, Some(&key));
    let reply = try_reply(&socket, server.addr, &good).expect("a signed packet is answered");
    assert!(
        key.verify(&reply),
        "the reply is signed with the shared key"
    );
    let got = ReflectedPacket::decode(Mode::Authenticated, &reply).unwrap();
    assert_eq!((got.seq, got.sender_seq, got.ssid), (7, 7, 0x1234));
    for bad in [
        request(Mode::Authenticated, 8, Some(&wrong)),
        request(Mode::Authenticated, 9, None),
        good[..100].to_vec(),
        request(Mode::Open, 10, None),
    ] {
        assert_eq!(
            try_reply(&socket, server.addr, &bad),
            None,
            "{} bytes",
            bad.len()
        );
    }
    let line = summary(server);
    // A wrong or missing HMAC is malformed; under 112 bytes (an open-mode
    // packet, a cut one) is short: its reply would be longer than it.
    assert!(line.contains("malformed 2, short 2"), "{line}");
    assert!(line.contains("echoed 1 (112 bytes)"), "{line}");
}

#[test]
fn a_reply_bounced_back_by_an_echo_service_is_not_answered() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let socket = udp_client();
    let reply = try_reply(&socket, server.addr, &request(Mode::Open, 1, None)).unwrap();
    // An echo service would send it back byte for byte: the loop ends here.
    assert_eq!(try_reply(&socket, server.addr, &reply), None);
    // A short TWAMP-Light packet would get a longer reply: dropped as short.
    let short = &request(Mode::Open, 2, None)[..14];
    assert_eq!(try_reply(&socket, server.addr, short), None);
    let line = summary(server);
    assert!(line.contains("loop 1"), "{line}");
    assert!(line.contains("short 1"), "{line}");
    assert!(line.contains("echoed 1 (44 bytes)"), "{line}");
}

#[test]
fn the_start_up_report_says_stamp_runs_batched_with_kernel_time_stamps() {
    let server = start_server(&["--stamp", "--stamp-ptp", "-H", "127.0.0.1", "-p", "0"]);
    assert!(
        server.wait_for_stderr(
            "STAMP reflector (RFC 8762/8972): unauthenticated, stateless, PTP time stamps; up to 32 datagrams per syscall, kernel receive time stamps",
            WAIT
        ),
        "{}",
        server.stderr()
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let socket = udp_client();
    let reply = try_reply(&socket, server.addr, &request(Mode::Open, 3, None)).unwrap();
    let got = ReflectedPacket::decode(Mode::Open, &reply).unwrap();
    assert_eq!(
        got.error_estimate & udp_echo::stamp::Z_BIT,
        udp_echo::stamp::Z_BIT
    );
    assert!(
        (got.timestamp >> 32).abs_diff(now.as_secs() & 0xffff_ffff) < 5,
        "PTP seconds since 1970"
    );
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

#[test]
fn our_sender_against_our_reflector_in_every_mode() {
    let key = KeyFile::new("ours");
    for (server_extra, client_extra, size) in [
        (vec![], vec![], 44),
        (
            vec!["--stamp-stateful", "--stamp-ptp"],
            vec!["--stamp-ptp"],
            44,
        ),
        (
            vec!["--stamp-key", key.path()],
            vec!["--stamp-key", key.path()],
            112,
        ),
    ] {
        let server = start_server(
            &[
                &["--stamp", "-H", "127.0.0.1", "-p", "0"][..],
                &server_extra,
            ]
            .concat(),
        );
        let port = server.addr.port().to_string();
        let args = [
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "10",
                "-i",
                "0.01",
                "--json",
            ][..],
            &client_extra,
        ]
        .concat();
        all_answered(&run_client(&args, None), 10, size);
    }
}

/// A stateful reflector in the test that loses packet 2 on the way in (it
/// never counts it) and the reply to packet 4 on the way out (counted, not
/// sent): the sender must say one forward, one reverse.
#[test]
fn against_a_stateful_reflector_loss_is_split_by_direction() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let reflector = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let mut next = 0u32;
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let sender = SenderPacket::decode(Mode::Open, &buf[..n]).unwrap();
            if sender.seq == 2 {
                continue;
            }
            let seq = next;
            next += 1;
            if sender.seq == 4 {
                continue;
            }
            let now = TimeFormat::Ntp.encode(SystemTime::now());
            let mut out = [0u8; 44];
            ReflectedPacket {
                seq,
                timestamp: now,
                error_estimate: TimeFormat::Ntp.error_estimate(),
                ssid: sender.ssid,
                receive_timestamp: now,
                sender_seq: sender.seq,
                sender_timestamp: sender.timestamp,
                sender_error_estimate: sender.error_estimate,
                sender_ttl: 255,
            }
            .encode(Mode::Open, &mut out);
            socket.send_to(&out, from).unwrap();
            if sender.seq == 7 {
                return;
            }
        }
    });
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "8",
            "-i",
            "0.01",
            "-t",
            "0.3",
            "--json",
        ],
        None,
    );
    reflector.join().unwrap();
    let json = json_of(&run);
    assert_eq!(json["lost"], 2, "{json}");
    assert_eq!(json["reflector_stateful"], true, "{json}");
    assert_eq!(json["lost_forward"], 1, "{json}");
    assert_eq!(json["lost_reverse"], 1, "{json}");
    assert_eq!(json["lost_unattributed"], 0, "{json}");
}

/// Whether tshark can capture here (root, tshark installed); says why not.
fn tshark_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(&format!("{test}: capturing on lo needs root"));
        return false;
    }
    let found = std::process::Command::new("tshark")
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(&format!(
            "{test}: tshark is not installed (apt-get install tshark)"
        ));
    }
    found
}

/// Wireshark's TWAMP-Test dissector reads our reflector's replies: each
/// carries the sequence number and time stamp of the request it answers.
#[test]
fn tshark_decodes_our_reflectors_packets_as_twamp_test() {
    if !tshark_or_skip("tshark decode") {
        return;
    }
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port();
    let pcap = std::env::temp_dir().join(format!("udp-echo-stamp-{}.pcap", std::process::id()));
    let pcap_path = pcap.to_str().unwrap().to_owned();
    // Only this test's two sockets: other programs may use this port number
    // on another loopback address, or talk on lo at the same time.
    let socket = udp_client();
    let ours = socket.local_addr().unwrap().port();
    let filter = format!("ip host 127.0.0.1 and udp port {port} and udp port {ours}");
    // Six packets (three requests, three replies) or ten seconds, whichever first.
    let mut capture = std::process::Command::new("tshark")
        .args([
            "-i",
            "lo",
            "-f",
            &filter,
            "-c",
            "6",
            "-a",
            "duration:10",
            "-w",
            &pcap_path,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tshark");
    // Capturing once it says so on stderr.
    let stderr = capture.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.contains("Capturing on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(WAIT)
        .expect("tshark did not start capturing");
    // dumpcap may attach its filter a moment after saying so: send until it
    // has its six packets.
    let deadline = std::time::Instant::now() + WAIT;
    let mut seq = 10;
    while capture.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "tshark did not stop");
        assert!(try_reply(&socket, server.addr, &request(Mode::Open, seq, None)).is_some());
        seq += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let decode = format!("udp.port=={port},twamp.test");
    let fields = [
        "-r",
        &pcap_path,
        "-d",
        &decode,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "udp.srcport",
        "-e",
        "twamp.test.seq_number",
        "-e",
        "twamp.test.timestamp",
        "-e",
        "twamp.test.sender_seq_number",
        "-e",
        "twamp.test.sender_timestamp",
    ];
    let out = run_program("tshark", &fields, None);
    let _ = std::fs::remove_file(&pcap);
    let text = out.stdout_text();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 6, "{text}\n{}", out.stderr);
    let from_us = port.to_string();
    let (requests, replies): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r[0] != from_us);
    assert!(replies.len() >= 2, "{text}");
    for reply in &replies {
        // Stateless: the reflector's number is the sender's.
        assert_eq!(reply[1], reply[3], "{text}");
        assert!(!reply[2].contains("1970"), "a real transmit time: {text}");
        if let Some(request) = requests.iter().find(|r| r[1] == reply[3]) {
            assert_eq!(
                reply[4], request[2],
                "the sender's time stamp, copied: {text}"
            );
        }
    }
    assert!(
        replies
            .iter()
            .any(|r| requests.iter().any(|q| q[1] == r[3])),
        "no request and its reply both captured: {text}"
    );
    println!("tshark: {}", replies[0].join(" | "));
}

/// Checks a `--stamp` flood or rate run: every packet answered, none lost,
/// one-way delay figures from every reply.
fn all_answered_in_bulk(run: &ClientRun, size: u64, flows: u64) -> serde_json::Value {
    let json = json_of(run);
    // STAMP's summary flattens the echo summary: no key twice.
    let text = run.stdout_text();
    for key in [
        "\"mode\":",
        "\"dscp_sent\":",
        "\"dscp_changed\":",
        "\"lost\":",
    ] {
        assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
    }
    assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
    let sent = json["sent"].as_u64().unwrap();
    assert!(sent > 0, "{json}");
    assert_eq!(json["received"], sent, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["corrupt"], 0, "{json}");
    assert_eq!(json["size"], size, "{json}");
    assert_eq!(json["flows"], flows, "{json}");
    for owd in ["owd_forward_us", "owd_reverse_us"] {
        assert!(json[owd]["p50"].is_f64(), "{owd}: {json}");
        assert_eq!(json[owd]["samples"], sent, "{json}");
    }
    assert_eq!(json["lost_forward"], 0, "{json}");
    assert_eq!(json["lost_reverse"], 0, "{json}");
    json
}

/// The bulk modes' command lines: rate and flood, each with one flow and two.
const BULK: [&[&str]; 4] = [
    &["-r", "2000", "-D", "0.5"],
    &["-r", "2000", "-D", "0.5", "--flows", "2"],
    &["-f", "-w", "16", "-D", "0.5"],
    &["-f", "-w", "16", "-D", "0.5", "--flows", "2"],
];

#[test]
fn our_sender_floods_and_paces_our_reflector_stateless_stateful_and_authenticated() {
    let key = KeyFile::new("bulk");
    for (server_extra, client_extra, size, stateful) in [
        (vec![], vec![], 44, false),
        (vec!["--stamp-stateful"], vec![], 44, true),
        (
            vec!["--stamp-key", key.path()],
            vec!["--stamp-key", key.path()],
            112,
            false,
        ),
    ] {
        let server = start_server(
            &[
                &["--stamp", "-H", "127.0.0.1", "-p", "0"][..],
                &server_extra,
            ]
            .concat(),
        );
        let port = server.addr.port().to_string();
        for mode in BULK {
            let args = [
                &["--stamp", "-H", "127.0.0.1", "-p", &port, "--json"][..],
                mode,
                &client_extra,
            ]
            .concat();
            let flows = if mode.contains(&"--flows") { 2 } else { 1 };
            let json = all_answered_in_bulk(&run_client(&args, None), size, flows);
            // Without loss a stateful reflector numbers as the sender does:
            // only a stateless one is known never to look stateful.
            if !stateful {
                assert_eq!(json["reflector_stateful"], false, "{args:?}: {json}");
            }
            let mode_name = if mode[0] == "-f" { "flood" } else { "rate" };
            assert_eq!(json["mode"], mode_name, "{json}");
        }
    }
}

#[test]
fn our_sender_against_stamp_suites_reflector_in_every_mode() {
    let Some(suite) = stamp_suite("our sender (ping, flood, rate) → stamp-suite reflector")
    else {
        return;
    };
    let key = KeyFile::new("sender-suite");
    let ping: &[&str] = &["-c", "20", "-i", "0.01"];
    for (extra, auth) in [
        (vec![], false),
        (vec!["--stateful-reflector"], false),
        (vec!["-A", "A", "--hmac-key-file", key.path()], true),
    ] {
        let reflector = SuiteReflector::start(&suite, &extra);
        let port = reflector.port.to_string();
        for mode in std::iter::once(ping).chain(BULK) {
            let mut args = [
                &["--stamp", "-H", "127.0.0.1", "-p", &port, "--json"][..],
                mode,
            ]
            .concat();
            if auth {
                args.extend(["--stamp-key", key.path()]);
            }
            let flows = if mode.contains(&"--flows") { 2 } else { 1 };
            let json =
                all_answered_in_bulk(&run_client(&args, None), if auth { 112 } else { 44 }, flows);
            if mode == ping {
                assert_eq!(json["sent"], 20, "{json}");
            }
        }
        drop(reflector);
    }
}

/// One request as a fake reflector sees it, and what it makes of the reply.
struct FakeReply {
    /// The sender's sequence number, copied into the reply (a test may
    /// damage the copy).
    sender_seq: u32,
    /// The TOS byte the request arrived with (Linux only).
    #[cfg_attr(any(not(target_os = "linux"), udp_echo_portable), allow(dead_code))]
    arrived_tos: Option<u8>,
    /// The reflector's sequence number (stateless: the sender's).
    seq: u32,
    /// The request's bytes after the base packet (TLVs), sent back as they are.
    tlvs: Vec<u8>,
}

/// A session-reflector in the test, on a free loopback port: for each
/// unauthenticated request, `answer` decides the reply (it may renumber it
/// or rewrite its TLVs) and returns the TOS byte to send it with, or `None`
/// to drop it. It ends 1 s after the last request (or 10 s without any).
fn fake_reflector(
    mut answer: impl FnMut(&mut FakeReply) -> Option<u8> + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let _ = udp_echo::sys::enable_recv_tos(&socket);
    let thread = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let (mut idle, mut got_any) = (0, false);
        loop {
            let Ok((n, from, tos)) = udp_echo::sys::recv_from_tos(&socket, &mut buf) else {
                idle += 1;
                // Something came and then nothing for a second, or nothing at all.
                if got_any || idle >= 10 {
                    return;
                }
                continue;
            };
            (idle, got_any) = (0, true);
            let sender = SenderPacket::decode(Mode::Open, &buf[..n]).unwrap();
            let mut reply = FakeReply {
                sender_seq: sender.seq,
                arrived_tos: tos,
                seq: sender.seq,
                tlvs: buf[n.min(44)..n].to_vec(),
            };
            let Some(reply_tos) = answer(&mut reply) else {
                continue;
            };
            let now = TimeFormat::Ntp.encode(SystemTime::now());
            let mut out = vec![0u8; 44];
            ReflectedPacket {
                seq: reply.seq,
                timestamp: now,
                error_estimate: TimeFormat::Ntp.error_estimate(),
                ssid: sender.ssid,
                receive_timestamp: now,
                sender_seq: reply.sender_seq,
                sender_timestamp: sender.timestamp,
                sender_error_estimate: sender.error_estimate,
                sender_ttl: 255,
            }
            .encode(Mode::Open, &mut out);
            out.extend_from_slice(&reply.tlvs);
            udp_echo::sys::send_to_tos(&socket, &out, from, reply_tos).unwrap();
        }
    });
    (port, thread)
}

/// A stateful reflector that never sees packet 2 (it does not count it) and
/// whose reply to packet 4 is lost on the way back (counted, not sent).
fn losing_one_each_way() -> impl FnMut(&mut FakeReply) -> Option<u8> + Send + 'static {
    let mut next = 0u32;
    move |reply| {
        if reply.sender_seq == 2 {
            return None;
        }
        reply.seq = next;
        next += 1;
        (reply.sender_seq != 4).then_some(0)
    }
}

#[test]
fn against_a_stateful_reflector_rate_and_flood_split_the_loss_by_direction() {
    for mode in [
        &["-r", "400", "-D", "0.5"][..],
        &["-f", "-w", "4", "-D", "0.3"][..],
    ] {
        let (port, reflector) = fake_reflector(losing_one_each_way());
        let args = [
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "0.3",
                "--json",
            ][..],
            mode,
        ]
        .concat();
        let run = run_client(&args, None);
        reflector.join().unwrap();
        let json = json_of(&run);
        assert_eq!(json["lost"], 2, "{mode:?}: {json}");
        assert_eq!(json["reflector_stateful"], true, "{json}");
        assert_eq!(json["lost_forward"], 1, "{mode:?}: {json}");
        assert_eq!(json["lost_reverse"], 1, "{mode:?}: {json}");
        assert_eq!(json["lost_unattributed"], 0, "{mode:?}: {json}");
    }
}

/// Our reflector does not fill in the Class of Service TLV yet (it flags it
/// U): the sender says it cannot tell the direction, instead of guessing.
#[test]
fn a_reflector_that_flags_the_class_of_service_tlv_gets_no_direction_split() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let args = [
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        &port,
        "-c",
        "3",
        "-i",
        "0.01",
    ];
    let json = json_of(&run_client(
        &[&args[..], &["--tos", "EF", "--json"]].concat(),
        None,
    ));
    assert_eq!(
        (json["received"].as_u64(), json["size"].as_u64()),
        (Some(3), Some(52)),
        "{json}"
    );
    if json["dscp_forward_changed"].is_null() {
        assert!(json["dscp_reverse_changed"].is_null(), "{json}");
    } else {
        // The reflector has learnt the TLV: then it re-marks nothing here.
        assert_eq!(json["dscp_forward_changed"], 0, "{json}");
    }
}

/// `--stamp` pointed at an echo service: every test packet comes back as
/// sent, which no reflector would send (zero receive and copied time
/// stamps): none received, all foreign, the exit code of total loss, and a
/// hint that the target is no STAMP reflector (stdout's summary; stderr with
/// `--json`).
#[test]
fn our_sender_against_an_echo_server_gets_foreign_replies_and_a_hint() {
    let server = start_server(&["-H", "127.0.0.1", "--port", "0"]);
    let port = server.addr.port().to_string();
    let hint = "replies are not STAMP reflections: the target may be an echo service";
    let base = [
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        &port,
        "-c",
        "3",
        "-i",
        "0.01",
        "-t",
        "0.3",
    ];
    let run = run_client(&[&base[..], &["--json"]].concat(), None);
    let json = json_of(&run);
    assert_eq!(json["sent"], 3, "{json}");
    assert_eq!(json["received"], 0, "{json}");
    assert_eq!(json["corrupt"], 0, "{json}");
    assert_eq!(json["foreign"], 3, "{json}");
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    let text = run_client(&base, None);
    assert!(text.stdout_text().contains(hint), "{}", text.stdout_text());
    // The exit code of a run that got nothing back at all.
    let silent = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &closed_port().to_string(),
            "-c",
            "1",
            "-t",
            "0.3",
        ],
        None,
    );
    assert_eq!(run.code(), silent.code(), "{}", silent.stderr);
    assert_eq!(text.code(), silent.code());
    assert_ne!(run.code(), Some(0));
}

/// A reflector that flips the lowest bit of the copied sender sequence
/// number in its reply to packet 3 (so it claims packet 2, already
/// answered): the copied time stamp names packet 3, whose reply is corrupt —
/// not a duplicate of packet 2 with packet 3 lost.
#[test]
fn a_flipped_bit_in_the_copied_sender_sequence_number_is_corrupt_not_a_duplicate() {
    let (port, reflector) = fake_reflector(|reply| {
        if reply.sender_seq == 3 {
            reply.sender_seq ^= 1;
        }
        Some(0)
    });
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "6",
            "-i",
            "0.02",
            "-t",
            "0.5",
            "--json",
        ],
        None,
    );
    reflector.join().unwrap();
    let json = json_of(&run);
    assert_eq!(json["sent"], 6, "{json}");
    assert_eq!(json["received"], 6, "{json}");
    assert_eq!(json["corrupt"], 1, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
}

/// A reflector that returns the request's TLV bytes unchanged (DSCP2 left
/// at 0) has not filled the Class of Service TLV in: no re-mark either way
/// is reported, the direction figures are `null`.
#[test]
fn a_class_of_service_tlv_copied_back_unprocessed_is_no_re_mark() {
    let (port, reflector) = fake_reflector(|_| Some(46 << 2));
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "--tos",
            "EF",
            "-c",
            "3",
            "-i",
            "0.01",
            "--json",
        ],
        None,
    );
    reflector.join().unwrap();
    let json = json_of(&run);
    assert_eq!(json["received"], 3, "{json}");
    assert!(json["dscp_forward_changed"].is_null(), "{json}");
    assert!(json["dscp_reverse_changed"].is_null(), "{json}");
}

/// A CoS-aware reflector in the test that re-marks on purpose: odd packets
/// it claims arrived as CS1 (a forward re-mark) and answers with DSCP1 as
/// asked; even ones arrived as sent, but it answers them CS1 while saying
/// DSCP1 (a reverse re-mark). The sender must tell the two apart.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn the_class_of_service_tlv_tells_a_forward_from_a_reverse_re_mark() {
    use udp_echo::stamp::packet::{ClassOfService, TLV_CLASS_OF_SERVICE, find_tlv};
    let remark = |reply: &mut FakeReply| {
        let (at, value) = find_tlv(&reply.tlvs, TLV_CLASS_OF_SERVICE).expect("a CoS TLV");
        let asked = ClassOfService::from_value(value.try_into().unwrap());
        let arrived = reply.arrived_tos.expect("the request's TOS") >> 2;
        let forward = reply.sender_seq % 2 == 1;
        let cos = ClassOfService {
            dscp1: asked.dscp1,
            dscp2: if forward { 8 } else { arrived },
            ecn: 0,
            rp: 0,
            ..ClassOfService::default()
        };
        reply.tlvs[at..at + 8].copy_from_slice(&cos.tlv());
        // A reflector clears the sender's U flag on a TLV it understood (RFC 8972 §4).
        reply.tlvs[at] = 0;
        Some(if forward { asked.dscp1 << 2 } else { 8 << 2 })
    };
    for mode in [
        &["-c", "6", "-i", "0.01"][..],
        &["-r", "200", "-D", "0.5"][..],
    ] {
        let (port, reflector) = fake_reflector(remark);
        let args = [
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "--tos",
                "EF",
                "--json",
            ][..],
            mode,
        ]
        .concat();
        let run = run_client(&args, None);
        reflector.join().unwrap();
        let json = json_of(&run);
        let received = json["received"].as_u64().unwrap();
        assert_eq!(json["lost"], 0, "{json}");
        assert!(received >= 6, "{json}");
        let odd = received / 2; // packets 1, 3, 5, ... of 0 ..= received - 1
        assert_eq!(json["dscp_forward_changed"], odd, "{mode:?}: {json}");
        assert_eq!(
            json["dscp_reverse_changed"],
            received - odd,
            "{mode:?}: {json}"
        );
        assert_eq!(json["dscp_changed"], received - odd, "{mode:?}: {json}");
        assert_eq!(json["dscp_sent"], 46, "{json}");
    }
}

/// A STAMP run has what an echo run has: interval lines and the summary in
/// rate mode, a record per packet with `--probes`.
#[test]
fn a_stamp_rate_run_prints_interval_lines_and_writes_a_record_per_packet() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let target = ["--stamp", "-H", "127.0.0.1", "-p", &port];
    let run = run_client(&[&target[..], &["-r", "200", "-D", "1.2"]].concat(), None);
    let text = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{text}\n{}", run.stderr);
    assert!(text.starts_with("STAMP RATE 127.0.0.1:"), "{text}");
    assert!(text.contains("[  0.00-1.00 s] "), "{text}");
    assert!(text.contains(" STAMP rate statistics ---"), "{text}");
    assert!(
        text.contains("loss by direction: 0 forward, 0 reverse"),
        "{text}"
    );
    let run = run_client(
        &[&target[..], &["-c", "4", "-i", "0.01", "--probes", "-"]].concat(),
        None,
    );
    let records = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{records}\n{}", run.stderr);
    let answered = records
        .lines()
        .filter(|l| l.contains("\"outcome\":\"answered\""))
        .count();
    assert_eq!(answered, 4, "{records}");
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

/// Issue 24's bug: stamp-suite's sender, with a Class of Service TLV (EF),
/// Timestamp Information and Extra Padding, against our reflector through a
/// relay that records the exchange. RFC 8972 §4: a sender sends every TLV
/// with U = 1 and a reflector MUST set U to 0 on each TLV it understood; our
/// reflector used to leave the sender's U, so stamp-suite counted the
/// filled-in CoS TLV as unrecognized. Now stamp-suite recognizes all three,
/// and the bytes say DSCP1 = DSCP2 = 46, RP 0, the reply sent EF, the
/// Timestamp Information sync source local (5) and method software (2) both
/// ways, the padding returned as it came.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn stamp_suites_sender_gets_its_class_of_service_timestamp_and_padding_tlvs_recognized() {
    use udp_echo::stamp::packet::{
        ClassOfService, TLV_CLASS_OF_SERVICE, TLV_EXTRA_PADDING, TLV_TIMESTAMP_INFO, find_tlv,
    };
    let Some(suite) = stamp_suite("stamp-suite sender with TLVs → our reflector") else {
        return;
    };
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let (proxy, relay) = recording_proxy(server.addr.port(), |_| {});
    let port = proxy.to_string();
    let run = suite_sender(
        &suite,
        &port,
        ("3", "20"),
        &[
            "--cos",
            "--dscp",
            "46",
            "--timestamp-info",
            "--extra-padding",
            "30",
            "--output-format",
            "json",
        ],
    );
    let seen = relay.join().unwrap();
    let summary = suite_summary(&run);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(summary["packets_received"], 3, "{summary}");
    for kind in [TLV_EXTRA_PADDING, TLV_TIMESTAMP_INFO, TLV_CLASS_OF_SERVICE] {
        assert_eq!(
            suite_tlv_flags(&summary, kind),
            (3, 0, 0, 0),
            "type {kind}: {summary}"
        );
    }
    assert_eq!(seen.len(), 3);
    for ex in &seen {
        assert_eq!(
            ex.reply.len(),
            ex.request.len(),
            "a reply takes its request's place"
        );
        let (request, reply) = (&ex.request[44..], &ex.reply[44..]);
        let (at, value) = find_tlv(reply, TLV_CLASS_OF_SERVICE).expect("CoS TLV");
        assert_eq!(reply[at], 0, "U, M, I clear");
        let cos = ClassOfService::from_value(value.try_into().unwrap());
        assert_eq!((cos.dscp1, cos.dscp2, cos.ecn, cos.rp), (46, 46, 0, 0));
        assert_eq!(ex.reply_tos.map(|t| t >> 2), Some(46), "the reply goes EF");
        let (at, value) = find_tlv(reply, TLV_TIMESTAMP_INFO).expect("Timestamp Information");
        assert_eq!((reply[at], value), (0, &[5, 2, 5, 2][..]));
        let (at, value) = find_tlv(reply, TLV_EXTRA_PADDING).expect("Extra Padding");
        let (_, sent) = find_tlv(request, TLV_EXTRA_PADDING).unwrap();
        assert_eq!((reply[at], value.len(), value), (0, 30, sent));
    }
}

/// Authenticated mode with HMAC TLVs both ways: stamp-suite's sender signs
/// its TLVs (`--tlv-hmac on`) and checks ours (`--verify-tlv-hmac`). Our
/// reflector verifies the sender's HMAC TLV and signs its reply's; with a
/// relay that flips one bit of the CoS TLV on the way (a middlebox rewriting
/// it, which the base packet's HMAC does not cover), every TLV comes back
/// flagged I and nothing in them is used.
#[test]
fn hmac_tlvs_are_verified_and_signed_both_ways_against_stamp_suites_sender() {
    let Some(suite) = stamp_suite("stamp-suite sender with HMAC TLV → our reflector") else {
        return;
    };
    let key = KeyFile::new("tlv-hmac");
    for flip in [false, true] {
        let server = start_server(&[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "--stamp-key",
            key.path(),
        ]);
        let (proxy, relay) = recording_proxy(server.addr.port(), move |request| {
            if flip && request.len() > 118 {
                request[117] ^= 0x04; // the CoS TLV's DSCP2 field (112 + 4 + 1)
            }
        });
        let port = proxy.to_string();
        let run = suite_sender(
            &suite,
            &port,
            ("3", "20"),
            &[
                "-A",
                "A",
                "--hmac-key-file",
                key.path(),
                "--cos",
                "--dscp",
                "10",
                "--tlv-hmac",
                "on",
                "--verify-tlv-hmac",
                "--output-format",
                "json",
            ],
        );
        let seen = relay.join().unwrap();
        let summary = suite_summary(&run);
        let hmac = &summary["measurements"]["tlv_validation"]["hmac"];
        assert_eq!(
            summary["packets_received"], 3,
            "flip {flip}: {summary}\n{}",
            run.stderr
        );
        assert_eq!(seen.len(), 3);
        for ex in &seen {
            assert_eq!(ex.reply.len(), ex.request.len());
        }
        if flip {
            assert_eq!(
                suite_tlv_flags(&summary, 4).3,
                3,
                "I on the CoS TLV: {summary}"
            );
            assert_eq!(
                suite_tlv_flags(&summary, 8).3,
                3,
                "I on the HMAC TLV: {summary}"
            );
        } else {
            assert_eq!(hmac["verified"], 3, "{summary}");
            assert_eq!(hmac["failed"], 0, "{summary}");
            assert_eq!(suite_tlv_flags(&summary, 4), (3, 0, 0, 0), "{summary}");
        }
    }
}

/// Our sender with `--size` (an Extra Padding TLV) and `--tos` (a Class of
/// Service TLV), open and authenticated (then with an HMAC TLV), against our
/// reflector and stamp-suite's (verifying our HMAC TLV). Every reply comes
/// back whole and as long as its request, and with `--tos` the CoS TLV is
/// used (`dscp_forward_changed` 0, not `null`): the reflector understood it
/// (U cleared) and, authenticated, both HMAC TLVs passed — the reflector's
/// check of ours (it would flag I) and ours of its reply.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn our_sender_pads_and_signs_its_tlvs_against_our_reflector_and_stamp_suites() {
    let key = KeyFile::new("pad-sign");
    let suite = stamp_suite("our sender with TLVs → stamp-suite reflector");
    for auth in [false, true] {
        let mut server_args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        if auth {
            server_args.extend(["--stamp-key", key.path()]);
        }
        let ours = start_server(&server_args);
        let theirs = suite.as_ref().map(|suite| {
            let extra: &[&str] = if auth {
                &[
                    "-A",
                    "A",
                    "--hmac-key-file",
                    key.path(),
                    "--verify-tlv-hmac",
                ]
            } else {
                &[]
            };
            SuiteReflector::start(suite, extra)
        });
        let mut ports = vec![("ours", ours.addr.port())];
        ports.extend(theirs.as_ref().map(|r| ("stamp-suite", r.port)));
        for (name, port) in ports {
            let port = port.to_string();
            for extra in [
                &["--size", "200"][..],
                &["--tos", "EF"],
                &["--tos", "EF", "--size", "300"],
            ] {
                let mut args = [
                    &[
                        "--stamp",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-c",
                        "3",
                        "-i",
                        "0.01",
                        "--json",
                    ][..],
                    extra,
                ]
                .concat();
                if auth {
                    args.extend(["--stamp-key", key.path()]);
                }
                let size = match extra {
                    [.., "--size", n] => n.parse().unwrap(),
                    _ if auth => 140,
                    _ => 52,
                };
                let json = all_answered(&run_client(&args, None), 3, size);
                let case = format!("{name}, auth {auth}, {extra:?}");
                assert_eq!(json["corrupt"], 0, "{case}: {json}");
                if extra.contains(&"--tos") {
                    assert_eq!(json["dscp_forward_changed"], 0, "{case}: {json}");
                    assert_eq!(json["dscp_reverse_changed"], 0, "{case}: {json}");
                }
            }
        }
    }
}

/// `--tlv-mode ignore`: the reflector copies everything after the base
/// packet back as it came (a reflector without TLV support, for testing
/// senders). stamp-suite's sender sees its TLVs come back with its own U
/// flag, i.e. unrecognized, byte for byte; our sender reports no direction
/// of a re-mark (`null`) rather than one read from an unfilled TLV.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn tlv_mode_ignore_sends_every_tlv_back_as_it_came() {
    let server = start_server(&[
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--tlv-mode",
        "ignore",
    ]);
    let port = server.addr.port().to_string();
    let json = all_answered(
        &run_client(
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "3",
                "-i",
                "0.01",
                "--tos",
                "EF",
                "--size",
                "100",
                "--json",
            ],
            None,
        ),
        3,
        100,
    );
    assert!(json["dscp_forward_changed"].is_null(), "{json}");
    let Some(suite) = stamp_suite("stamp-suite sender → our reflector with --tlv-mode ignore")
    else {
        return;
    };
    let (proxy, relay) = recording_proxy(server.addr.port(), |_| {});
    let proxy = proxy.to_string();
    let run = suite_sender(
        &suite,
        &proxy,
        ("3", "20"),
        &[
            "--cos",
            "--dscp",
            "46",
            "--timestamp-info",
            "--output-format",
            "json",
        ],
    );
    let seen = relay.join().unwrap();
    let report = suite_summary(&run);
    assert_eq!(report["packets_received"], 3, "{report}");
    assert_eq!(suite_tlv_flags(&report, 4), (3, 3, 0, 0), "{report}");
    assert_eq!(suite_tlv_flags(&report, 3), (3, 3, 0, 0), "{report}");
    for ex in &seen {
        assert_eq!(ex.reply[44..], ex.request[44..], "TLVs as they came");
    }
    let line = summary(server);
    assert!(line.contains("echoed 6"), "{line}");
}
