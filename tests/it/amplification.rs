//! No amplification (SPEC §5): whatever a source sends, no server mode sends
//! it more bytes or more datagrams than it sent. Every mode — plain echo in
//! each loop kind (`--batch 1`, `--no-gro`, GRO, `--threads 2`), `--stamp`
//! open and authenticated in each loop kind — is sent one request of every
//! size from 1 to 200 bytes (and, with `--stamp`, requests carrying TLVs),
//! and what comes back to the client socket on loopback is counted per
//! request: bytes out / bytes in and datagrams out / datagrams in, never
//! above 1.00. The table it prints (`--nocapture`) is the one in
//! docs/public-service.md.
//!
//! Also: a STAMP reflector against an echo service that truncates what it
//! sends back (to 30 bytes, under the 36 the reflected-packet check needs)
//! no longer loops: the truncated packet is short, so it is dropped.

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use udp_echo::stamp::{Key, Mode, ReflectedPacket};

/// The loop kinds every mode runs in.
const LOOPS: [(&str, &[&str]); 4] = [
    ("plain (--batch 1)", &["--batch", "1"]),
    ("batched (--no-gro)", &["--no-gro"]),
    ("GRO (default)", &[]),
    ("--threads 2", &["--threads", "2"]),
];

/// The largest request size tried.
const MAX_SIZE: usize = 200;

/// Requests sent before the replies are drained (the client's receive buffer
/// holds them all many times over).
const CHUNK: usize = 25;

/// How long the socket must stay quiet for a chunk's replies to be complete.
const QUIET: Duration = Duration::from_millis(150);

/// The authenticated mode's key, as hex text.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A key file only its owner may read, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(tag: &str) -> KeyFile {
        let name = format!("udp-echo-amplification-key-{}-{tag}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        KeyFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a server is asked to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Echo,
    Stamp(Mode),
}

/// One request: its id (what its reply carries back), size class and bytes.
struct Request {
    id: u32,
    class: String,
    bytes: Vec<u8>,
}

/// A sender packet of `mode` with sequence `seq`, `len` bytes, signed
/// with `key` when given (this file's SSID).
fn stamp_request(mode: Mode, seq: u32, len: usize, key: Option<&Key>) -> Vec<u8> {
    common::stamp_request(mode, seq, len, key, 0x4242)
}

/// TLV tails a sender may add after the base packet: Extra Padding, Class
/// of Service, an unknown type, several in a row, one overrunning the
/// packet, a cut header, a zero-length one; Follow-Up Telemetry and RFC
/// 9503's Destination Node Address and Return Path (a Return Address the
/// server does not allow: the reply still goes to the source), one with a
/// sub-TLV overrunning it.
fn tlv_tails() -> Vec<(&'static str, Vec<u8>)> {
    let padding = [&[0u8, 1, 0, 20][..], &[0xaa; 20]].concat();
    let cos = vec![0, 4, 0, 4, 0b1011_1000, 0, 0, 0];
    let unknown = vec![0, 200, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    vec![
        ("Extra Padding", padding.clone()),
        ("Class of Service", cos.clone()),
        ("unknown type", unknown.clone()),
        ("three TLVs", [padding, cos, unknown].concat()),
        ("overrunning", vec![0, 5, 0, 99, 1, 2]),
        ("cut header", vec![0, 1]),
        ("zero length", vec![0, 1, 0, 0]),
        (
            "Follow-Up Telemetry",
            udp_echo::stamp::followup::FollowUp::request_tlv().to_vec(),
        ),
        (
            "RFC 9503 TLVs",
            [
                udp_echo::stamp::return_path::destination_tlv([127, 0, 0, 1].into()),
                udp_echo::stamp::return_path::return_address_tlv([192, 0, 2, 1].into()),
            ]
            .concat(),
        ),
        (
            "Return Path, sub-TLV overrunning",
            vec![0x80, 10, 0, 6, 0x80, 2, 0, 9, 1, 2],
        ),
    ]
}

/// The size class of a request of `len` bytes, for the table.
fn class_of(kind: Kind, len: usize) -> String {
    let ranges: &[(usize, usize)] = match kind {
        Kind::Echo => &[(1, MAX_SIZE)],
        Kind::Stamp(Mode::Open) => &[(1, 13), (14, 43), (44, MAX_SIZE)],
        Kind::Stamp(Mode::Authenticated) => &[(1, 111), (112, MAX_SIZE)],
    };
    let (lo, hi) = ranges
        .iter()
        .find(|(lo, hi)| (*lo..=*hi).contains(&len))
        .unwrap();
    format!("{lo}–{hi} bytes")
}

/// Every request of a mode: sizes 1..=200 (id = size) and, with STAMP, the
/// TLV-bearing ones (ids from 1000).
fn requests(kind: Kind, key: &Key) -> Vec<Request> {
    let mut out: Vec<Request> = (1..=MAX_SIZE)
        .map(|len| {
            let bytes = match kind {
                // Byte 0 is the id; the rest differs per request, so no
                // two payloads are alike.
                Kind::Echo => (0..len).map(|i| (len * 31 + i * 7) as u8).collect(),
                Kind::Stamp(Mode::Open) => stamp_request(Mode::Open, len as u32, len, None),
                Kind::Stamp(Mode::Authenticated) => {
                    stamp_request(Mode::Authenticated, len as u32, len, Some(key))
                }
            };
            let mut bytes = bytes;
            if kind == Kind::Echo {
                bytes[0] = len as u8;
            }
            Request {
                id: len as u32,
                class: class_of(kind, len),
                bytes,
            }
        })
        .collect();
    if let Kind::Stamp(mode) = kind {
        let key = (mode == Mode::Authenticated).then_some(key);
        for (i, (name, tail)) in tlv_tails().into_iter().enumerate() {
            let id = 1000 + i as u32;
            let mut bytes = stamp_request(mode, id, mode.base_len(), key);
            bytes.extend_from_slice(&tail);
            out.push(Request {
                id,
                class: format!("TLVs: {name}"),
                bytes,
            });
        }
    }
    out
}

/// The id a reply carries: byte 0 of an echo, the copied sender sequence
/// number of a STAMP reply; `None` when it carries none.
fn reply_id(kind: Kind, reply: &[u8]) -> Option<u32> {
    match kind {
        Kind::Echo => reply.first().map(|&b| u32::from(b)),
        Kind::Stamp(mode) => ReflectedPacket::decode(mode, reply).map(|r| r.sender_seq),
    }
}

/// Every datagram that arrives on `socket` until it has been quiet for
/// [`QUIET`] (at most 10 s).
fn drain(socket: &UdpSocket, into: &mut Vec<Vec<u8>>) {
    socket.set_read_timeout(Some(QUIET)).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => into.push(buf[..n].to_vec()),
            Err(_) => return,
        }
    }
}

/// Per size class: the largest bytes and datagrams ratio, requests, replies.
type ClassRow = (f64, f64, usize, usize);

/// Per request: (bytes in, bytes out, datagrams out).
type Tally = BTreeMap<u32, (usize, usize, usize)>;

/// Sends every request of `kind` to `server` and counts what comes back.
/// The id of the request sent last, whose reply says that every earlier
/// reply is in (the server answers one flow in order).
const MARKER: u32 = 255;

/// Sends every request of `kind` to `server` and counts what comes back:
/// chunk by chunk, then a marker request, whose reply is waited for, then
/// anything after it until the socket is quiet.
fn measure(kind: Kind, server: SocketAddr, requests: &[Request], key: &Key) -> Tally {
    let socket = udp_client();
    socket.connect(server).unwrap();
    let marker = match kind {
        Kind::Echo => vec![MARKER as u8; 16],
        Kind::Stamp(mode) => {
            let key = (mode == Mode::Authenticated).then_some(key);
            stamp_request(mode, MARKER, mode.base_len(), key)
        }
    };
    let mut tally: Tally = requests
        .iter()
        .map(|r| (r.id, (r.bytes.len(), 0, 0)))
        .collect();
    let mut replies = Vec::new();
    for chunk in requests.chunks(CHUNK) {
        for request in chunk {
            socket.send(&request.bytes).unwrap();
        }
        drain(&socket, &mut replies);
    }
    socket.send(&marker).unwrap();
    let deadline = Instant::now() + WAIT;
    while !replies.iter().any(|r| reply_id(kind, r) == Some(MARKER)) {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: no reply to the marker"
        );
        drain(&socket, &mut replies);
    }
    drain(&socket, &mut replies);
    replies.retain(|r| reply_id(kind, r) != Some(MARKER));
    for reply in &replies {
        let entry = reply_id(kind, reply)
            .and_then(|id| tally.get_mut(&id))
            .unwrap_or_else(|| panic!("{kind:?}: a reply no request asked for: {reply:?}"));
        entry.1 += reply.len();
        entry.2 += 1;
    }
    tally
}

/// The value of the sample `series` in a scrape of `addr`'s `/metrics`.
fn scrape(addr: SocketAddr, series: &str) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn no_mode_sends_a_source_more_bytes_or_datagrams_than_it_sent() {
    let key_file = KeyFile::new("table");
    let key = Key::from_file_contents(KEY_HEX.as_bytes()).unwrap();
    let modes: [(&str, Kind, Vec<&str>); 4] = [
        ("echo", Kind::Echo, vec![]),
        ("--stamp", Kind::Stamp(Mode::Open), vec!["--stamp"]),
        // Sessions, and kernel transmit stamps once a Follow-Up Telemetry
        // TLV asks for them.
        (
            "--stamp --stamp-stateful",
            Kind::Stamp(Mode::Open),
            vec!["--stamp", "--stamp-stateful"],
        ),
        (
            "--stamp --stamp-key",
            Kind::Stamp(Mode::Authenticated),
            vec!["--stamp", "--stamp-key", key_file.path()],
        ),
    ];
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for (mode_name, kind, mode_args) in &modes {
        let requests = requests(*kind, &key);
        for (loop_name, loop_args) in LOOPS {
            let mut args = vec!["-H", "127.0.0.1", "-p", "0", "--stats-interval", "0.1"];
            args.extend_from_slice(mode_args);
            args.extend_from_slice(loop_args);
            args.extend_from_slice(&["--metrics", "127.0.0.1:0"]);
            let mut server = start_server(&args);
            let tally = measure(*kind, server.addr, &requests, &key);
            // Per size class: the largest ratio of any one request in it.
            let mut classes: Vec<(&str, ClassRow)> = Vec::new();
            let (mut answered, mut short) = (0, 0);
            for request in &requests {
                let (bytes_in, bytes_out, datagrams_out) = tally[&request.id];
                let bytes = bytes_out as f64 / bytes_in as f64;
                let datagrams = datagrams_out as f64;
                if classes.last().is_none_or(|(c, _)| *c != request.class) {
                    classes.push((&request.class, (0.0, 0.0, 0, 0)));
                }
                let row = &mut classes.last_mut().unwrap().1;
                row.0 = row.0.max(bytes);
                row.1 = row.1.max(datagrams);
                row.2 += 1;
                row.3 += datagrams_out;
                if bytes > 1.0 || datagrams > 1.0 {
                    failures.push(format!(
                        "{mode_name} {loop_name}: {bytes_in}-byte request {} got {datagrams_out} datagrams, {bytes_out} bytes",
                        request.id
                    ));
                }
                answered += usize::from(datagrams_out > 0);
                let base = match kind {
                    Kind::Echo => 0,
                    Kind::Stamp(mode) => mode.base_len(),
                };
                short += usize::from(bytes_in < base);
            }
            for (class, (bytes, datagrams, count, replies)) in classes {
                table.push(format!(
                    "| {mode_name} | {loop_name} | {class} | {count} | {replies} | {bytes:.2} | {datagrams:.2} |"
                ));
            }
            assert!(
                failures.is_empty(),
                "amplification:\n{}",
                failures.join("\n")
            );
            // Everything at least the reply's size is answered: the table
            // is about real replies, not a server that answers nothing.
            assert_eq!(
                answered,
                requests.len() - short,
                "{mode_name} {loop_name}: every request of at least the reply's size is answered"
            );
            if *kind != Kind::Echo {
                // The short ones are counted: stats lines (each the
                // interval's own), /metrics, summary.
                let deadline = Instant::now() + WAIT;
                while stats_lines_short(&server.stderr()) < short as u64 {
                    assert!(
                        Instant::now() < deadline,
                        "{mode_name} {loop_name}: the stats lines never added up to short {short}\n{}",
                        server.stderr()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert_eq!(
                    stats_lines_short(&server.stderr()),
                    short as u64,
                    "{mode_name} {loop_name}"
                );
                let url = server.wait_for_stdout_line("metrics on ", WAIT).unwrap();
                let addr: SocketAddr = url
                    .strip_prefix("http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                    .and_then(|addr| addr.parse().ok())
                    .unwrap();
                let series = "udp_echo_server_dropped_datagrams_total{reason=\"short\"}";
                assert_eq!(
                    scrape(addr, series),
                    Some(short as f64),
                    "{mode_name} {loop_name}"
                );
            }
            server.signal(libc::SIGINT);
            let stderr = server.wait_exit(WAIT).1;
            assert_eq!(
                summary_count(&stderr, "echoed"),
                answered as u64 + 1,
                "{mode_name} {loop_name}\n{stderr}"
            );
            if *kind != Kind::Echo {
                assert_eq!(summary_count(&stderr, "short"), short as u64, "{stderr}");
            }
        }
    }
    println!(
        "| mode | loop | requests | sent | replies | max bytes out/in | max datagrams out/in |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &table {
        println!("{row}");
    }
    assert!(
        failures.is_empty(),
        "amplification:\n{}",
        failures.join("\n")
    );
}

/// A reflector and an echo service that truncates: the echo sends back
/// the first 30 bytes of the 44-byte reply (too short for the reflected-
/// packet check, which needs 36). The truncated packet is a short request:
/// dropped, so the forged first request gets one reply and no loop starts.
/// Before, every loop answered it with 44 bytes, for ever (160,090 bounces
/// in 3.9 s). The echo here is the test's own socket, bounded to 10,000
/// bounces or 5 s.
#[test]
fn a_reflector_and_an_echo_that_truncates_to_30_bytes_do_not_loop() {
    let key_file = KeyFile::new("truncating");
    let key = Key::from_file_contents(KEY_HEX.as_bytes()).unwrap();
    let modes = [
        (Mode::Open, vec![]),
        (Mode::Authenticated, vec!["--stamp-key", key_file.path()]),
    ];
    for ((loop_name, loop_args), (mode, mode_args)) in LOOPS
        .into_iter()
        .flat_map(|l| modes.iter().map(move |m| (l, m)))
    {
        let loop_name = format!("{mode:?} {loop_name}");
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(loop_args);
        args.extend_from_slice(mode_args);
        let mut server = start_server(&args);
        let key = (*mode == Mode::Authenticated).then_some(&key);
        // The echo's socket sends the forged request: its source is the echo.
        // (The first reply is waited for up to 2 s, later ones 500 ms: a
        // loop answers within microseconds.)
        let echo = udp_client();
        echo.send_to(&stamp_request(*mode, 1, mode.base_len(), key), server.addr)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        let mut bounces = 0u32;
        while bounces < 10_000 && Instant::now() < deadline {
            let Ok((n, from)) = echo.recv_from(&mut buf) else {
                break;
            };
            bounces += 1;
            echo.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            echo.send_to(&buf[..n.min(30)], from).unwrap();
        }
        server.signal(libc::SIGINT);
        let stderr = server.wait_exit(WAIT).1;
        assert_eq!(
            bounces, 1,
            "{loop_name}: the echo got {bounces} replies\n{stderr}"
        );
        assert_eq!(summary_count(&stderr, "short"), 1, "{loop_name}\n{stderr}");
    }
}

/// The sum of `short N` over every `--stats-interval` line: each line counts
/// its own interval's drops.
fn stats_lines_short(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|line| line.contains("] stats "))
        .filter_map(|line| {
            let rest = &line[line.find("short ")? + "short ".len()..];
            let end = rest.find([',', ')'])?;
            rest[..end].parse::<u64>().ok()
        })
        .sum()
}
