//! `udp-echo-client --stamp --stamp-tlv`: our sender asks for Direct
//! Measurement, Location and Access Report and reports what came back —
//! from our reflector (stateless: Direct Measurement flagged U, reported;
//! stateful: every TLV filled in; authenticated, under the HMAC TLV) and
//! from stamp-suite's (skipped visibly where it is not installed). Every
//! reply is accounted for: each TLV filled in or flagged, never an error.

use crate::common;

use common::*;

use crate::stamp::{KeyFile, SuiteReflector, stamp_suite};

const PROBES: u64 = 5;

fn run(port: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--stamp",
        "--stamp-tlv",
        "all",
        "-H",
        "127.0.0.1",
        "-p",
        port,
        "-c",
        "5",
        "-i",
        "0.01",
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = run_client(&args, None);
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
    assert_eq!(json["received"], PROBES, "{json}");
    // Each TLV of each reply: filled in (acknowledged) or flagged.
    let t = &json["stamp_tlvs"];
    for (tlv, yes) in [
        ("direct_measurement", "filled"),
        ("location", "filled"),
        ("access_report", "acknowledged"),
    ] {
        let n = t[tlv][yes].as_u64().unwrap() + t[tlv]["flagged"].as_u64().unwrap();
        assert_eq!(n, PROBES, "{tlv}: every reply accounted for: {json}");
    }
    json
}

#[test]
fn our_reflector_answers_every_tlv_our_sender_asks_for() {
    let key = KeyFile::new("stamp-tlvs");
    for (server_extra, client_extra, stateful) in [
        (&[][..], &[][..], false),
        (&["--stamp-stateful"][..], &[][..], true),
        (
            &["--stamp-stateful", "--stamp-key", key.path()][..],
            &["--stamp-key", key.path()][..],
            true,
        ),
    ] {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(server_extra);
        let server = start_server(&args);
        let port = server.addr.port().to_string();
        let json = run(&port, client_extra);
        let t = &json["stamp_tlvs"];
        let case = format!("{server_extra:?}");
        let dm = &t["direct_measurement"];
        if stateful {
            // The reflector's counters: at our 5th packet it had received
            // 5 and sent 4 before this reply.
            assert_eq!(dm["filled"], PROBES, "{case}: {t}");
            assert_eq!(
                (
                    &dm["sent"],
                    &dm["reflector_received"],
                    &dm["reflector_sent"],
                    &dm["lost_forward"]
                ),
                (&5.into(), &5.into(), &4.into(), &0.into()),
                "{case}: {t}"
            );
        } else {
            assert_eq!(dm["flagged"], PROBES, "{case}: stateless flags it U: {t}");
            assert!(dm["lost_forward"].is_null(), "{case}: {t}");
        }
        let loc = &t["location"];
        assert_eq!(loc["filled"], PROBES, "{case}: {t}");
        assert_eq!(
            loc["destination"],
            format!("127.0.0.1:{port}"),
            "{case}: {t}"
        );
        assert!(
            loc["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{case}: {t}"
        );
        assert_eq!(t["access_report"]["acknowledged"], PROBES, "{case}: {t}");
        // Replies as long as the requests: 44 + 16 + 60 + 8, and the HMAC
        // TLV (20) over the authenticated base (112).
        let size = if client_extra.is_empty() { 128 } else { 216 };
        assert_eq!(json["size"], size, "{case}");
    }
}

#[test]
fn the_text_report_names_what_came_back() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(
        &[
            "--stamp",
            "--stamp-tlv",
            "dm,access",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "2",
            "-i",
            "0.01",
        ],
        None,
    );
    let out = run.stdout_text();
    assert!(
        out.contains("with Direct Measurement and Access Report TLVs"),
        "{out}"
    );
    assert!(
        out.contains(
            "Direct Measurement (RFC 8972 §4.5): not filled in by the reflector (2 flagged"
        ),
        "{out}"
    );
    assert!(
        out.contains("Access Report (RFC 8972 §4.6): 2 acknowledged, 0 flagged"),
        "{out}"
    );
    assert!(!out.contains("Location"), "{out}");
    let bad = run_client(
        &[
            "--stamp",
            "--stamp-tlv",
            "dm,rp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
        ],
        None,
    );
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("'rp' is not a TLV this sender sends"),
        "{}",
        bad.stderr
    );
}

/// RFC 9503 from our sender to our reflector: `--stamp-tlv dna` names the
/// address the reflector was asked at, so it comes back recognised (U
/// clear), 8 bytes over IPv4 and 20 over IPv6; a Return Path to our own
/// address comes back U (replied to the source) unless the reflector
/// allows it, then honoured — the reply still ours. Every reply counted.
#[test]
fn our_reflector_answers_rfc9503_tlvs_from_our_sender() {
    let counts = |json: &serde_json::Value, tlv: &str| {
        let t = &json["stamp_tlvs"][tlv];
        [
            t["recognised"].as_u64().unwrap(),
            t["unrecognised"].as_u64().unwrap(),
            t["malformed"].as_u64().unwrap(),
            t["other"].as_u64().unwrap(),
        ]
    };
    let client = |host: &str, port: &str, tlv: &str| {
        let run = run_client(
            &[
                "--stamp",
                "--stamp-tlv",
                tlv,
                "-H",
                host,
                "-p",
                port,
                "-c",
                "5",
                "-i",
                "0.01",
                "--json",
            ],
            None,
        );
        let json = json_of(&run);
        assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
        assert_eq!(json["received"], PROBES, "{json}");
        json
    };
    // Destination Node Address, per family (IPv6 where loopback has it).
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    for (host, size) in [("127.0.0.1", 44 + 8), ("::1", 44 + 20)] {
        if host == "::1" && !v6 {
            common::skip("no ::1 on this machine: the IPv6 DNA row");
            continue;
        }
        let server = start_server(&["--stamp", "-H", host, "-p", "0"]);
        let json = client(host, &server.addr.port().to_string(), "dna");
        assert_eq!(
            counts(&json, "destination_node_address"),
            [PROBES, 0, 0, 0],
            "{host}: {json}"
        );
        assert_eq!(json["size"], size, "{host}: sized by the family: {json}");
    }
    // Return Path to our own address: refused, then allowed.
    for (allow, want) in [
        (&[][..], [0, PROBES, 0, 0]),
        (
            &["--stamp-return-path-allow", "127.0.0.0/8"][..],
            [PROBES, 0, 0, 0],
        ),
    ] {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(allow);
        let server = start_server(&args);
        let json = client(
            "127.0.0.1",
            &server.addr.port().to_string(),
            "dna,return-path=127.0.0.1",
        );
        assert_eq!(counts(&json, "return_path"), want, "{allow:?}: {json}");
        assert_eq!(json["stamp_tlvs"]["return_path"]["address"], "127.0.0.1");
        assert_eq!(
            counts(&json, "destination_node_address"),
            [PROBES, 0, 0, 0],
            "{allow:?}: {json}"
        );
        assert_eq!(json["size"], 44 + 8 + 12, "{json}");
    }
    // The text report says it in one line each.
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let run = run_client(
        &[
            "--stamp",
            "--stamp-tlv",
            "dna,return-path=127.0.0.1",
            "-H",
            "127.0.0.1",
            "-p",
            &server.addr.port().to_string(),
            "-c",
            "2",
            "-i",
            "0.01",
        ],
        None,
    );
    let out = run.stdout_text();
    // The start line sizes the packet for the resolved (IPv4) target.
    assert!(
        out.contains(
            "unauthenticated 64-byte test packets with Destination Node Address and Return Path TLVs"
        ),
        "{out}"
    );
    assert!(
        out.contains("Destination Node Address (RFC 9503 §3): 2 recognised, 0 flagged U"),
        "{out}"
    );
    assert!(
        out.contains("Return Path (RFC 9503 §4) to 127.0.0.1: 0 honoured, 2 flagged U"),
        "{out}"
    );
}

/// Issue 24: `--size` with `--stamp-tlv dna` was checked against the IPv6
/// Destination Node Address (20 bytes) before the target was resolved, so
/// 52, an open packet with the IPv4 one (44 + 8), was refused for an IPv4
/// target. Now it is checked for the family resolved: 52 goes to
/// 127.0.0.1, and to ::1 (which needs 64) it is refused in one line, exit 2,
/// before anything is sent.
#[test]
fn a_size_with_dna_is_checked_for_the_resolved_family() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let args = |host: &'static str, port: &str| {
        let mut a = vec!["--stamp", "--stamp-tlv", "dna", "--size", "52", "-H", host];
        a.extend(["-c", "3", "-i", "0.01", "--json", "-p"]);
        a.push(port);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let v4 = args("127.0.0.1", &port);
    let run = run_client(&v4.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
    assert_eq!(
        (json["size"].as_u64(), json["received"].as_u64()),
        (Some(52), Some(3)),
        "{json}"
    );
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        common::skip("no ::1 on this machine: the IPv6 refusal");
        return;
    }
    // A port nothing listens on: the refusal must come before any send.
    let closed = closed_port().to_string();
    let v6 = args("::1", &closed);
    let run = run_client(&v6.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line: {}", run.stderr);
    assert!(
        lines[0].contains(
            "--stamp-tlv dna to ::1 (IPv6): --size 52 is shorter than this STAMP packet (64 bytes"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout_text());
}

#[test]
fn our_sender_accounts_for_every_reply_of_stamp_suites_reflector() {
    let Some(suite) = stamp_suite("our sender with --stamp-tlv all → stamp-suite reflector")
    else {
        return;
    };
    for extra in [&[][..], &["--stateful-reflector"][..]] {
        let reflector = SuiteReflector::start(&suite, extra);
        let json = run(&reflector.port.to_string(), &[]);
        let t = &json["stamp_tlvs"];
        // Its reflector keeps sessions either way: counters filled in.
        let dm = &t["direct_measurement"];
        assert_eq!(dm["filled"], PROBES, "{extra:?}: {t}");
        assert_eq!(dm["reflector_received"], dm["sent"], "{extra:?}: {t}");
        assert_eq!(t["access_report"]["acknowledged"], PROBES, "{extra:?}: {t}");
        assert_eq!(t["location"]["filled"], PROBES, "{extra:?}: {t}");
    }
}

/// stamp-suite 1.0's reflector answers RFC 9503 too: the Destination Node
/// Address recognised (it was asked at that address) and a Return Path
/// flagged U (it honours none), the reply to the source; every reply ours.
#[test]
fn stamp_suites_reflector_answers_rfc9503_tlvs_from_our_sender() {
    let Some(suite) = stamp_suite("our sender with --stamp-tlv dna,return-path → stamp-suite")
    else {
        return;
    };
    let reflector = SuiteReflector::start(&suite, &[]);
    let run = run_client(
        &[
            "--stamp",
            "--stamp-tlv",
            "dna,return-path=127.0.0.1",
            "-H",
            "127.0.0.1",
            "-p",
            &reflector.port.to_string(),
            "-c",
            "5",
            "-i",
            "0.01",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{json}\n{}", run.stderr);
    assert_eq!(json["received"], PROBES, "{json}");
    let t = &json["stamp_tlvs"];
    assert_eq!(t["destination_node_address"]["recognised"], PROBES, "{t}");
    assert_eq!(t["return_path"]["unrecognised"], PROBES, "{t}");
}
