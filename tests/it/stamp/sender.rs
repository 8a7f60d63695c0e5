//! Our sender in ping, rate and flood (and `--flows 2`) against our reflector
//! and stamp-suite's; loss by direction against a stateful reflector in the
//! test; an echo service's replies are foreign; interval lines and records.

use super::*;

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
