//! Our reflector (`--stamp`): stamp-suite's sender against it, open and
//! authenticated; what it refuses and counts; a reply bounced back by an echo
//! service is not answered; its start-up report; tshark decodes its packets.

use super::*;

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
