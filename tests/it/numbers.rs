//! Numbers that are what they say (SPEC §8): loss put only where the
//! evidence puts it, refusals told once per probe, figures of hostile
//! reflectors that cannot inflate, percentiles within [min, max], the
//! resolution of batch-shared times said, one target form, plurals.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;
use udp_echo::stamp::{Mode, ReflectedPacket, SenderPacket, TimeFormat};

fn n(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer '{key}' in {json}"))
}

fn seq_of(probe: &[u8]) -> u64 {
    u64::from_be_bytes(probe[..8].try_into().unwrap())
}

/// A server that drops the even probes and sends each odd one back 300
/// times: every loss is the server's, while the copies overflow the
/// client's tiny receive buffer. The drop counter must not be read as lost
/// replies.
#[test]
fn drops_of_duplicates_are_not_blamed_for_the_servers_loss() {
    let args = |port: &str, json: bool| {
        let mut a = vec![
            "-p",
            port,
            "-c",
            "20",
            "-i",
            "0.01",
            "-t",
            "0.3",
            "-s",
            "1400",
            "--recv-buf",
            "4K",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if json {
            a.push("--json".into());
        }
        a
    };
    let spam = |probe: &[u8]| {
        if seq_of(probe) % 2 == 0 {
            Vec::new()
        } else {
            vec![probe.to_vec(); 300]
        }
    };
    let (addr, _server) = fake_server_with(20, spam);
    let port = addr.port().to_string();
    let a = args(&port, true);
    let run = run_client(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let json = json_of(&run);
    let Some(drops) = json["client_drops"].as_u64() else {
        skip("no per-socket drop counter on this system");
        return;
    };
    assert!(drops > 0, "300 copies of 1400 bytes overflow 4 KiB: {json}");
    assert!(n(&json, "lost") >= 10, "{json}");
    assert!(n(&json, "duplicates") > 0, "{json}");
    assert_eq!(json["lost_in_client"], Value::Null, "{json}");

    let (addr, _server) = fake_server_with(20, spam);
    let port = addr.port().to_string();
    let a = args(&port, false);
    let run = run_client(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let out = run.stdout_text();
    let line = out
        .lines()
        .find(|l| l.starts_with("lost "))
        .unwrap_or_else(|| panic!("no loss line:\n{out}"));
    assert!(
        !line.contains("0 on the path or at the server"),
        "the server lost them all: {line}"
    );
    assert!(
        line.contains("on the path, at the server or dropped in this client's receive buffers ("),
        "{line}"
    );
    assert!(
        line.contains(" duplicates") && line.contains(" came too"),
        "{line}"
    );
}

/// A closed port: one line per probe, with its sequence number, and a
/// summary that says nobody listens, not that the path was down.
#[test]
fn a_closed_port_is_told_once_per_probe_and_blamed_on_nobody_listening() {
    let port = closed_port().to_string();
    let run = run_client(&["-p", &port, "-c", "3", "-i", "0.2"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    let out = run.stdout_text();
    let refused: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("connection refused"))
        .collect();
    assert_eq!(
        refused,
        (1..=3)
            .map(|s| format!("no UDP server at 127.0.0.1:{port}: seq={s} (connection refused)"))
            .collect::<Vec<_>>(),
        "{out}"
    );
    assert!(!out.contains("(timeout)"), "{out}");
    assert!(!out.contains("path was down"), "{out}");
    assert!(!out.contains("down for that long"), "{out}");
    assert!(
        out.contains(&format!(
            "lost 3: 3 refused (ICMP port unreachable: nothing listens on 127.0.0.1:{port})\n"
        )),
        "{out}"
    );
    let json = json_of(&run_client(
        &["-p", &port, "-c", "2", "-i", "0.1", "--json"],
        None,
    ));
    assert_eq!(
        (n(&json, "lost"), n(&json, "lost_refused")),
        (2, 2),
        "{json}"
    );
}

/// A reflector's reply to the STAMP request `request`, with the reflector's
/// receive and transmit stamps given.
fn stamp_reply(request: &[u8], receive_timestamp: u64, timestamp: u64) -> Vec<u8> {
    let sender = SenderPacket::decode(Mode::Open, request).unwrap();
    let mut out = vec![0u8; 44];
    ReflectedPacket {
        seq: sender.seq,
        timestamp,
        error_estimate: TimeFormat::Ntp.error_estimate(),
        ssid: sender.ssid,
        receive_timestamp,
        sender_seq: sender.seq,
        sender_timestamp: sender.timestamp,
        sender_error_estimate: sender.error_estimate,
        sender_ttl: 255,
    }
    .encode(Mode::Open, &mut out);
    out
}

/// 65,507 bytes back for every 44-byte probe: corrupt replies are no
/// throughput, echo or STAMP.
#[test]
fn huge_corrupt_replies_add_nothing_to_the_throughput() {
    for stamp in [false, true] {
        let (addr, _server) = fake_server(5, move |probe| {
            let mut reply = if stamp {
                let now = TimeFormat::Ntp.encode(SystemTime::now());
                stamp_reply(probe, now, now)
            } else {
                probe.to_vec()
            };
            reply.resize(65_507, 0xA5);
            Some(reply)
        });
        let port = addr.port().to_string();
        let mut args = vec!["-p", &port, "-c", "5", "-i", "0.01", "--json"];
        args.extend(if stamp {
            ["--stamp"].as_slice()
        } else {
            ["-s", "44"].as_slice()
        });
        let run = run_client(&args, None);
        let json = json_of(&run);
        assert_eq!(n(&json, "corrupt"), 5, "stamp {stamp}: {json}");
        assert_eq!(n(&json, "bytes_received"), 0, "stamp {stamp}: {json}");
        assert_eq!(json["mbit_per_s"], 0.0, "stamp {stamp}: {json}");
        assert_eq!(json["rtt_per_s"], 0.0, "stamp {stamp}: {json}");
    }
}

/// A reflector that says it received at the end of NTP time and sent at its
/// beginning: the one-way figures are invalid, counted, not 2.9e11 ms.
#[test]
fn impossible_reflector_time_stamps_are_counted_not_reported_as_delays() {
    let (addr, _server) = fake_server(3, |request| Some(stamp_reply(request, u64::MAX, 0)));
    let port = addr.port().to_string();
    let run = run_client(
        &["-p", &port, "-c", "3", "-i", "0.01", "--stamp", "--json"],
        None,
    );
    let json = json_of(&run);
    assert_eq!(n(&json, "received"), 3, "{json}");
    assert_eq!(n(&json, "owd_invalid"), 3, "{json}");
    assert!(json["owd_forward_us"].is_null(), "{json}");
    assert!(json["owd_reverse_us"].is_null(), "{json}");

    let (addr, _server) = fake_server(3, |request| Some(stamp_reply(request, u64::MAX, 0)));
    let port = addr.port().to_string();
    let run = run_client(&["-p", &port, "-c", "3", "-i", "0.01", "--stamp"], None);
    let out = run.stdout_text();
    assert!(
        out.contains("one-way delays: invalid, impossible reflector time stamps in 3 replies ("),
        "{out}"
    );
    assert!(!out.contains("one-way forward"), "{out}");
}

/// Flood and rate probes leave several per send (one send time) and their
/// replies come several per GRO buffer (one receive time): the run says its
/// round trips are per-batch, gives no jitter, and the records carry the
/// send's own time, not one made up a nanosecond apart per probe. Ping
/// keeps per-probe times and its jitter.
#[test]
fn batch_shared_times_are_said_and_not_dressed_up_as_per_probe() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    for (mode, env) in [
        (["--flood", "-D", "0.3"], ""),
        (["--flood", "-D", "0.3"], "no-gro"),
        (["--rate", "200000", "-D"], ""),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "udp-echo-numbers-{}-{}.ndjson",
            std::process::id(),
            mode[0].trim_start_matches('-')
        ));
        let path = dir.to_str().unwrap();
        let mut args = vec!["-p", &port, "--json", "--probes", path];
        args.extend(mode);
        if mode[0] == "--rate" {
            args.push("0.3");
        }
        let run = run_client_env(&args, &[("UDP_ECHO_CLIENT_OFFLOAD", env)]);
        let json = json_of(&run);
        let records = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(n(&json, "received") > 100, "{json}");
        assert_eq!(
            json["rtt_resolution"], "per-batch",
            "{mode:?} {env}: {json}"
        );
        assert!(n(&json, "rtt_batch_timed") > 0, "{json}");
        assert!(json["rtt_us"]["jitter"].is_null(), "{json}");
        let rows: Vec<Value> = records
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            rows.iter().any(|r| r["timing"] == "per-batch"),
            "{mode:?}: {}",
            &records[..500.min(records.len())]
        );
        // Probes of one send share its time: no neighbour is stamped one
        // made-up nanosecond after the other.
        let sent: Vec<u64> = rows
            .iter()
            .filter(|r| r["outcome"] == "answered")
            .map(|r| r["sent_ns"].as_u64().unwrap())
            .collect();
        assert!(
            sent.windows(2).all(|w| w[1] != w[0] + 1),
            "{mode:?}: consecutive send times 1 ns apart"
        );
    }
    let run = run_client(&["-p", &port, "-c", "3", "-i", "0.01", "--json"], None);
    let json = json_of(&run);
    assert_eq!(json["rtt_resolution"], "per-probe", "{json}");
    assert_eq!(n(&json, "rtt_batch_timed"), 0, "{json}");
    assert!(json["rtt_us"]["jitter"].is_f64(), "{json}");
    let text = run_client(&["-p", &port, "--flood", "-D", "0.2"], None).stdout_text();
    assert!(text.contains(", jitter n/a (per-batch times)\n"), "{text}");
    assert!(text.contains("rtt resolution per-batch: "), "{text}");
}

/// A child killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `-H localhost`: every place names the address probed, 127.0.0.1:PORT,
/// the JSON keeps the name in `host`, and the metrics' `target` label is
/// the same address.
#[test]
fn a_name_given_is_reported_as_the_address_probed_everywhere() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let run = run_client(&["-H", "localhost", "-p", &port, "-c", "1", "-4"], None);
    let out = run.stdout_text();
    assert!(
        out.starts_with(&format!(
            "UDP ECHO PING {addr}: 64 bytes per probe, 1 probe, "
        )),
        "{out}"
    );
    assert!(out.contains(&format!("--- {addr} udp echo ping")), "{out}");
    let json = json_of(&run_client(
        &["-H", "localhost", "-p", &port, "-c", "1", "-4", "--json"],
        None,
    ));
    assert_eq!(
        (json["target"].as_str(), json["host"].as_str()),
        (Some(addr.as_str()), Some("localhost")),
        "{json}"
    );
    let pmtu = run_client(&["-H", "localhost", "-p", &port, "-4", "--pmtu"], None);
    assert!(
        pmtu.stdout_text()
            .starts_with(&format!("UDP ECHO PMTU {addr}: ")),
        "{}",
        pmtu.stdout_text()
    );

    let mut child = Command::new(CLIENT)
        .args([
            "-H",
            "localhost",
            "-4",
            "-p",
            &port,
            "-c",
            "50",
            "-i",
            "0.1",
            "-q",
        ])
        .args(["--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = Killed(child);
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let endpoint = line
        .trim_end()
        .strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("first stderr line: {line:?}"))
        .to_owned();
    let mut http = TcpStream::connect(&endpoint).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    let _ = http.read_to_string(&mut body);
    assert!(
        body.contains(&format!(
            "udp_echo_client_probes_sent_total{{target=\"{addr}\"}}"
        )),
        "{body}"
    );
    assert!(!body.contains("localhost"), "{body}");
}

/// One probe, one round trip, one datagram: singular everywhere.
#[test]
fn counts_of_one_read_in_the_singular() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let out = run_client(&["-p", &port, "-c", "1"], None).stdout_text();
    assert!(out.contains(", 1 probe, "), "{out}");
    assert!(out.contains("\n1 probe sent, 1 received, "), "{out}");
    assert!(out.contains("jitter n/a (one round trip)"), "{out}");
    let socket = udp_client();
    echo(&socket, server.addr, b"one");
    socket.send_to(b"", server.addr).unwrap();
    let mut server = server;
    let (_, stderr) = server.wait_exit(WAIT);
    assert!(stderr.contains("received 3 datagrams ("), "{stderr}");
    let mut single = start_server(&["--port", "0", "--batch", "1"]);
    assert!(
        single.wait_for_stderr("1 datagram per syscall", WAIT),
        "{}",
        single.stderr()
    );
    udp_client().send_to(b"", single.addr).unwrap();
    let (_, stderr) = single.wait_exit(WAIT);
    assert!(stderr.contains("received 1 datagram ("), "{stderr}");
}
